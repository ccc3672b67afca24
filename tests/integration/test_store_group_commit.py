"""Durable writes of one process share commits (store/commit.py), keeping order and isolation.

Audit entries written at the same moment cost one flush to disk between them, as strace
shows of a real process; they are chained in the order they were asked for; and a write
that fails among them takes only its own work with it.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select

from opsroom.errors import StoreError
from opsroom.model.audit import AuditEvent
from opsroom.model.jobs import Job
from opsroom.store import Limits, Store
from opsroom.store.database import Database
from opsroom.store.prepared import Prepared
from opsroom.store.queue import Start
from opsroom.store.schema import jobs

# Writes `n` audit entries at once into a store that exists already, then closes it.
APPEND_AT_ONCE = """
import asyncio, sys
from opsroom.model.audit import AuditEvent
from opsroom.store import Store

async def main(url, n):
    store = await Store.open(url)
    try:
        await asyncio.gather(*(
            store.append_audit(AuditEvent(action="note", principal="local:a", room="local:r",
                                          command="c", params={"n": i}))
            for i in range(n)
        ))
    finally:
        await store.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def event(n: int) -> AuditEvent:
    return AuditEvent(
        action="note", principal="local:a", room="local:r", command="c", params={"n": n}
    )


def wal_flushes(tmp_path: Path, url: str, wal: str, n: int) -> int:
    """How often a process writing `n` entries at once flushes the WAL file to disk."""
    strace = shutil.which("strace")
    assert strace is not None, "this test counts fsync calls with strace"
    trace = tmp_path / f"trace-{n}"
    command = [sys.executable, "-c", APPEND_AT_ONCE, url, str(n)]
    done = subprocess.run(
        [strace, "-f", "-y", "-e", "trace=fsync,fdatasync", "-o", str(trace), *command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    flush = re.compile(rf"\b(?:fsync|fdatasync)\(\d+<[^>]*{re.escape(wal)}>\)")
    return sum(1 for line in trace.read_text().splitlines() if flush.search(line))


async def test_entries_written_at_once_share_one_flush_to_disk(tmp_path: Path) -> None:
    db = tmp_path / "opsroom.db"
    url = f"sqlite:///{db}"
    await (await Store.open(url)).close()
    alone = wal_flushes(tmp_path, url, f"{db.name}-wal", 1)
    together = wal_flushes(tmp_path, url, f"{db.name}-wal", 50)
    # Each process also flushes around opening and closing; the entries add one flush
    # whether they are one or fifty (every entry flushed alone: 49 more).
    assert together == alone, (alone, together)
    store = await Store.open(url)
    try:
        verdict = await store.check_audit()
    finally:
        await store.close()
    assert verdict.intact, verdict.broken
    assert verdict.entries == 51


async def test_entries_written_at_once_are_chained_in_the_order_asked(store_url: str) -> None:
    async with await Store.open(store_url) as store:
        records = await asyncio.gather(*(store.append_audit(event(n)) for n in range(50)))
        verdict = await store.check_audit()
        kept = [r async for r in store.iter_audit()]
    assert [r.id for r in records] == list(range(1, 51))
    assert [r.event.params for r in kept] == [{"n": n} for n in range(50)]
    assert [r.hash for r in kept] == [r.hash for r in records]
    assert verdict.intact, verdict.broken
    assert verdict.entries == 50


async def test_a_write_that_fails_among_others_undoes_only_its_own(store_url: str) -> None:
    limits = Limits(total=8, per_command=None, per_user=8)

    def start_entry(job: Job) -> AuditEvent:
        return AuditEvent(action="job.start", principal="p", room="r", job_id=job.id)

    async with await Store.open(store_url) as store:
        job = await store.create_job(command="c", params={}, requester="p", room="r")

        async def start(job_id: int) -> object:
            start = Start(token="t", audit=start_entry)
            return await store.claim_job(job_id, owner="me", limits=limits, start=start)

        # First in the queue (its batch is rolled back whole) and in the middle (its
        # savepoint is): each fails alone, every other write is kept.
        work = [
            start(999_999),
            *(store.append_audit(event(n)) for n in range(5)),
            start(888_888),
            start(job.id),
            *(store.append_audit(event(n)) for n in range(5, 10)),
        ]
        outcomes = await asyncio.gather(*work, return_exceptions=True)
        verdict = await store.check_audit()
        kept = [r async for r in store.iter_audit()]
        started = await store.get_job(job.id)
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert [type(e) for e in failed] == [StoreError, StoreError], failed
    assert "job 999999 does not exist" in str(failed[0])
    assert "job 888888 does not exist" in str(failed[1])
    notes = [r.event.params for r in kept if r.event.action == "note"]
    assert notes == [{"n": n} for n in range(10)]
    assert [r.event.job_id for r in kept if r.event.action == "job.start"] == [job.id]
    assert started is not None
    assert (started.state.value, started.process_token) == ("running", "t")
    assert verdict.intact, verdict.broken
    assert verdict.entries == 11


async def test_work_written_then_failed_in_a_batch_is_undone_alone(store_url: str) -> None:
    # Each failing write has written rows before it fails: two ways (a statement through
    # SQLAlchemy, a prepared one), first in the batch and in the middle of it.
    db = await Database.open(store_url)
    try:

        async def write(n: int, *, fail: bool) -> None:
            async with db.durable(f"write {n}") as conn:
                await conn.execute(insert(jobs), job_row(f"sa-{n}"))
                await NEW_JOB.all(conn, job_row(f"prepared-{n}"))
                if fail:
                    raise RuntimeError(f"write {n} failed")

        outcomes = await asyncio.gather(
            *(write(n, fail=n in (0, 3)) for n in range(6)), return_exceptions=True
        )
        async with db.read("test") as conn:
            kept = sorted((await conn.execute(select(jobs.c.command))).scalars())
    finally:
        await db.close()
    assert [str(o) for o in outcomes if isinstance(o, BaseException)] == [
        "write 0 failed",
        "write 3 failed",
    ]
    assert kept == sorted(f"{how}-{n}" for how in ("sa", "prepared") for n in (1, 2, 4, 5))


NEW_JOB = Prepared(insert(jobs))


def job_row(command: str) -> dict[str, object]:
    return {
        "command": command,
        "params": "{}",
        "state": "queued",
        "requester": "local:a",
        "room": "local:r",
        "created_at": datetime.now(UTC),
    }
