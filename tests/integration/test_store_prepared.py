"""The job path's prepared statements (store/prepared.py): on SQLite they run on the driver
itself, without SQLAlchemy's execution, yet give the same rows, types and errors as
SQLAlchemy does on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Integer, bindparam, event, insert, select, update
from sqlalchemy.exc import IntegrityError, StatementError

from opsroom.errors import StoreError
from opsroom.model.jobs import JobState
from opsroom.store.database import Database
from opsroom.store.jobs import new_job_values
from opsroom.store.prepared import Prepared
from opsroom.store.schema import audit, job_output, jobs
from stores import backend_of

NEW_JOB = Prepared(insert(jobs).returning(*jobs.c))
AUDIT_ROW = Prepared(insert(audit))
END_JOB = Prepared(
    update(jobs).where(jobs.c.id == bindparam("job_id", type_=Integer)).returning(jobs.c.id)
)
# An expanding IN: a statement prepared.py leaves to SQLAlchemy.
SOME_JOBS = Prepared(select(jobs.c.id).where(jobs.c.state.in_(["queued", "running"])))


def job_values(**changes: Any) -> dict[str, Any]:
    """A new job's column values, as the store makes them."""
    values = new_job_values(
        command="storage migrate",
        params={"volume": "vol-1"},
        requester="local:alice",
        room="local:ops",
        state=JobState.QUEUED,
        catalog_commit="c" * 40,
        script_hash=None,
        dry_run=True,
        owner="me",
    )
    values.update(changes)
    return values


def counting(db: Database) -> list[str]:
    """The statements SQLAlchemy executes from now on (prepared ones on SQLite are not)."""
    seen: list[str] = []

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(statement)

    return seen


async def test_rows_and_types_are_sqlalchemys(db: Database, store_url: str) -> None:
    created = datetime.now(UTC) - timedelta(days=3, microseconds=17)
    async with db.durable("test") as conn:
        seen = counting(db)
        fast = await NEW_JOB.first(conn, job_values(created_at=created))
        ran_fast = not any("INSERT INTO jobs" in s for s in seen)
        slow = (
            await conn.execute(insert(jobs).returning(*jobs.c), job_values(created_at=created))
        ).first()
    assert fast is not None
    assert slow is not None
    # SQLite ran it on the driver; PostgreSQL through SQLAlchemy as before.
    assert ran_fast == (backend_of(store_url) == "sqlite")
    assert slow.id == fast.id + 1
    for column in jobs.c:
        name = column.key
        if name == "id":
            continue
        mine, theirs = getattr(fast, name), getattr(slow, name)
        assert mine == theirs, name
        assert type(mine) is type(theirs), name
    # Types come back as the columns say: an aware UTC time, a bool, a scalar default.
    assert fast.created_at == created
    assert fast.created_at.tzinfo is not None
    assert fast.dry_run is True
    assert fast.notified is False
    assert fast.output_lines == 0
    assert fast.started_at is None


async def test_a_constraint_broken_is_sqlalchemys_error_and_undone(db: Database) -> None:
    row = {
        "id": 7,
        "at": datetime.now(UTC),
        "action": "request",
        "principal": "local:alice",
        "room": "local:ops",
        "command": "storage migrate",
        "params": "{}",
        "job_id": None,
        "outcome": "",
        "reason": "",
        "catalog_commit": None,
        "script_hash": None,
        "prev_hash": "0" * 64,
        "hash": "1" * 64,
    }
    async with db.durable("test") as conn:
        await AUDIT_ROW.all(conn, row)
    # The same id again: callers see SQLAlchemy's IntegrityError, the store a StoreError...
    with pytest.raises(StoreError, match="could not add the entry"):
        async with db.durable("add the entry") as conn:
            await AUDIT_ROW.all(conn, {**row, "hash": "2" * 64})
    async with db.read("test") as conn:
        hashes = (await conn.execute(select(audit.c.hash))).scalars().all()
    assert hashes == ["1" * 64]
    # ...and the raw error, for callers that tell a duplicate apart.
    async with db.read("test") as conn:
        with pytest.raises(IntegrityError):
            async with conn.begin():
                await AUDIT_ROW.all(conn, row)


async def test_a_missing_value_is_refused_before_anything_runs(db: Database) -> None:
    async with db.durable("test") as conn:
        job = await NEW_JOB.first(conn, job_values())
        assert job is not None
        with pytest.raises(StatementError, match="job_id"):
            async with conn.begin_nested():
                await END_JOB.first(conn, {"state": JobState.FAILED.value})
        # A column left out is the database's to refuse (NOT NULL), as through SQLAlchemy.
        values = job_values()
        del values["command"]
        with pytest.raises(IntegrityError):
            async with conn.begin_nested():
                await NEW_JOB.first(conn, values)
    async with db.read("test") as conn:
        rows = (await conn.execute(select(jobs.c.id, jobs.c.state))).all()
    assert [tuple(r) for r in rows] == [(job.id, JobState.QUEUED.value)]


async def test_what_it_cannot_run_alone_goes_through_sqlalchemy(
    db: Database, store_url: str
) -> None:
    async with db.durable("test") as conn:
        first = await NEW_JOB.first(conn, job_values())
        await NEW_JOB.first(conn, job_values(state=JobState.SUCCEEDED.value))
        seen = counting(db)
        found = await SOME_JOBS.all(conn, {})
    assert first is not None
    assert [r.id for r in found] == [first.id]
    assert any("IN" in s for s in seen)


LINES = Prepared(insert(job_output))


async def test_many_rows_at_once_are_kept_as_sqlalchemy_keeps_them(
    db: Database, store_url: str
) -> None:
    async with db.durable("test") as conn:
        job = await NEW_JOB.first(conn, job_values())
        assert job is not None
        seen = counting(db)
        rows = [
            {"job_id": job.id, "seq": i, "stream": "stdout", "text": f"line {i} — é"}
            for i in range(1, 201)
        ]
        await LINES.many(conn, rows)
        ran_fast = not any("INSERT INTO job_output" in s for s in seen)
        await LINES.many(conn, [])  # nothing to keep: nothing runs
    assert ran_fast == (backend_of(store_url) == "sqlite")
    async with db.read("test") as conn:
        kept = (
            await conn.execute(
                select(job_output.c.seq, job_output.c.stream, job_output.c.text).order_by(
                    job_output.c.seq
                )
            )
        ).all()
    assert [tuple(r) for r in kept] == [(r["seq"], r["stream"], r["text"]) for r in rows]
    # One row breaking a constraint: SQLAlchemy's error, and none of the batch is kept.
    again = [{**rows[0], "seq": 500}, rows[1]]
    async with db.read("test") as conn:
        with pytest.raises(IntegrityError):
            async with conn.begin():
                await LINES.many(conn, again)
    async with db.read("test") as conn:
        assert await conn.scalar(select(job_output.c.seq).where(job_output.c.seq == 500)) is None
