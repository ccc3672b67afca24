"""Two bots writing one web-chat room at once on PostgreSQL: a room's events commit in `seq`
order, so a stream resuming after the last event it saw misses none.

Each bot is a store of its own (its own engine and connections) on one database. One bot's
commit is held back on purpose by a deferred trigger that waits for a lock this test
holds: its row already has its number, as a slow commit would.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psycopg

from opsroom.store import Store
from pg_cluster import Cluster
from stores import new_store_url
from support import async_wait_for

HOLD = 4711  # the advisory lock the held-back commit waits for

SLOW_COMMITS = [
    """
    CREATE FUNCTION wait_for_the_test() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.author = 'slow' THEN PERFORM pg_advisory_xact_lock_shared(4711); END IF;
      RETURN NULL;
    END $$
    """,
    """
    CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON messages
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION wait_for_the_test()
    """,
]


def _conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


async def _waiting_locks(conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> int:
    cur = await conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_a_room_commits_in_seq_order_so_a_resumed_stream_misses_nothing(
    postgres: Cluster, tmp_path: Path
) -> None:
    with new_store_url("postgresql", tmp_path, postgres) as url:
        bot_a, bot_b = await Store.open(url), await Store.open(url)
        test = await psycopg.AsyncConnection.connect(_conninfo(url), autocommit=True)
        try:
            for statement in SLOW_COMMITS:
                await test.execute(statement)
            await bot_a.add_web_message(room="web:ops", author="alice", kind="message", payload={})
            before = (await bot_a.web_messages("web:ops"))[-1].seq
            await test.execute("SELECT pg_advisory_lock(%s)", (HOLD,))

            slow = asyncio.create_task(
                bot_a.add_web_message(room="web:ops", author="slow", kind="message", payload={})
            )
            # Its row has its number; its commit waits for the test's lock.
            await async_wait_for(lambda: _waiting_locks(test), 30, what="the slow commit")
            fast = asyncio.create_task(
                bot_b.add_web_message(room="web:ops", author="fast", kind="message", payload={})
            )

            async def fast_done_or_waiting() -> bool:
                return fast.done() or await _waiting_locks(test) >= 2

            await async_wait_for(fast_done_or_waiting, 30, what="the fast writer")
            # A stream reading now, then resuming after the last event it was shown.
            shown = await bot_b.web_messages("web:ops", after=before)
            resume_after = shown[-1].seq if shown else before
            await test.execute("SELECT pg_advisory_unlock(%s)", (HOLD,))
            await asyncio.wait_for(asyncio.gather(slow, fast), 30)
            shown += await bot_b.web_messages("web:ops", after=resume_after)
        finally:
            await test.close()
            await bot_a.close()
            await bot_b.close()
    assert [m.author for m in shown] == ["slow", "fast"], "every event, in order, once"
    assert shown[0].seq < shown[1].seq
