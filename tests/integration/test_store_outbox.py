"""The outbox in a real store: replies kept while a platform is away (SPEC §5.2)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from opsroom.model.blocks import Code, Progress, Reply, Status, Text
from opsroom.model.wire import dump_reply, load_reply
from opsroom.store import Store
from opsroom.store import outbox as outbox_sql


@pytest.fixture
def url(store_url: str) -> str:
    return store_url


@pytest.fixture
async def store(url: str) -> AsyncIterator[Store]:
    store = await Store.open(url)
    yield store
    await store.close()


def view(job_id: int, *lines: str, final: bool = False) -> Reply:
    status = Status(f"job {job_id} succeeded", "success") if final else Progress(50.0, "half")
    return Reply((Code(lines), status), job_id=job_id, kind="job")


async def test_kept_replies_come_back_oldest_first_and_survive_a_restart(url: str) -> None:
    first = Reply((Text("hello"),))
    second = view(7, "tick 1")
    async with await Store.open(url) as store:
        a = await store.outbox_put("slack", "slack:C1", "171.01", dump_reply(first))
        b = await store.outbox_put("slack", "slack:C1", None, dump_reply(second), job_id=7)
        await store.outbox_put("matrix", "matrix:!r:x", None, dump_reply(first))
        assert a < b
    async with await Store.open(url) as store:  # a new process: nothing lost
        kept = await store.outbox_pending("slack")
        assert [k.id for k in kept] == [a, b]
        assert [(k.room, k.thread_id, k.job_id) for k in kept] == [
            ("slack:C1", "171.01", None),
            ("slack:C1", None, 7),
        ]
        assert [load_reply(k.reply) for k in kept] == [first, second]
        assert await store.outbox_count("slack") == 2
        assert await store.outbox_count("matrix") == 1


async def test_delivered_replies_are_forgotten(store: Store) -> None:
    ids = [await store.outbox_put("slack", "slack:C1", None, {"n": n}) for n in range(3)]
    await store.outbox_done(ids[:2])
    await store.outbox_done([ids[0], 99999])  # already gone: no error
    assert [k.reply for k in await store.outbox_pending("slack")] == [{"n": 2}]
    await store.outbox_done([])
    assert await store.outbox_count("slack") == 1


async def test_a_newer_live_view_summarises_the_older_ones_of_its_job(store: Store) -> None:
    hello = await store.outbox_put("slack", "slack:C1", None, {"say": "hello"})
    for n in range(1, 6):
        await store.outbox_put(
            "slack", "slack:C1", "t1", dump_reply(view(7, f"tick {n}")), job_id=7, live=True
        )
    other_job = await store.outbox_put(
        "slack", "slack:C1", None, dump_reply(view(8, "x")), job_id=8, live=True
    )
    other_room = await store.outbox_put(
        "slack", "slack:C2", None, dump_reply(view(7, "y")), job_id=7, live=True
    )
    other_platform = await store.outbox_put(
        "matrix", "slack:C1", None, dump_reply(view(7, "z")), job_id=7, live=True
    )
    # A job's separate message (not a live view) is never summarised away.
    note = await store.outbox_put("slack", "slack:C1", None, {"say": "note"}, job_id=7)
    final = view(7, "tick 5", "tick 6", final=True)
    last = await store.outbox_put("slack", "slack:C1", "t1", dump_reply(final), job_id=7, live=True)

    kept = await store.outbox_pending("slack")
    assert [k.id for k in kept] == [hello, other_job, other_room, note, last]
    assert load_reply(kept[-1].reply) == final
    assert [k.live for k in kept] == [False, True, True, False, True]
    assert [k.id for k in await store.outbox_pending("matrix")] == [other_platform]


async def test_pending_gives_the_oldest_page_first(store: Store) -> None:
    ids = [await store.outbox_put("irc", "irc:#ops", None, {"n": n}) for n in range(8)]
    assert [k.id for k in await store.outbox_pending("irc", limit=3)] == ids[:3]


async def test_a_long_outage_keeps_the_newest_replies(store: Store) -> None:
    from opsroom.store.schema import utcnow

    # The bound itself, small, through the SQL the store uses.
    async with store._db.write("test") as conn:
        for n in range(6):
            await outbox_sql.put(
                conn,
                adapter="irc",
                room="irc:#ops",
                thread_id=None,
                reply={"n": n},
                job_id=None,
                live=False,
                now=utcnow(),
                limit=4,
            )
    assert [k.reply["n"] for k in await store.outbox_pending("irc")] == [2, 3, 4, 5]
