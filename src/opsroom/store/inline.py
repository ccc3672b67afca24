"""A SQLite driver that runs each statement on the event loop's own thread.

aiosqlite, which SQLAlchemy's SQLite dialect drives, runs every call on a thread of its own
and wakes the event loop when it is done: a thread switch and a loop iteration per call,
some hundred of them per job, around SQL that takes microseconds. This module offers the
face SQLAlchemy's aiosqlite adapter uses (`AsyncAdapt_aiosqlite_connection`, cursors, the
isolation-level queue) but runs each `sqlite3` call at once, so awaiting it does not suspend.

What the thread bought, kept here: a writer waiting for another process's write lock must not
stop the loop. The connection has no busy handler (timeout 0); a statement that finds the
database locked waits with `asyncio.sleep` and tries again, up to the busy timeout, then
raises the same "database is locked" error SQLite's own handler would have. A long read is
fetched a page at a time, letting other tasks run between pages.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
Error = sqlite3.Error
"""What the driver raises (the DB-API's base error)."""

# SQLite's own busy handler sleeps these many milliseconds between tries, then 100 each.
_DELAYS_MS = (1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100)
FETCH_PAGE = 1000
"""Rows fetched between two chances for other tasks to run, in a long read."""
OFFLOAD_ROWS = 64
"""A batch of more rows than this is written on a thread, not on the event loop."""
PACE_SECONDS = 0.004
"""Statements run back to back for longer than this let other tasks run before the next."""


async def connect(database: str, *, busy_timeout_ms: int, **kwargs: Any) -> Connection:
    """Open `database` with `sqlite3.connect`'s arguments (from the URL), for the loop's use."""
    # Autocommit: the store emits its own BEGIN (engine.py). Connections move between the
    # event loops (and threads) of one process but never serve two holders at once.
    kwargs.update(timeout=0, check_same_thread=False, isolation_level=None)
    return Connection(sqlite3.connect(database, **kwargs), busy_timeout_ms)


class _Queue:
    """What SQLAlchemy's isolation-level setter puts work on: run at once, here."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, call = item
        try:
            future.set_result(call())
        except Exception as e:  # handed to whoever awaits the future, as aiosqlite does
            future.set_exception(e)


class Connection:
    """One `sqlite3` connection, with aiosqlite's coroutine methods, run without a thread."""

    def __init__(self, connection: sqlite3.Connection, busy_timeout_ms: int) -> None:
        self._connection: sqlite3.Connection | None = connection
        self._busy_timeout_ms = busy_timeout_ms
        self._tx = _Queue()
        # Whether the open transaction has run a statement, so may hold a snapshot that
        # another writer made stale: SQLite says to roll such a transaction back on BUSY.
        self._started = False
        # The start of the current run of statements without a turn of the loop between
        # them, and whether the loop has turned since (set by a callback it runs).
        self._stretch = 0.0
        self._turned = True

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            raise sqlite3.OperationalError("no active connection")
        return self._connection

    @property
    def isolation_level(self) -> str | None:
        """The `sqlite3` connection's isolation level (None: the store begins its own)."""
        return self._conn.isolation_level

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open."""
        return self._conn.in_transaction

    def cursor(self) -> Cursor:
        """A new cursor (SQLAlchemy enters it with `async with`)."""
        return Cursor(self, self._conn.cursor())

    async def execute(self, sql: str, parameters: Any = None) -> Cursor:
        """Run one statement on a new cursor and return it."""
        cursor = self.cursor()
        return await cursor.execute(sql, parameters)

    async def commit(self) -> None:
        """Commit; a COMMIT that meets a lock may always be tried again."""
        conn = self._conn
        await self._run(conn.commit, retry=True, offload=True)
        self._started = False

    async def rollback(self) -> None:
        """Roll back (never waits for a lock)."""
        self._conn.rollback()
        self._started = False

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        """Register a SQL function (SQLAlchemy's `regexp` and `floor`)."""
        self._conn.create_function(*args, **kwargs)

    async def close(self) -> None:
        """Close; closing twice is harmless."""
        self.stop()

    def stop(self) -> None:
        """Close at once (SQLAlchemy's terminate, also from garbage collection)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def may_retry(self, sql: str, *, many: bool) -> bool:
        """Whether `sql`, refused with SQLITE_BUSY, may simply run again after a wait.

        SQLite's rule (sqlite3_step): a COMMIT, or a statement outside an explicit
        transaction. Its busy handler also waits for a transaction's first statement, which
        holds no lock yet; inside one that has read, BUSY means roll back, as before.
        `executemany` outside a transaction commits each row alone, so may fail halfway.
        """
        if not self._conn.in_transaction:
            return not many
        if _keyword(sql) in ("COMMIT", "END"):
            return True
        return not self._started

    async def _run(self, call: Callable[[], T], *, retry: bool, offload: bool = False) -> T:
        """`call()`, waiting on the loop (not in SQLite) while another holds the lock.

        `offload`: on a thread, for a call that may wait for the disk. The connection is
        not used meanwhile: its one holder is awaiting this call.
        """
        deadline: float | None = None
        delays = iter(_DELAYS_MS)
        while True:
            try:
                return await asyncio.to_thread(call) if offload else call()
            except sqlite3.OperationalError as e:
                if not (retry and _busy(e)):
                    raise
                loop = asyncio.get_running_loop()
                now = loop.time()
                if deadline is None:
                    deadline = now + self._busy_timeout_ms / 1000
                left = deadline - now
                if left <= 0:
                    raise
                await asyncio.sleep(min(next(delays, 100) / 1000, left))

    async def statement(
        self, call: Callable[[], T], sql: str, *, many: bool = False, offload: bool = False
    ) -> T:
        """Run one statement through `call`, keeping track of the transaction's state."""
        await self._pace()
        conn = self._conn
        opened_before = conn.in_transaction
        try:
            retry = self.may_retry(sql, many=many)
            result = await self._run(call, retry=retry, offload=offload)
        except sqlite3.Error as e:
            # Refused for a lock, it did nothing: the transaction is as it was.
            if not (isinstance(e, sqlite3.OperationalError) and _busy(e)):
                self._note(opened_before)
            raise
        self._note(opened_before)
        return result

    async def _pace(self) -> None:
        """Let other tasks run when statements have held the loop for PACE_SECONDS.

        A statement never suspends, so a transaction of a few thousand (the output of 500
        running jobs, kept every half second) would otherwise hold the loop for its whole
        length: each room would wait that long for its next reply.
        """
        now = time.perf_counter()
        if not self._turned and now - self._stretch <= PACE_SECONDS:
            return
        if not self._turned:
            await asyncio.sleep(0)
            now = time.perf_counter()
        self._turned = False
        self._stretch = now
        asyncio.get_running_loop().call_soon(self._mark_turned)

    def _mark_turned(self) -> None:
        self._turned = True

    def _note(self, opened_before: bool) -> None:
        """After a statement: only one that ran inside an open transaction may have read."""
        conn = self._connection
        self._started = opened_before and conn is not None and conn.in_transaction


class Cursor:
    """A `sqlite3` cursor with aiosqlite's coroutine methods."""

    def __init__(self, conn: Connection, cursor: sqlite3.Cursor) -> None:
        self._conn = conn
        self._cursor = cursor

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._rows()

    async def _rows(self) -> AsyncIterator[Any]:
        while rows := await self.fetchmany(FETCH_PAGE):
            for row in rows:
                yield row

    @property
    def description(self) -> Any:
        """The columns of the last statement's rows (None when it returns none)."""
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        """Rows the last statement changed."""
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        """The row id of the last row inserted."""
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        """Rows `fetchmany` returns by default."""
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Any = None) -> Cursor:
        """Run one statement."""
        cursor = self._cursor
        if parameters is None:
            await self._conn.statement(lambda: cursor.execute(sql), sql)
        else:
            await self._conn.statement(lambda: cursor.execute(sql, parameters), sql)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> Cursor:
        """Run one statement once for each set of parameters."""
        rows = list(parameters)  # a retry must see them all again
        cursor = self._cursor
        await self._conn.statement(
            lambda: cursor.executemany(sql, rows),
            sql,
            many=True,
            offload=len(rows) > OFFLOAD_ROWS,
        )
        return self

    async def fetchone(self) -> Any:
        """The next row, or None."""
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        """Up to `size` more rows."""
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        """Every remaining row, letting other tasks run between pages of a long read."""
        rows = self._cursor.fetchmany(FETCH_PAGE)
        if len(rows) < FETCH_PAGE:
            return rows
        try:
            while True:
                await asyncio.sleep(0)
                more = self._cursor.fetchmany(FETCH_PAGE)
                rows.extend(more)
                if len(more) < FETCH_PAGE:
                    return rows
        except BaseException:
            # Cancelled halfway: SQLAlchemy then closes the connection, but a statement
            # left open keeps it (and its transaction's write lock) alive until collected.
            self._cursor.close()
            raise

    async def close(self) -> None:
        """Close the cursor."""
        self._cursor.close()


def _busy(e: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY or one of its kinds that waiting can cure (not BUSY_SNAPSHOT)."""
    code: int = e.sqlite_errorcode
    return code & 0xFF == sqlite3.SQLITE_BUSY and code != sqlite3.SQLITE_BUSY_SNAPSHOT


def _keyword(sql: str) -> str:
    """The statement's first word, upper-case."""
    words = sql.lstrip().split(None, 1)
    return words[0].upper().rstrip(";") if words else ""
