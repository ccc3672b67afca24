"""The async engine, with SQLite set up so several opsroom processes can share one file."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite writer waits for another process's write lock before giving up."""

_BEGIN_OPTION = "opsroom_begin"


def make_engine(url: str) -> AsyncEngine:
    """An async engine for an already async URL (see `url.async_url`)."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        _setup_sqlite(engine)
        return engine
    return create_async_engine(url, pool_pre_ping=True)


def for_writing(engine: AsyncEngine) -> AsyncEngine:
    """The same engine, but its transactions take the write lock up front on SQLite.

    A deferred SQLite transaction that reads and later writes fails at once with
    "database is locked" when another process wrote in between; BEGIN IMMEDIATE waits
    (busy timeout) instead. Other backends ignore the option.
    """
    return engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})


def _setup_sqlite(engine: AsyncEngine) -> None:
    """Pragmas on every new connection, and BEGIN emitted by us rather than the driver."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own implicit BEGIN is deferred and skips DDL; we emit our own.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough under WAL
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())
