"""Replies and cancels between bots and workers travel by LISTEN/NOTIFY (SPEC §8), with real
`opsroom worker` processes on a throwaway PostgreSQL and the bot in this test process.

Most tests set `[workers] recheck = "1h"`: the store is then looked at on its own only once
an hour, so whatever arrives within the test arrived by notice.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import psycopg
import pytest
from test_workers import Place, group_alive, output_line, started_job, statuses, write_catalog

from opsroom.config import RunnerSettings, Settings, StoreSettings, WorkersSettings
from opsroom.engine.ends import watch_end
from opsroom.model.blocks import Code, Reply
from opsroom.model.jobs import Job, JobState
from opsroom.model.wire import dump_reply
from opsroom.store import Limits, Store
from opsroom.store.notify import Listener, Topic
from opsroom.testing import Bot
from pg_cluster import Cluster
from stores import new_store_url, row
from support import OPSROOM, async_wait_for, wait_for

HEARTBEAT = "0.5s"
LOST_AFTER = "5s"
NEVER = "1h"  # a recheck no test outlives

SCRIPTS = {
    # 300 lines over a few seconds, shown live (background): the room gets several batches.
    "note/stream.sh": (
        'runs_on = "note"\nbackground = true',
        'exec {nap}<> <(:)\nfor i in $(seq 1 300); do echo "line $i"; '
        'read -rt 0.02 -u "$nap" || true; done',
    ),
    "note/wait.sh": (
        'runs_on = "note"\nbackground = true',
        'stat=$(cat /proc/$$/stat); rest=${stat##*) }; set -- $rest; echo "pgid $3"\n'
        "exec sleep 600",
    ),
    "void/job.sh": ('runs_on = "void"', "echo never"),
}


@pytest.fixture(scope="module")
def place(postgres: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Place]:
    """One PostgreSQL database and catalog for the module's bots and workers."""
    folder = tmp_path_factory.mktemp("notices")
    catalog = write_catalog(folder / "catalog", SCRIPTS)
    with new_store_url("postgresql", folder, postgres) as url:
        yield Place(url, catalog, folder)


def _config(place: Place, name: str, recheck: str) -> Path:
    config = place.folder / f"{name}.toml"
    config.write_text(
        f'[store]\nurl = "{place.url}"\n'
        f'[catalog]\npath = "{place.catalog}"\ncache = false\n'
        f'[workers]\nheartbeat = "{HEARTBEAT}"\nlost_after = "{LOST_AFTER}"\n'
        f'recheck = "{recheck}"\n'
    )
    return config


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}


@contextmanager
def worker(place: Place, name: str, *, recheck: str = NEVER) -> Iterator[subprocess.Popen[bytes]]:
    """An `opsroom worker` on queue `note` for the length of the block, registered first."""
    log = place.folder / f"{name}.log"
    argv = [OPSROOM, "worker", "--queue", "note", "--name", name]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*argv, "--config", str(_config(place, name, recheck))],
            cwd=place.folder,
            env=_clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def registered() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"worker {name} exited:\n{log.read_text()[-3000:]}")
        query = "SELECT id FROM workers WHERE name = :n AND stopped_at IS NULL AND lost_at IS NULL"
        return row(place.url, query, n=name) is not None

    try:
        wait_for(registered, 60, what=f"worker {name} to register")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@asynccontextmanager
async def bot_on(place: Place, *, recheck: str = NEVER) -> AsyncIterator[Bot]:
    """The bot: this process, on the module's store and catalog."""
    workers = {"heartbeat": HEARTBEAT, "lost_after": LOST_AFTER, "recheck": recheck}
    settings = Settings(
        store=StoreSettings(url=place.url), workers=WorkersSettings.model_validate(workers)
    )
    async with Bot.open(
        catalog_dir=str(place.catalog), store_url=place.url, settings=settings
    ) as bot:
        yield bot


def shown_lines(replies: list[Reply]) -> list[int]:
    """The line numbers the room was shown or told of (`N more`), in the order it was told."""
    numbers: list[int] = []
    for block in (b for r in replies for b in r.blocks if isinstance(b, Code)):
        last = numbers[-1] if numbers else 0
        numbers += range(last + 1, last + 1 + block.more)  # counted, not shown
        numbers += [int(line.removeprefix("line ")) for line in block.lines]
    return numbers


def terminate(url: str, pid: int) -> None:
    """End one server process of the store's database, as a network failure or an admin would."""
    with psycopg.connect(url, autocommit=True) as conn:
        ended = conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()
    assert ended == (True,)


async def test_300_lines_arrive_whole_and_in_order_across_a_dropped_listening_connection(
    place: Place,
) -> None:
    with worker(place, "note-1"):
        async with bot_on(place) as bot:
            listener = bot.app.store.listener
            assert isinstance(listener, Listener)  # PostgreSQL's
            started = await started_job(bot, "!note stream")
            await output_line(bot, started.job_id, "line 20")
            await async_wait_for(lambda: listener.listening, 30, what="the bot to listen")
            dropped = listener.backend_pid
            assert dropped is not None
            terminate(place.url, dropped)
            mid_stream = await bot.job(started.job_id)
            outcome = await started.result()
            kept = await bot.app.store.output(started.job_id)
    assert mid_stream.state is JobState.RUNNING, "the connection dropped while the job ran"
    assert outcome.state is JobState.SUCCEEDED, started.replies
    assert [text for _, text in kept] == [f"line {i}" for i in range(1, 301)]
    # The room was shown every line (or told how many it skipped), in order, exactly once.
    assert shown_lines(started.replies) == list(range(1, 301))
    assert len([r for r in started.replies if r.kind == "output"]) >= 1, "shown live, too"
    assert listener.connections >= 2, "it listened again"
    assert listener.backend_pid != dropped


async def test_a_cancel_in_the_store_reaches_the_worker_with_no_bot_forwarding_it(
    place: Place,
) -> None:
    with worker(place, "note-2"):
        # The bot that asked for the job is killed: nobody follows it or forwards an abort.
        config = _config(place, "bot", NEVER)
        asker = subprocess.Popen(
            [OPSROOM, "run", "--config", str(config), "--json", "!note wait"],
            cwd=place.folder,
            env=_clean_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        try:
            async with bot_on(place) as bot:
                job_id = await async_wait_for(lambda: _newest(bot, "note wait"), 60, what="a job")
                assert job_id is not None
                pgid = int((await output_line(bot, job_id, "pgid ")).split()[1])
                asker.kill()
                asker.wait(30)
                # As any other bot's `!cancel` does: a request in the store, and nothing more.
                await bot.app.store.request_cancel(job_id, by="local:carol")
                ended = await async_wait_for(
                    lambda: _finished(bot, job_id), 60, what="the job to end"
                )
                assert ended is not None
        finally:
            if asker.poll() is None:
                asker.kill()
                asker.wait(30)
    assert ended.state is JobState.CANCELLED
    assert ended.error == "cancelled by local:carol"
    wait_for(lambda: not group_alive(pgid), 30, what="the script's process group to end")


async def test_cancel_of_a_workers_job_is_answered_once_the_worker_records_its_end(
    place: Place,
) -> None:
    # recheck 1h, and a kill grace that has `!cancel` wait 10 min for the end: it never
    # looks again on its own within the test; the end's notice (sent as the worker records
    # the end) is what wakes it.
    workers = {"heartbeat": HEARTBEAT, "lost_after": LOST_AFTER, "recheck": NEVER}
    settings = Settings(
        store=StoreSettings(url=place.url),
        workers=WorkersSettings.model_validate(workers),
        runner=RunnerSettings(kill_grace=600),
    )
    with worker(place, "note-3"):
        async with Bot.open(
            catalog_dir=str(place.catalog), store_url=place.url, settings=settings
        ) as bot:
            started = await started_job(bot, "!note wait")
            pgid = int((await output_line(bot, started.job_id, "pgid ")).split()[1])
            # A guard against hanging for 10 min, not a measure (bench_supervision.py has it).
            said = await asyncio.wait_for(bot.say(f"!cancel {started.job_id}"), 60)
            outcome = await started.result()
    assert statuses(said.replies) == [f"job {started.job_id} note wait: cancelled"]
    assert outcome.state is JobState.CANCELLED
    wait_for(lambda: not group_alive(pgid), 30, what="the script's process group to end")


async def test_the_bot_looks_every_recheck_for_replies_whose_notice_was_missed(
    place: Place,
) -> None:
    async with bot_on(place, recheck="0.2s") as bot:
        started = await started_job(bot, "!void job")  # no worker serves queue void
        waiting = f"job {started.job_id} void job is waiting for a worker on queue void"
        await async_wait_for(lambda: started.said(waiting), 30, what="the job to wait")
        # Replies kept as a worker keeps them, but without the notice (as if it was lost).
        said = Reply((Code(("from a worker",)),), job_id=started.job_id, kind="output")
        _keep_silently(place.url, started.job_id, [dump_reply(said), None])
        outcome = await started.result()
        await bot.app.store.request_cancel(started.job_id, by="test")
    assert [r for r in started.replies if r.kind == "output"] == [said]
    assert outcome.job_id == started.job_id
    assert statuses(tuple(started.replies)) == [
        f"{waiting} — `!cancel {started.job_id}` to give up"
    ]


async def test_a_notice_wakes_who_watches_its_job_or_its_topic_and_nobody_else(
    place: Place,
) -> None:
    store = await Store.open(place.url)
    try:
        listener = store.listener
        assert isinstance(listener, Listener)  # PostgreSQL's
        with (
            listener.watch(101, Topic.REPLIES) as mine,
            listener.watch(None, Topic.CANCEL) as any_cancel,
            listener.watch(202, Topic.REPLIES, Topic.CANCEL) as other,
        ):
            await async_wait_for(lambda: listener.listening, 30, what="the store to listen")
            for waiter in (mine, any_cancel, other):
                waiter.clear()  # the wake-up every waiter gets once the listener listens
            with psycopg.connect(place.url, autocommit=True) as conn:
                for payload in ("replies:101", "cancel:7", "someone else's", "replies:x"):
                    conn.execute("SELECT pg_notify('opsroom_jobs', %s)", (payload,))
            # Notices arrive in the order sent: once all 4 are in, each was dispatched.
            await async_wait_for(lambda: listener.notices == 4, 30, what="all 4 notices")
            assert await mine.wait(0)
            assert await any_cancel.wait(0)
            assert not await other.wait(0)
    finally:
        await store.close()


async def _newest(bot: Bot, command: str) -> int | None:
    jobs = await bot.app.store.list_jobs(limit=5)
    return next((j.id for j in jobs if j.command == command and j.state is JobState.RUNNING), None)


async def _finished(bot: Bot, job_id: int) -> Job | None:
    job = await bot.job(job_id)
    return job if job.state.finished else None


def _keep_silently(url: str, job_id: int, replies: list[object]) -> None:
    """Append replies to a job's as a worker does, but with no notice."""
    with psycopg.connect(url) as conn:
        last = conn.execute(
            "SELECT coalesce(max(seq), 0) FROM job_replies WHERE job_id = %s", (job_id,)
        ).fetchone()
        seq = int(last[0]) if last else 0
        for reply in replies:
            seq += 1
            data = None if reply is None else json.dumps(reply)
            conn.execute(
                "INSERT INTO job_replies (job_id, seq, reply) VALUES (%s, %s, %s)",
                (job_id, seq, data),
            )


class _Looked:
    """A store whose `get_job` says when it was first asked (watch_end's first look)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.listener = store.listener
        self.looked = asyncio.Event()

    async def get_job(self, job_id: int) -> Job | None:
        job = await self._store.get_job(job_id)
        self.looked.set()
        return job


@pytest.mark.parametrize("how", ["interrupted", "worker lost", "cancelled unstarted"])
async def test_a_wait_for_a_jobs_end_is_woken_by_every_kind_of_end(
    how: str, postgres: Cluster, tmp_path: Path
) -> None:
    """A `cancel` waits for the job's end: however the job ends, the end's notice wakes
    it, not the next look an hour (`recheck`) later."""
    with new_store_url("postgresql", tmp_path, postgres) as url:
        store = await Store.open(url)
        try:
            listener = store.listener
            assert isinstance(listener, Listener)  # PostgreSQL's
            listener.start()
            await async_wait_for(lambda: listener.listening, 30, what="the store to listen")
            owner = "worker-gone" if how == "worker lost" else "bot-gone"
            if how == "worker lost":
                await store.register_worker(
                    name="w1",
                    queue="note",
                    host="h1",
                    os="linux",
                    version="test",
                    catalog_commit=None,
                    owner=owner,
                )
            job = await store.create_job(
                command="note job", params={}, requester="local:alice", room="local:room"
            )
            if how != "cancelled unstarted":
                limits = Limits(total=10, per_command=None, per_user=10)
                claim = await store.claim_job(job.id, owner=owner, limits=limits)
                assert claim.claimed
            looking = _Looked(store)
            wait = asyncio.ensure_future(
                watch_end(looking, job.id, 60, recheck=3600)  # type: ignore[arg-type]
            )
            # Past its first look: from here only a notice (or an hour) ends the wait.
            await asyncio.wait_for(looking.looked.wait(), 30)
            if how == "interrupted":
                ended = await store.reconcile(is_owner_alive=lambda o: o != owner)
                assert [j.id for j in ended] == [job.id]
            elif how == "worker lost":
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("UPDATE workers SET last_heartbeat = now() - interval '1 hour'")
                ended = await store.interrupt_lost_workers(lost_after=60)
                assert [j.id for j in ended] == [job.id]
            else:
                await store.request_cancel(job.id, by="local:bob")
            seen = await asyncio.wait_for(wait, 15)
            assert seen is not None
            expected = JobState.CANCELLED if how == "cancelled unstarted" else JobState.INTERRUPTED
            assert seen.state is expected
        finally:
            await store.close()
