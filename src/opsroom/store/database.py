"""The one engine every part of the store shares, and the transactions the parts run in.

Opening creates the engine and migrates the schema; `read`, `write` and `durable` hand
out connections from that engine and turn driver failures into one `StoreError`. Every
writer goes through `write` or `durable`, so all of them follow the same write-lock
discipline (on SQLite, BEGIN IMMEDIATE: see `engine.for_writing`).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from opsroom.errors import StoreError
from opsroom.store import engine as backend
from opsroom.store.migrate import ensure_schema
from opsroom.store.url import async_url, redacted


class Database:
    """An open store database: its one engine and the URL it was opened with."""

    def __init__(self, engine: AsyncEngine, url: str, *, password: str | None = None) -> None:
        self.engine = engine
        self.writer = backend.for_writing(engine)
        self.url = url
        self.password = password  # the workers' job queue connects with it too (tasks.py)

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
        await self.engine.dispose()

    @asynccontextmanager
    async def read(self, doing: str) -> AsyncIterator[AsyncConnection]:
        """A connection for reading; `doing` names the work in a StoreError."""
        async with self._guard(doing), self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def write(self, doing: str) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed when the block ends without an error."""
        async with self._guard(doing), self.writer.begin() as conn:
            yield conn

    @asynccontextmanager
    async def durable(self, doing: str) -> AsyncIterator[AsyncConnection]:
        """A write transaction whose commit is on disk before the block returns."""
        async with self._guard(doing), backend.durable_transaction(self.writer) as conn:
            yield conn

    @asynccontextmanager
    async def _guard(self, doing: str) -> AsyncIterator[None]:
        """Turn a driver or file-system failure inside into a StoreError saying what failed."""
        try:
            yield
        except (SQLAlchemyError, OSError) as e:
            raise StoreError(f"store {redacted(self.url)}: could not {doing}: {_reason(e)}") from e


class Part:
    """One concern of the store (jobs, output, audit, ...), working over the shared database."""

    def __init__(self, db: Database) -> None:
        self._db = db


def _reason(e: BaseException) -> str:
    """The driver's own words on one line, without SQLAlchemy's statement dump.

    libpq words some failures over several lines ("... Connection refused", "Is the
    server running ...?"); an error is one line wherever it is shown.
    """
    orig = getattr(e, "orig", None)
    text = str(orig if orig is not None else e)
    return " ".join(line.strip() for line in text.splitlines() if line.strip()) or type(e).__name__
