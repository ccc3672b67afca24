"""A task cancelled while the store works for it ends cancelled, on every store.

SQLAlchemy drops a connection whose statement was cancelled, and closing the transaction
on it then fails. That failure once reached the caller as a StoreError in place of the
cancel: `opsroom serve`'s heartbeat loop took it for a passing store failure, went on, and
the shutdown waited for it for ever.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from opsroom.store.database import Database
from stores import backend_of

# A statement that is still running when the test cancels it: SQLite's driver lets other
# tasks in between pages of a long result, PostgreSQL's waits on the server.
LONG = {
    "sqlite": (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) "
        "SELECT i FROM n"
    ),
    "postgresql": "SELECT pg_sleep(5)",
}


async def cancel_mid_statement(db: Database, store_url: str, how: str) -> BaseException | None:
    """Run LONG inside a `how` ("read", "write", "durable") block, cancel it mid-way;
    what the task ended with (None: it finished)."""
    begun = asyncio.Event()

    async def work() -> None:
        async with getattr(db, how)("run a long statement") as conn:
            begun.set()
            await conn.execute(text(LONG[backend_of(store_url)]))

    task = asyncio.create_task(work())
    await begun.wait()
    await asyncio.sleep(0.05 if backend_of(store_url) == "postgresql" else 0)
    assert not task.done(), "the statement ended before the cancel: nothing was tested"
    task.cancel()
    try:
        await asyncio.wait_for(task, 30)
    except BaseException as e:  # what it ended with is the point
        return e
    return None


@pytest.mark.parametrize("how", ["read", "write", "durable"])
async def test_a_statement_cancelled_mid_way_ends_its_task_cancelled(
    db: Database, store_url: str, how: str
) -> None:
    ended = await cancel_mid_statement(db, store_url, how)
    assert isinstance(ended, asyncio.CancelledError), repr(ended)
    # The dropped connection is replaced: the store goes on reading and writing.
    async with db.read("read after a cancel") as conn:
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    async with db.durable("write after a cancel") as conn:
        assert (await conn.execute(text("SELECT 2"))).scalar() == 2


async def test_a_loop_that_carries_on_after_store_errors_still_stops_when_cancelled(
    db: Database, store_url: str
) -> None:
    """The shape of serve's heartbeat: store failures are logged and the loop goes on."""
    rounds = 0
    failures: list[str] = []
    begun = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            try:
                async with db.write("look for lost bots") as conn:
                    begun.set()
                    await conn.execute(text(LONG[backend_of(store_url)]))
            except asyncio.CancelledError:
                raise
            except Exception as e:  # as the heartbeat does: say so and go on
                failures.append(repr(e))
            await asyncio.sleep(0.01)

    task = asyncio.create_task(heartbeat())
    await begun.wait()
    await asyncio.sleep(0.05 if backend_of(store_url) == "postgresql" else 0)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=10)
    assert done, f"the loop went on after its cancel ({rounds} rounds)"
    assert task.cancelled()
    assert (rounds, failures) == (1, [])
