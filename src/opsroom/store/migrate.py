"""Bring a database to the newest schema; Alembic is imported only when there is work.

An empty database is built at the newest schema straight from the tables in `schema.py`
and recorded as migrated to head: one CREATE per table, instead of importing Alembic and
running every migration in turn (several times slower, on every new store). Alembic's
migrations remain what the schema is: tests/integration/test_store_migrations.py proves
both ways give the same database, on each backend.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from opsroom.errors import StoreError
from opsroom.store.engine import for_writing, serialise
from opsroom.store.schema import HEAD_REVISION, metadata

MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATE_LOCK_KEY = 0x6F70736D69677261  # "opsmigra": one migrating process at a time

# Alembic's own version table, as its `upgrade` creates it.
_version = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)


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
        await conn.run_sync(build_or_upgrade)


def build_or_upgrade(conn: Connection) -> None:
    """Build an empty database at head; migrate any other (inside the caller's transaction)."""
    if inspect(conn).get_table_names():
        upgrade_to_head(conn)
    else:
        create_at_head(conn)


def create_at_head(conn: Connection) -> None:
    """Create every table of the newest schema and record the database as at head."""
    metadata.create_all(conn, checkfirst=False)
    _version.create(conn, checkfirst=False)
    conn.execute(_version.insert().values(version_num=HEAD_REVISION))


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
