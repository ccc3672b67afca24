"""The one engine every part of the store shares, and the transactions the parts run in.

Opening creates the engine and migrates the schema; `read`, `write` and `durable` hand
out connections from that engine and turn driver failures into one `StoreError`. Every
writer goes through `write` or `durable`, so all of them follow the same write-lock
discipline (on SQLite, BEGIN IMMEDIATE: see `engine.for_writing`). Durable transactions
of concurrent callers share commits (`commit.GroupCommit`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from opsroom.errors import StoreError
from opsroom.store import engine as backend
from opsroom.store.commit import GroupCommit
from opsroom.store.migrate import ensure_schema
from opsroom.store.url import async_url, redacted, sqlite_path

PENDING = "opsroom_notices"  # a SQLite transaction's notices, in its connection's `info`


class Database:
    """An open store database: its one engine and the URL it was opened with."""

    def __init__(self, engine: AsyncEngine, url: str, *, password: str | None = None) -> None:
        self.engine = engine
        self.writer = backend.for_writing(engine)
        self.url = url
        self.password = password  # the workers' job queue connects with it too (tasks.py)
        self._writers: _Writers | None = None
        self._durable = backend.DurableWriter(self.writer)
        path = sqlite_path(url)
        # SQLite: the folder its committed transactions ring their notices in (bell.py).
        self.bell: str | None = None
        if path is not None:
            from opsroom.store.bell import folder_of

            self.bell = folder_of(path)

    @classmethod
    async def open(cls, url: str, *, password: str | None = None) -> Database:
        """Open (creating and migrating as needed) the database at `url`.

        `password` is PostgreSQL's, when it is kept apart from the URL (`[store] password`).
        """
        full = async_url(url)
        backend.refuse_unshareable(url, full)
        try:
            engine = backend.make_engine(full, password=password)
        except ImportError as e:
            driver = full.split("://", 1)[0].split("+")[-1]
            extra = "opsroom[postgres]" if full.startswith("postgresql") else driver
            raise StoreError(
                f"cannot open the store {redacted(url)}: its driver is not installed "
                f"({e}); install {extra}"
            ) from None
        threads_before = set(threading.enumerate())
        try:
            await ensure_schema(engine)
        except StoreError:
            await backend.discard(engine, threads_before)
            raise
        except (SQLAlchemyError, OSError) as e:
            await backend.discard(engine, threads_before)
            reason = _reason(e)
            message = f"cannot open the store {redacted(url)}: {reason}"
            hint = backend.open_hint(url, reason)
            raise StoreError(f"{message} ({hint})" if hint else message) from None
        return cls(engine, url, password=password)

    async def close(self) -> None:
        """Release every connection."""
        await self._durable.close()
        await self.engine.dispose()

    @asynccontextmanager
    async def read(self, doing: str) -> AsyncIterator[AsyncConnection]:
        """A connection for reading; `doing` names the work in a StoreError."""
        async with self._guard(doing), self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def write(self, doing: str) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed when the block ends without an error."""
        async with self._guard(doing), self._turn(), self._ringing(self.writer.begin()) as conn:
            yield conn

    @asynccontextmanager
    async def durable(self, doing: str) -> AsyncIterator[AsyncConnection]:
        """A write transaction whose commit is on disk before the block returns.

        Concurrent callers share one transaction and one commit (see `commit.py`): the
        block runs inside it, after the work queued before it.
        """
        async with self._guard(doing), self._local().group.transaction() as conn:
            yield conn

    @asynccontextmanager
    async def _durable_batch(self) -> AsyncIterator[AsyncConnection]:
        """The transaction one batch of durable work shares."""
        async with self._turn(), self._ringing(self._durable.transaction()) as conn:
            yield conn

    @asynccontextmanager
    async def _ringing(
        self, transaction: AbstractAsyncContextManager[AsyncConnection]
    ) -> AsyncIterator[AsyncConnection]:
        """`transaction`, whose notices (`notify.send_notices`) SQLite rings once committed."""
        if self.bell is None:  # PostgreSQL sends its own at the commit
            async with transaction as conn:
                yield conn
            return
        told: list[str] = []
        async with transaction as conn:
            conn.info[PENDING] = told
            try:
                yield conn
            finally:
                conn.info.pop(PENDING, None)
        if told:
            from opsroom.store.bell import ring

            ring(self.bell, told)

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """Wait for this process's turn to write, where the database has one write lock.

        SQLite lets one writer in at a time, and those waiting in its busy handler sleep
        and retry, first come not first served: with a few hundred jobs starting at once
        some waited past the busy timeout ("database is locked") while the lock was often
        free. Queued here in order, they only meet other processes' writers there.
        """
        lock = self._local().lock
        if lock is None:
            yield
            return
        async with lock:
            yield

    def _local(self) -> _Writers:
        """The writers' queues on the running event loop (asyncio's are bound to one)."""
        loop = asyncio.get_running_loop()
        writers = self._writers
        if writers is None or writers.loop is not loop:
            lock = asyncio.Lock() if backend.one_writer(self.engine) else None
            writers = self._writers = _Writers(loop, lock, GroupCommit(self._durable_batch))
        return writers

    @asynccontextmanager
    async def _guard(self, doing: str) -> AsyncIterator[None]:
        """Turn a driver or file-system failure inside into a StoreError saying what failed."""
        try:
            yield
        except (SQLAlchemyError, OSError) as e:
            cancel = _cancel_behind(e)
            if cancel is not None:
                # Cancelled mid-statement: SQLAlchemy drops the connection, and rolling back
                # on it then fails. That failure must not stand in for the cancel: a loop
                # that goes on after a StoreError would outlive its stop (a hung shutdown),
                # and asyncio.timeout would not see its own cancel.
                raise cancel from None
            raise StoreError(f"store {redacted(self.url)}: could not {doing}: {_reason(e)}") from e


@dataclass(frozen=True, slots=True)
class _Writers:
    """A database's write queues on one event loop."""

    loop: asyncio.AbstractEventLoop
    lock: asyncio.Lock | None  # None: the database lets writers in side by side (PostgreSQL)
    group: GroupCommit


class Part:
    """One concern of the store (jobs, output, audit, ...), working over the shared database."""

    def __init__(self, db: Database) -> None:
        self._db = db


def _cancel_behind(e: BaseException) -> asyncio.CancelledError | None:
    """The cancel that `e` was raised while handling, if any (its causes, then contexts)."""
    seen: set[int] = set()
    found: BaseException | None = e
    while found is not None and id(found) not in seen:
        if isinstance(found, asyncio.CancelledError):
            return found
        seen.add(id(found))
        found = found.__cause__ or found.__context__
    return None


def _reason(e: BaseException) -> str:
    """The driver's own words on one line, without SQLAlchemy's statement dump.

    libpq words some failures over several lines ("... Connection refused", "Is the
    server running ...?"); an error is one line wherever it is shown.
    """
    orig = getattr(e, "orig", None)
    text = str(orig if orig is not None else e)
    return " ".join(line.strip() for line in text.splitlines() if line.strip()) or type(e).__name__
