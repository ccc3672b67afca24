"""What differs between the databases the store runs on, kept in this one module.

SQLite: its driver (inline.py: statements on the event loop's thread, which prepared.py
and durable batches use directly), the connection PRAGMAs, BEGIN IMMEDIATE for writers,
synchronous=FULL on the durable writer's connection, savepoints, refusing in-memory
databases, and telling why a file cannot be opened.
PostgreSQL: advisory locks, synchronous_commit and unbounded text. Every other store module writes
dialect-neutral SQLAlchemy Core; a further backend changes only this module.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import String, Table, Text, event, text
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import TypeEngine

from opsroom.errors import StoreError
from opsroom.store import inline
from opsroom.store.url import sqlite_path

BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite writer waits for another process's write lock before giving up.

Read when a connection opens; the driver waits on the event loop, not in SQLite.
"""

_BEGIN_OPTION = "opsroom_begin"


def make_engine(url: str, *, password: str | None = None) -> AsyncEngine:
    """An async engine for an already async URL (see `url.async_url`).

    `password` (PostgreSQL) goes to the driver beside the URL, so it is never part of a
    URL that could be shown; without it libpq's own PGPASSWORD and ~/.pgpass apply.
    """
    if url.startswith("sqlite"):
        if password is not None:
            raise StoreError("a store password applies to PostgreSQL only, not SQLite")
        # SQLAlchemy's aiosqlite dialect over our own driver: statements run on the loop.
        engine = create_async_engine(url, connect_args={"async_creator_fn": _connect_sqlite})
        _setup_sqlite(engine)
        return engine
    connect_args = {} if password is None else {"password": password}
    return create_async_engine(url, pool_pre_ping=True, connect_args=connect_args)


def one_writer(engine: AsyncEngine) -> bool:
    """Whether the database lets one writer in at a time (SQLite: one lock per file)."""
    return engine.dialect.name == "sqlite"


def inline_driver(conn: AsyncConnection) -> tuple[inline.Connection, Dialect] | None:
    """The driver's own connection under `conn` and the dialect to compile for, when it runs
    statements at once on the loop (SQLite's, inline.py), for statements run without
    SQLAlchemy (prepared.py); None for any other driver."""
    if conn.dialect.name != "sqlite" or conn.sync_connection is None:
        return None
    driver = conn.sync_connection.connection.driver_connection
    return (driver, conn.dialect) if isinstance(driver, inline.Connection) else None


def _driver(conn: AsyncConnection) -> inline.Connection:
    """The inline driver's connection under a SQLite `conn`."""
    found = inline_driver(conn)
    if found is None:
        raise StoreError("the store's SQLite connection is not on its own driver")
    return found[0]


def for_writing(engine: AsyncEngine) -> AsyncEngine:
    """The same engine, but its transactions take the write lock up front on SQLite.

    A deferred SQLite transaction that reads and later writes fails at once with
    "database is locked" when another process wrote in between; BEGIN IMMEDIATE waits
    (busy timeout) instead. Other backends ignore the option.
    """
    return engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})


async def _connect_sqlite(*args: Any, **kwargs: Any) -> inline.Connection:
    """A SQLite connection run on the event loop; waits for a lock at most BUSY_TIMEOUT_MS."""
    return await inline.connect(*args, busy_timeout_ms=BUSY_TIMEOUT_MS, **kwargs)


def _setup_sqlite(engine: AsyncEngine) -> None:
    """Pragmas on every new connection, and BEGIN emitted by us rather than the driver."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own implicit BEGIN is deferred and skips DDL; we emit our own.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # No busy_timeout: it would wait inside SQLite, stopping the event loop; the
            # driver waits on the loop instead (inline.py).
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough under WAL
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        driver = conn.connection.driver_connection
        if driver is not None and driver.in_transaction:
            return  # begun on the driver itself (DurableWriter): the statement joins it
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())


def any_length(length: int) -> TypeEngine[str]:
    """The type of a column holding names from outside: rooms, principals, commands, files.

    VARCHAR(length) on SQLite, which never enforces the length; TEXT on PostgreSQL, which
    would refuse a longer value that SQLite keeps. So both accept the same values, and a
    long room name never stops a command for want of its audit entry.
    """
    return String(length).with_variant(Text(), "postgresql")


# --- serialising and durable writes -------------------------------------------------------


async def serialise(conn: AsyncConnection, key: int) -> None:
    """Hold the lock `key` until the transaction ends, so writers under it take turns.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: nothing to do, the write
    transaction (BEGIN IMMEDIATE) already holds the one database-wide write lock.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


class DurableWriter:
    """Where the durable write transactions of one process run (group commit's batches).

    SQLite: one connection, kept from batch to batch, on which every commit reaches the
    disk (synchronous=FULL, set once): a batch costs BEGIN and COMMIT, not a pool checkout
    and two PRAGMAs around them. Other writes (job output) use the pool's connections,
    which keep NORMAL: under WAL that survives a crash of the process, not a power loss.
    PostgreSQL: a pooled connection per batch, with synchronous_commit=on.
    Used by one batch at a time (the caller's queue sees to it).
    """

    def __init__(self, writer: AsyncEngine) -> None:
        self._writer = writer
        self._held: AsyncConnection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # where it was taken

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction whose commit is on disk before the block returns."""
        if self._writer.dialect.name != "sqlite":
            async with self._writer.begin() as conn:
                if conn.dialect.name == "postgresql":
                    await conn.execute(text("SET LOCAL synchronous_commit = on"))
                yield conn
            return
        if self._loop is not asyncio.get_running_loop():
            await self.close()  # taken on a loop now gone (a CLI's earlier asyncio.run)
        conn = self._held if self._held is not None else await self._hold()
        driver = _driver(conn)
        try:
            # On the driver: SQLAlchemy's transaction objects cost more than the batch's SQL.
            # Its statements inside find the transaction open and join it (`_on_begin`).
            await _inline_sql(driver, "BEGIN IMMEDIATE")
            yield conn
            try:
                await driver.commit()
            except inline.Error as e:
                raise DBAPIError.instance("COMMIT", None, e, inline.Error) from e
        except BaseException:
            # Whatever went wrong (the work, BEGIN, COMMIT, a cancel), the next batch starts
            # on a connection known to be clean: `close` rolls back what is open.
            await self.close()
            raise

    async def _hold(self) -> AsyncConnection:
        """Take a connection from the pool for the batches, fsyncing each commit."""
        conn = await self._writer.connect()
        try:
            await (await _driver(conn).execute("PRAGMA synchronous = FULL")).close()
        except sqlite3.Error as e:
            await conn.invalidate()
            await conn.close()
            raise StoreError(f"could not make the audit write durable: {e}") from None
        except BaseException:
            await conn.invalidate()
            await conn.close()
            raise
        self._held, self._loop = conn, asyncio.get_running_loop()
        return conn

    async def close(self) -> None:
        """Give the kept connection back to the pool, as the pool's others are (NORMAL)."""
        conn, self._held = self._held, None
        if conn is None:
            return
        try:
            driver = _driver(conn)
            if driver.in_transaction:
                await driver.rollback()
            await (await driver.execute("PRAGMA synchronous = NORMAL")).close()
        except Exception:
            # Never hand a FULL connection back to the pool: it would slow every write.
            await conn.invalidate()
        await conn.close()


class Savepoint(Protocol):
    """Part of a transaction that can be undone alone (`begin_savepoint`)."""

    async def commit(self) -> None:
        """Keep the work done since it began (within the enclosing transaction)."""

    async def rollback(self) -> None:
        """Undo the work done since it began; the enclosing transaction goes on."""


_SAVEPOINTS = itertools.count(1)


@dataclass(frozen=True, slots=True)
class _InlineSavepoint:
    """A SAVEPOINT on SQLite's inline driver: three short statements, not SQLAlchemy's
    nested-transaction objects (a group commit takes one for each caller but the first)."""

    driver: inline.Connection
    name: str

    async def commit(self) -> None:
        await _inline_sql(self.driver, f"RELEASE SAVEPOINT {self.name}")

    async def rollback(self) -> None:
        await _inline_sql(self.driver, f"ROLLBACK TO SAVEPOINT {self.name}")
        await _inline_sql(self.driver, f"RELEASE SAVEPOINT {self.name}")


async def begin_savepoint(conn: AsyncConnection) -> Savepoint:
    """Begin a savepoint inside `conn`'s transaction."""
    found = inline_driver(conn)
    if found is None:
        return await conn.begin_nested()
    driver = found[0]
    savepoint = _InlineSavepoint(driver, f"opsroom_{next(_SAVEPOINTS)}")
    await _inline_sql(driver, f"SAVEPOINT {savepoint.name}")
    return savepoint


async def _inline_sql(driver: inline.Connection, sql: str) -> None:
    """Run one statement on the inline driver, failing as SQLAlchemy would."""
    try:
        await (await driver.execute(sql)).close()
    except inline.Error as e:
        raise DBAPIError.instance(sql, None, e, inline.Error) from e


def insert_new(conn: AsyncConnection, table: Table, values: Mapping[str, Any], key: str) -> Insert:
    """INSERT that does nothing when a row with the same `key` exists (rowcount 0)."""
    # Each dialect's module is imported only where it is used: PostgreSQL's alone costs a
    # SQLite store some 30 ms at start-up.
    statement: Insert
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        statement = postgresql.insert(table).values(**values)
        statement = statement.on_conflict_do_nothing(index_elements=[key])
    else:
        from sqlalchemy.dialects import sqlite

        statement = sqlite.insert(table).values(**values)
        statement = statement.on_conflict_do_nothing(index_elements=[key])
    # SQLAlchemy reads an INSERT's rowcount only when asked; without this psycopg says -1.
    return statement.execution_options(preserve_rowcount=True)


# --- opening ------------------------------------------------------------------------------


def refuse_unshareable(url: str, full: str) -> None:
    """StoreError for a database other opsroom processes cannot reach (in-memory SQLite)."""
    if full.startswith("sqlite") and sqlite_path(url) is None:
        # Every pooled connection would see its own empty database.
        raise StoreError(
            f"store url {url!r} is an in-memory SQLite database, which opsroom processes "
            "cannot share; give a file, e.g. sqlite:///opsroom.db"
        )


async def discard(engine: AsyncEngine, threads_before: set[threading.Thread]) -> None:
    """Dispose of an engine that failed to open, and let its driver threads finish.

    When aiosqlite fails to connect, its worker thread reports its own shutdown to the
    event loop a moment later; if the loop has closed by then (a CLI exiting on the
    error) the thread dies with "Event loop is closed". Waiting here avoids that.
    """
    await engine.dispose()
    for thread in set(threading.enumerate()) - threads_before:
        if "_connection_worker_thread" in thread.name:
            await asyncio.to_thread(thread.join, 1.0)


def open_hint(url: str, reason: str) -> str:
    """Why a SQLite file could not be opened, from the file system's side ("" if unknown)."""
    path = sqlite_path(url)
    if path is None:
        return ""
    file = Path(path).absolute()
    folder = file.parent
    if file.is_dir():
        return f"{file} is a folder, not a database file"
    if not folder.is_dir():
        return f"the folder {folder} does not exist"
    if "not a database" in reason:
        return f"{file} is not a SQLite database"
    if "readonly" in reason or "read-only" in reason or not os.access(folder, os.W_OK):
        return (
            f"{file} or its folder is read-only; opsroom writes the file and its "
            "-wal and -shm companions beside it"
        )
    if "unable to open" in reason:
        return f"check that {file} can be created and written"
    return ""
