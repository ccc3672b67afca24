"""Bring a database to the newest schema; Alembic is imported only when there is work."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from opsroom.errors import StoreError
from opsroom.store.engine import for_writing, serialise
from opsroom.store.schema import HEAD_REVISION

MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATE_LOCK_KEY = 0x6F70736D69677261  # "opsmigra": one migrating process at a time


def current_revision(conn: Connection) -> str | None:
    """The revision recorded in `alembic_version`, None for an empty database."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


async def ensure_schema(engine: AsyncEngine) -> None:
    """Migrate to head unless the database is already there (the common, fast case)."""
    async with engine.connect() as conn:
        revision = await conn.run_sync(current_revision)
    if revision == HEAD_REVISION:
        return
    # One process migrates at a time: the others wait on the lock (SQLite: the write lock;
    # PostgreSQL: an advisory lock, as its DDL takes no lock that would make them wait),
    # then find the work done (Alembic re-reads the version inside the same transaction).
    async with for_writing(engine).begin() as conn:
        await serialise(conn, _MIGRATE_LOCK_KEY)
        await conn.run_sync(upgrade_to_head)


def upgrade_to_head(conn: Connection) -> None:
    """Run Alembic's upgrade on an open connection (inside the caller's transaction)."""
    from alembic import command
    from alembic.config import Config
    from alembic.util import CommandError

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = conn
    try:
        command.upgrade(config, "head")
    except CommandError as e:
        revision = current_revision(conn)
        raise StoreError(
            f"the database schema is at revision {revision!r}, which this opsroom does not "
            f"know (newest known: {HEAD_REVISION!r}); was it written by a newer opsroom? ({e})"
        ) from None
