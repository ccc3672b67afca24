"""SQLite statements run on the event loop's thread (store/inline.py), yet a writer waiting
for another process's write lock never stops the loop, and gives up as before."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from opsroom.errors import StoreError
from opsroom.store import Store, inline
from opsroom.store import engine as store_engine
from opsroom.store.database import Database
from opsroom.store.inline import FETCH_PAGE
from support import async_wait_for

# Another process's writer: takes the write lock, says so, keeps it until its stdin closes.
HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
db.close()
"""


class Ticker:
    """A task counting the event loop's turns it gets while others wait."""

    def __init__(self) -> None:
        self.turns = 0

    async def run(self) -> None:
        """Count a turn each time the loop comes round to this task."""
        while True:
            await asyncio.sleep(0)
            self.turns += 1


@asynccontextmanager
async def ticking() -> AsyncIterator[Ticker]:
    """A running Ticker, stopped after the block."""
    ticker = Ticker()
    task = asyncio.create_task(ticker.run())
    await asyncio.sleep(0)  # let it start, so the block counts only its own turns
    try:
        yield ticker
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@asynccontextmanager
async def write_locked(db: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """Another process holding `db`'s write lock until the block ends (or `release`)."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        str(db),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    try:
        assert await child.stdout.readline() == b"locked\n"
        yield child
    finally:
        await release(child)


async def release(child: asyncio.subprocess.Process) -> None:
    """Let the holder roll back and end."""
    assert child.stdin is not None
    if not child.stdin.is_closing():
        child.stdin.close()
    assert await child.wait() == 0


@contextmanager
def busy_timeout(monkeypatch: pytest.MonkeyPatch, ms: int) -> Iterator[None]:
    """Connections opened inside wait for a lock at most `ms` milliseconds."""
    monkeypatch.setattr(store_engine, "BUSY_TIMEOUT_MS", ms)
    yield


async def new_job(store: Store) -> int:
    job = await store.create_job(
        command="store status", params={}, requester="local:alice", room="local:ops"
    )
    return job.id


async def test_a_write_waits_for_another_process_while_the_loop_serves_other_tasks(
    tmp_path: Path,
) -> None:
    db = tmp_path / "opsroom.db"
    store = await Store.open(f"sqlite:///{db}")
    try:
        async with write_locked(db) as holder, ticking() as ticker:
            write = asyncio.create_task(new_job(store))
            # The loop goes on turning while the write waits for the lock...
            await async_wait_for(lambda: ticker.turns >= 200, what="the loop to turn")
            assert not write.done(), "the write finished while another process held the lock"
            # ...and the write goes through once the other process lets go.
            await release(holder)
            job_id = await write
        job = await store.get_job(job_id)
        assert job is not None
        assert job.command == "store status"
    finally:
        await store.close()


async def test_a_lock_held_past_the_busy_timeout_refuses_the_write_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "opsroom.db"
    with busy_timeout(monkeypatch, 300):
        store = await Store.open(f"sqlite:///{db}")
    try:
        async with write_locked(db), ticking() as ticker:
            with pytest.raises(StoreError, match="database is locked"):
                await new_job(store)
            assert ticker.turns > 0, "the event loop stood still while the write waited"
        assert await store.list_jobs() == []
        # Once the lock is free the same store writes again.
        assert await store.get_job(await new_job(store)) is not None
    finally:
        await store.close()


async def test_statements_on_an_open_connection_never_hand_the_loop_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aiosqlite ran each statement on a thread of its own, and the loop turned (a thread
    # switch and a wake-up) around every one: some hundred per job. The pacing of long runs
    # (below) is set aside here: on a slow machine 20 statements can last its 4 ms.
    monkeypatch.setattr(inline, "PACE_SECONDS", 60.0)
    db = await Database.open(f"sqlite:///{tmp_path / 'opsroom.db'}")
    try:
        async with db.write("make a table") as conn:
            await conn.execute(text("CREATE TABLE scratch (i INTEGER NOT NULL)"))
        async with db.write("write") as conn, ticking() as ticker:
            for i in range(20):
                await conn.execute(text("INSERT INTO scratch (i) VALUES (:i)"), {"i": i})
            assert ticker.turns == 0
        async with db.read("read") as conn, ticking() as ticker:
            sums = [await conn.scalar(text("SELECT sum(i) FROM scratch")) for _ in range(20)]
            assert ticker.turns == 0
        assert sums == [sum(range(20))] * 20
        # A run of statements that has held the loop for PACE_SECONDS lets it turn before
        # the next one, so a long transaction does not keep every room waiting.
        monkeypatch.setattr(inline, "PACE_SECONDS", 0.0)
        async with db.read("read") as conn, ticking() as ticker:
            for _ in range(20):
                await conn.scalar(text("SELECT sum(i) FROM scratch"))
            assert ticker.turns >= 19
    finally:
        await db.close()


async def test_a_transaction_that_has_read_fails_at_once_on_a_lock_rather_than_waiting(
    tmp_path: Path,
) -> None:
    # SQLite's rule: BUSY inside a transaction that already read means roll it back;
    # waiting cannot help once another writer may change what it read.
    db_file = tmp_path / "opsroom.db"
    db = await Database.open(f"sqlite:///{db_file}")
    try:
        async with db.read("read, then write") as conn:
            assert await conn.scalar(text("SELECT count(*) FROM jobs")) == 0
            async with write_locked(db_file), ticking() as ticker:
                with pytest.raises(OperationalError, match="database is locked"):
                    await conn.execute(text("DELETE FROM jobs"))
                assert ticker.turns == 0, "it waited for the lock"
    finally:
        await db.close()


async def test_a_long_read_lets_other_tasks_run_between_pages(tmp_path: Path) -> None:
    db = await Database.open(f"sqlite:///{tmp_path / 'opsroom.db'}")
    n = 5 * FETCH_PAGE + 7
    many = text(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :n) "
        "SELECT i FROM n"
    )
    try:
        async with db.read("read many rows") as conn, ticking() as ticker:
            rows = (await conn.execute(many, {"n": n})).scalars().all()
            assert ticker.turns >= 5
        assert rows == list(range(1, n + 1))
    finally:
        await db.close()
