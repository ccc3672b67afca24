"""Migrations build the schema from nothing, agree with the code, and are skipped at head.

A new, empty database is built straight from the code's tables (no migration runs): the
schema it gets is the one the migrations build, on every backend.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from opsroom.model.jobs import JobState
from opsroom.store import Limits, Store
from opsroom.store.migrate import MIGRATIONS, upgrade_to_head
from opsroom.store.schema import HEAD_REVISION, metadata
from opsroom.store.url import sqlite_path
from pg_cluster import dump
from stores import backend_of, new_store_url, scalar_sql, sync_engine


def tables(url: str) -> set[str]:
    with sync_engine(url) as engine, engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def revision(url: str) -> object:
    return scalar_sql(url, "SELECT version_num FROM alembic_version")


def migrate(url: str, to: str = "head") -> None:
    """Run the migrations on a store up to revision `to`, as Alembic does."""
    from alembic import command
    from alembic.config import Config

    with sync_engine(url) as engine, engine.begin() as conn:
        if to == "head":
            upgrade_to_head(conn)
            return
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, to)


def opening_loads_alembic(url: str) -> bool:
    """Whether a new process opening the store at `url` imports Alembic (it migrates)."""
    probe = (
        "import asyncio, sys\n"
        "from opsroom.store import Store\n"
        "async def main():\n"
        f"    await (await Store.open({url!r})).close()\n"
        "asyncio.run(main())\n"
        "print('alembic' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip() == "True"


def schema_of(url: str) -> list[str]:
    """Everything that makes up a store's schema, as lines two equal schemas share.

    PostgreSQL: what pg_dump writes, without its comments and session settings.
    SQLite: every table's, index's and trigger's own SQL with spaces evened out (a column
    added later is appended as `, name TYPE`), and the recorded schema revision.
    """
    if backend_of(url) == "postgresql":
        lines = dump(url).decode().splitlines()
        noise = ("--", "SET ", "SELECT pg_catalog.set_config", "\\restrict", "\\unrestrict")
        return [line for line in lines if line.strip() and not line.startswith(noise)]
    with sync_engine(url) as engine, engine.connect() as conn:
        rows = conn.execute(
            text("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
        ).all()
        version = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    even = [
        (kind, name, table, re.sub(r"\s*([,()])\s*", r"\1", re.sub(r"\s+", " ", sql or "")))
        for kind, name, table, sql in rows
    ]
    return [f"{kind} {name} on {table}: {sql}" for kind, name, table, sql in even] + [
        f"revision {v}" for (v,) in version
    ]


async def test_an_empty_database_gets_the_whole_schema_and_reopening_changes_nothing(
    empty_store_url: str,
) -> None:
    url = empty_store_url
    sqlite = backend_of(url) == "sqlite"
    if sqlite:
        path = sqlite_path(url)
        assert path is not None
        Path(path).touch()  # an existing, empty file is an empty database
    store = await Store.open(url)
    job = await store.create_job(command="c", params={}, requester="local:a", room="local:r")
    await store.close()
    assert {"jobs", "job_output", "job_events", "audit", "alembic_version"} <= tables(url)
    if sqlite:
        assert scalar_sql(url, "PRAGMA journal_mode") == "wal"

    for _ in range(2):
        store = await Store.open(url)
        assert await store.get_job(job.id) is not None
        await store.close()
    assert revision(url) == HEAD_REVISION


def test_head_revision_constant_matches_the_migrations() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD_REVISION]


async def test_migrated_database_matches_the_schema_in_code(empty_store_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    migrate(empty_store_url)  # every migration in turn (opening would build it from the code)
    with sync_engine(empty_store_url) as engine, engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_opening_a_database_at_head_does_not_load_alembic(empty_store_url: str) -> None:
    migrate(empty_store_url, "0008")  # a store an older opsroom left: it needs migrating
    first = opening_loads_alembic(empty_store_url)
    second = opening_loads_alembic(empty_store_url)
    assert (first, second) == (True, False)
    assert revision(empty_store_url) == HEAD_REVISION


async def test_a_new_database_is_built_without_migrations_as_the_migrations_build_it(
    empty_store_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = empty_store_url
    assert not opening_loads_alembic(url), "a new store is built from the code's tables"
    assert revision(url) == HEAD_REVISION
    backend = backend_of(url)
    cluster = request.getfixturevalue("postgres") if backend == "postgresql" else None
    folder = tmp_path / "migrated"
    folder.mkdir()
    with new_store_url(backend, folder, cluster, migrated=False) as migrated:
        migrate(migrated)
        built, by_migrations = schema_of(url), schema_of(migrated)
    assert len(built) > 20, built  # the dump or the tables were read at all
    assert built == by_migrations


async def test_a_0001_database_with_jobs_is_upgraded_in_place(empty_store_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    url = empty_store_url
    with sync_engine(url) as engine, engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        # Ids come from the database, as when opsroom 0001 wrote them: 1, 2 and 3.
        for command_name, state, exit_code, owner in [
            ("store status", "succeeded", 0, "h:1:b:1"),
            ("storage migrate", "queued", None, None),
            ("storage migrate", "interrupted", None, "h:2:b:2"),
        ]:
            conn.execute(
                text(
                    "INSERT INTO jobs (command, params, state, requester, room, created_at,"
                    " finished_at, exit_code, owner, dry_run) VALUES (:command, '{}',"
                    " :state, 'slack:U1', 'slack:C1', '2024-11-25 10:00:00.000000', NULL,"
                    " :exit_code, :owner, FALSE)"
                ),
                {"command": command_name, "state": state, "exit_code": exit_code, "owner": owner},
            )
        conn.execute(
            text(
                "INSERT INTO job_output VALUES (1, 1, 'stdout', 'hello'), (1, 2, 'stderr', 'world')"
            )
        )
    assert tables(url) >= {"jobs", "job_output"}
    assert "attachments" not in tables(url)

    store = await Store.open(url)
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
        assert [j.id for j in await store.list_jobs(states=[JobState.QUEUED])] == [2]
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
    assert revision(url) == HEAD_REVISION
