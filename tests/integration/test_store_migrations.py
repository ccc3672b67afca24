"""Migrations build the schema from nothing, agree with the code, and are skipped at head."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text

from opsroom.model.jobs import JobState
from opsroom.store import Limits, Store
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


async def test_a_0001_database_with_jobs_is_upgraded_in_place(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    db = tmp_path / "opsroom.db"
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
            conn.execute(
                text(
                    "INSERT INTO jobs (id, command, params, state, requester, room, created_at,"
                    " finished_at, exit_code, owner, dry_run) VALUES (:id, :command, '{}',"
                    " :state, 'slack:U1', 'slack:C1', '2024-11-25 10:00:00.000000', NULL,"
                    " :exit_code, :owner, 0)"
                ),
                [
                    {
                        "id": 1,
                        "command": "store status",
                        "state": "succeeded",
                        "exit_code": 0,
                        "owner": "h:1:b:1",
                    },
                    {
                        "id": 2,
                        "command": "storage migrate",
                        "state": "queued",
                        "exit_code": None,
                        "owner": None,
                    },
                    {
                        "id": 3,
                        "command": "storage migrate",
                        "state": "interrupted",
                        "exit_code": None,
                        "owner": "h:2:b:2",
                    },
                ],
            )
            conn.execute(
                text(
                    "INSERT INTO job_output VALUES (1, 1, 'stdout', 'hello'),"
                    " (1, 2, 'stderr', 'world')"
                )
            )
    finally:
        engine.dispose()
    assert tables(db) >= {"jobs", "job_output"}
    assert "attachments" not in tables(db)

    store = await Store.open(f"sqlite:///{db}")
    try:
        done, interrupted = [await store.get_job(i) for i in (1, 3)]
        assert done is not None
        assert interrupted is not None
        assert (done.command, done.state, done.exit_code, done.requester) == (
            "store status",
            JobState.SUCCEEDED,
            0,
            "slack:U1",
        )
        assert done.created_at == datetime(2024, 11, 25, 10, tzinfo=UTC)
        assert (done.output_lines, done.output_truncated, done.pid) == (2, False, None)
        assert await store.output(1) == [("stdout", "hello"), ("stderr", "world")]
        # Interruptions from before the upgrade are not announced again.
        assert interrupted.notified
        assert await store.unnotified_interrupted() == []
        # The queued job keeps its place and can start; new jobs get new ids.
        assert [j.id for j in await store.queued_jobs()] == [2]
        later = await store.create_job(
            command="storage migrate", params={}, requester="a", room="r"
        )
        assert later.id == 4
        limits = Limits(total=8, per_command=1, per_user=4)
        assert not (await store.claim_job(later.id, owner="p", limits=limits)).claimed
        assert (await store.claim_job(2, owner="p", limits=limits)).claimed
        attachment = await store.add_attachment(
            2, name="a.txt", content_type="text/plain", data=b"hi"
        )
        assert await store.attachment_data(attachment) == b"hi"
    finally:
        await store.close()
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (HEAD_REVISION,)
        ]
    raw.close()
