"""Migrations build the schema from nothing, agree with the code, and are skipped at head."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine

from opsroom.store import Store
from opsroom.store.migrate import MIGRATIONS
from opsroom.store.schema import HEAD_REVISION, metadata


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as raw:
        rows = raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    raw.close()
    return {name for (name,) in rows}


def pragma(db: Path, name: str) -> object:
    with sqlite3.connect(db) as raw:
        value = raw.execute(f"PRAGMA {name}").fetchone()[0]
    raw.close()
    return value


async def test_an_empty_file_gets_the_whole_schema_and_reopening_changes_nothing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "opsroom.db"
    db.touch()  # an existing, empty file is an empty database
    store = await Store.open(f"sqlite:///{db}")
    job = await store.create_job(command="c", params={}, requester="local:a", room="local:r")
    await store.close()
    assert {"jobs", "job_output", "job_events", "audit", "alembic_version"} <= tables(db)
    assert pragma(db, "journal_mode") == "wal"

    for _ in range(2):
        store = await Store.open(f"sqlite:///{db}")
        assert await store.get_job(job.id) is not None
        await store.close()
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (HEAD_REVISION,)
        ]
    raw.close()


def test_head_revision_constant_matches_the_migrations() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD_REVISION]


async def test_migrated_database_matches_the_schema_in_code(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    db = tmp_path / "opsroom.db"
    await (await Store.open(f"sqlite:///{db}")).close()
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_opening_a_database_at_head_does_not_load_alembic(tmp_path: Path) -> None:
    db = tmp_path / "opsroom.db"
    probe = (
        "import asyncio, sys\n"
        "from opsroom.store import Store\n"
        "async def main():\n"
        f"    await (await Store.open('sqlite:///{db}')).close()\n"
        "asyncio.run(main())\n"
        "print('alembic' in sys.modules)\n"
    )
    first = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    second = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert (first.stdout.strip(), second.stdout.strip()) == ("True", "False"), (
        first.stderr + second.stderr
    )
