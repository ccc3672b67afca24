"""Group commit: the durable write transactions of one process share commits.

A durable commit waits for the disk (an fsync on SQLite, a WAL flush on PostgreSQL), and
that wait, not the SQL, is most of what an audit entry costs. So callers queue: one writer
task opens a transaction, lets each queued caller run its work inside it in turn (the
first directly, the others each in a savepoint, so one caller's failure undoes only its
own work), and commits once nobody is waiting or the batch is full — one disk flush for
all of them. Each caller returns only after that commit, so nothing it acknowledges (an
audit entry, a job's start) can be lost once it has been told. Work runs in the order it
was queued, so audit entries are chained in that order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from opsroom.errors import StoreError
from opsroom.store.engine import begin_savepoint

BATCH_LIMIT = 64
"""Callers per commit at most: a batch holds the write lock other processes wait for."""

Begin = Callable[[], AbstractAsyncContextManager[AsyncConnection]]
T = TypeVar("T")


class _Undo(StoreError):
    """Raised inside the batch's transaction to roll it back when its only work failed."""


def _future() -> asyncio.Future[T]:
    return asyncio.get_running_loop().create_future()


@dataclass(eq=False)
class _Turn:
    """One caller's place in the queue."""

    # The writer hands the caller the batch's connection: its work may run now.
    go: asyncio.Future[AsyncConnection] = field(default_factory=_future)
    # The caller says its work is over: True to keep it, False to undo it.
    done: asyncio.Future[bool] = field(default_factory=_future)
    # The writer says the batch holding the work was committed (or why not).
    committed: asyncio.Future[None] = field(default_factory=_future)


class GroupCommit:
    """Durable transactions of one event loop, batched into shared commits."""

    def __init__(self, begin: Begin, *, limit: int = BATCH_LIMIT) -> None:
        self._begin = begin  # a durable write transaction, committed when its block ends
        self._limit = limit
        self._queue: deque[_Turn] = deque()
        self._writer: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """Run the block inside the next batch; it returns once the batch is on disk.

        When the block raises, its work is undone (and the others' kept). The block must
        only use the connection: waiting inside it for another durable write would wait
        for itself.
        """
        turn = _Turn()
        self._queue.append(turn)
        if self._writer is None or self._writer.done():
            # Started on demand and gone when the queue is empty: nothing to stop on close.
            self._writer = asyncio.get_running_loop().create_task(self._write())
        try:
            conn = await turn.go
        except asyncio.CancelledError:
            if turn.go.done() and not turn.go.cancelled():
                turn.done.set_result(False)  # handed over just as we were cancelled
            raise
        try:
            yield conn
        except BaseException:
            turn.done.set_result(False)
            raise
        turn.done.set_result(True)
        try:
            await turn.committed
        except asyncio.CancelledError:
            # The work is committed with its batch all the same; nobody reads the outcome.
            turn.committed.add_done_callback(_retrieve)
            raise

    async def _write(self) -> None:
        """Commit batches until nobody is waiting."""
        while self._queue:
            batch: list[_Turn] = []
            try:
                async with self._begin() as conn:
                    await self._fill(conn, batch)
            except _Undo:
                continue  # its only work failed: nothing was kept, nobody else to tell
            except Exception as e:
                # Beginning or committing failed: nothing in this batch was kept, and those
                # still queued would only wait as long for the same answer.
                self._fail(batch, e)
                continue
            except BaseException:
                # Cancelled (the loop is closing) or the process is exiting.
                self._fail(batch, StoreError("the store closed before the write was kept"))
                raise
            for turn in batch:
                if not turn.committed.done():
                    turn.committed.set_result(None)

    async def _fill(self, conn: AsyncConnection, batch: list[_Turn]) -> None:
        """Let queued callers work inside the open transaction, one after another."""
        while self._queue and len(batch) < self._limit:
            turn = self._queue.popleft()
            if turn.go.done():
                continue  # its caller stopped waiting
            # The first work needs no savepoint: when it fails, the whole transaction goes.
            savepoint = await begin_savepoint(conn) if batch else None
            turn.go.set_result(conn)
            batch.append(turn)  # from now on, told of whatever becomes of the batch
            keep = await turn.done
            if keep:
                if savepoint is not None:
                    await savepoint.commit()
                continue
            batch.pop()  # its caller has its own error already
            if savepoint is None:
                raise _Undo
            await savepoint.rollback()

    def _fail(self, batch: list[_Turn], error: BaseException) -> None:
        """Tell every caller in `batch` and in the queue that its work was not kept."""
        waiting = list(self._queue)
        self._queue.clear()
        for turn in batch:
            if not turn.committed.done():
                turn.committed.set_exception(error)
        for turn in waiting:
            if not turn.go.done():
                turn.go.set_exception(error)


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark an outcome nobody awaits as seen, so asyncio does not log it as lost."""
    if not future.cancelled():
        future.exception()
