"""The store: jobs, their output and events, and the audit trail (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Row, and_, case, func, insert, literal, or_, select, text, true, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from opsroom.errors import StoreError
from opsroom.model.approvals import ApprovalRequest, VoteDecision, VoteResult
from opsroom.model.audit import AuditEvent, AuditRecord
from opsroom.model.jobs import Job, JobState
from opsroom.model.schedules import Schedule
from opsroom.store import approvals as approval_sql
from opsroom.store import deliveries as delivery_sql
from opsroom.store import outbox as outbox_sql
from opsroom.store import schedules as schedule_sql
from opsroom.store import web as web_sql
from opsroom.store.audit_chain import (
    RELINKED,
    AuditVerdict,
    ChainCheck,
    anchor_break,
    entry_hash,
    link_break,
    params_json,
    unreadable,
)
from opsroom.store.claims import Claim, Limits, per_command_reason, per_user_reason, total_reason
from opsroom.store.engine import for_writing, make_engine
from opsroom.store.migrate import ensure_schema
from opsroom.store.schema import (
    GENESIS_HASH,
    UTCDateTime,
    attachments,
    audit,
    job_events,
    job_output,
    jobs,
    utcnow,
)
from opsroom.store.url import async_url, redacted, sqlite_path

_FINAL = [s.value for s in JobState if s.finished]
_STARTABLE = [JobState.QUEUED.value, JobState.AWAITING_APPROVAL.value]
_AUDIT_LOCK_KEY = 0x6F7073726F6F6D  # "opsroom": PostgreSQL advisory lock for audit appends
_CLAIM_LOCK_KEY = 0x6F7073636C61696D  # "opsclaim": PostgreSQL advisory lock for job starts
_PAGE = 1000


# The owner of a queued job whose waiting process is gone, until another process adopts it.
ORPHANED = ""


class Store:
    """Async access to the opsroom database; open with `await Store.open(url)`."""

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self._engine = engine
        self._writer = for_writing(engine)
        self.url = url

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    async def open(cls, url: str) -> Store:
        """Open (creating and migrating as needed) the store at `url`."""
        full = async_url(url)
        if full.startswith("sqlite") and sqlite_path(url) is None:
            # Every pooled connection would see its own empty database.
            raise StoreError(
                f"store url {url!r} is an in-memory SQLite database, which opsroom processes "
                "cannot share; give a file, e.g. sqlite:///opsroom.db"
            )
        try:
            engine = make_engine(full)
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
            await _discard(engine, threads_before)
            raise
        except (SQLAlchemyError, OSError) as e:
            await _discard(engine, threads_before)
            raise StoreError(_open_failure(url, e)) from None
        return cls(engine, url)

    async def close(self) -> None:
        """Release every connection."""
        await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @asynccontextmanager
    async def _read(self, doing: str) -> AsyncIterator[AsyncConnection]:
        async with self._guard(doing), self._engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def _write(self, doing: str) -> AsyncIterator[AsyncConnection]:
        async with self._guard(doing), self._writer.begin() as conn:
            yield conn

    @asynccontextmanager
    async def _guard(self, doing: str) -> AsyncIterator[None]:
        try:
            yield
        except (SQLAlchemyError, OSError) as e:
            raise StoreError(f"store {redacted(self.url)}: could not {doing}: {_reason(e)}") from e

    # --- jobs -----------------------------------------------------------------------------

    async def create_job(
        self,
        *,
        command: str,
        params: Mapping[str, Any],
        requester: str,
        room: str,
        state: JobState = JobState.QUEUED,
        catalog_commit: str | None = None,
        script_hash: str | None = None,
        dry_run: bool = False,
        owner: str | None = None,
    ) -> Job:
        """Record a new job and return it with its id.

        `owner` is the process that will run it (and waits for it while it is queued).
        """
        values: dict[str, Any] = {
            "command": command,
            "params": json.dumps(dict(params), ensure_ascii=False, default=str),
            "state": JobState(state).value,
            "requester": requester,
            "room": room,
            "created_at": utcnow(),
            "catalog_commit": catalog_commit,
            "script_hash": script_hash,
            "dry_run": dry_run,
            "queue_seq": _next_queue_seq(),
            "owner": owner,
        }
        async with self._write("record a job") as conn:
            result = await conn.execute(insert(jobs).values(**values))
            key = result.inserted_primary_key
            assert key is not None
            job = await _fetch_job(conn, int(key[0]))
        assert job is not None
        return job

    async def get_job(self, job_id: int) -> Job | None:
        """The job with this id, or None."""
        async with self._read(f"read job {job_id}") as conn:
            return await _fetch_job(conn, job_id)

    async def list_jobs(
        self,
        *,
        limit: int = 50,
        states: Collection[JobState] | None = None,
        requester: str | None = None,
    ) -> list[Job]:
        """Jobs, newest first, optionally only those in `states` or asked for by `requester`."""
        query = select(jobs).order_by(jobs.c.id.desc()).limit(limit)
        if states is not None:
            query = query.where(jobs.c.state.in_([JobState(s).value for s in states]))
        if requester is not None:
            query = query.where(jobs.c.requester == requester)
        async with self._read("list jobs") as conn:
            rows = (await conn.execute(query)).all()
        return [_job(row) for row in rows]

    async def start_job(self, job_id: int, *, owner: str) -> Job:
        """Mark a queued (or approved) job running, owned by the process `owner`."""
        async with self._write(f"start job {job_id}") as conn:
            result = await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state.in_(_STARTABLE))
                .values(state=JobState.RUNNING.value, started_at=utcnow(), owner=owner)
            )
            job = await _fetch_job(conn, job_id)
        if job is None:
            raise StoreError(f"job {job_id} does not exist")
        if result.rowcount != 1:
            raise StoreError(f"job {job_id} is {job.state.value}; it cannot start")
        return job

    async def finish_job(
        self, job_id: int, *, state: JobState, exit_code: int | None, error: str | None = None
    ) -> Job:
        """Record how a job ended; the first final state wins (a cancel is not overwritten).

        When the job already ended (say it was cancelled from another process), only the
        missing exit code, error and end time are filled in; the returned job shows the
        state that stands.
        """
        state = JobState(state)
        if not state.finished:
            raise ValueError(f"finish_job needs a final state, not {state.value}")
        now = utcnow()
        async with self._write(f"finish job {job_id}") as conn:
            result = await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state.not_in(_FINAL))
                .values(state=state.value, exit_code=exit_code, error=error, finished_at=now)
            )
            if result.rowcount != 1:
                await conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id)
                    .values(
                        exit_code=func.coalesce(jobs.c.exit_code, exit_code),
                        error=func.coalesce(jobs.c.error, error),
                        finished_at=_coalesce_time(jobs.c.finished_at, now),
                    )
                )
            job = await _fetch_job(conn, job_id)
        if job is None:
            raise StoreError(f"job {job_id} does not exist")
        return job

    async def set_state(
        self, job_id: int, state: JobState, *, expect: JobState | None = None
    ) -> bool:
        """Set a job's state; with `expect`, only if it is in that state now (compare-and-set).

        Entering a final state also records the end time. True when the job changed.
        """
        state = JobState(state)
        condition = jobs.c.id == job_id
        if expect is not None:
            condition = and_(condition, jobs.c.state == JobState(expect).value)
        values: dict[str, Any] = {"state": state.value}
        if state is JobState.QUEUED:
            # An approved job lines up behind those already waiting; re-queueing a queued
            # job keeps its place.
            values["queue_seq"] = case(
                (jobs.c.state == JobState.QUEUED.value, jobs.c.queue_seq), else_=_next_queue_seq()
            )
        if state.finished:
            values["finished_at"] = _coalesce_time(jobs.c.finished_at, utcnow())
        async with self._write(f"change the state of job {job_id}") as conn:
            result = await conn.execute(update(jobs).where(condition).values(**values))
        return bool(result.rowcount == 1)

    async def reconcile(self, *, is_owner_alive: Callable[[str], bool]) -> list[Job]:
        """Mark jobs left `running` by owners that are gone as `interrupted`; return them.

        Jobs of live owners (and running jobs without an owner) are left alone.
        """
        async with self._read("look for interrupted jobs") as conn:
            rows = (
                await conn.execute(
                    select(jobs.c.id, jobs.c.owner).where(
                        jobs.c.state == JobState.RUNNING.value, jobs.c.owner.is_not(None)
                    )
                )
            ).all()
        alive: dict[str, bool] = {}
        dead = []
        for job_id, owner in rows:
            if owner not in alive:
                alive[owner] = is_owner_alive(owner)
            if not alive[owner]:
                dead.append((int(job_id), str(owner)))
        interrupted = []
        for job_id, owner in dead:
            # The end and its audit entry in one transaction: no audit, no action — a job
            # whose end cannot be recorded stays `running` for the next look.
            async with self._audit_transaction(f"mark job {job_id} interrupted") as conn:
                result = await conn.execute(
                    update(jobs)
                    .where(
                        jobs.c.id == job_id,
                        jobs.c.state == JobState.RUNNING.value,
                        jobs.c.owner == owner,
                    )
                    .values(
                        state=JobState.INTERRUPTED.value,
                        finished_at=utcnow(),
                        error=f"the process running it ({owner}) ended before the job did",
                    )
                )
                job = await _fetch_job(conn, job_id) if result.rowcount == 1 else None
                if job is not None:
                    await _insert_audit(conn, _interrupted_event(job))
            if job is not None:
                interrupted.append(job)
        return interrupted

    async def release_orphaned_queue(self, *, is_owner_alive: Callable[[str], bool]) -> list[Job]:
        """Queued jobs whose waiting process is gone lose their owner; return them.

        They stay queued (SPEC §5.5: queued jobs survive a restart) until a long-lived
        process adopts them, and meanwhile they do not hold up the queue of their command.
        """
        async with self._read("look for orphaned queued jobs") as conn:
            rows = (
                await conn.execute(
                    select(jobs.c.id, jobs.c.owner).where(
                        jobs.c.state == JobState.QUEUED.value,
                        jobs.c.owner.is_not(None),
                        jobs.c.owner != ORPHANED,
                    )
                )
            ).all()
        dead = [(int(r.id), str(r.owner)) for r in rows if not is_owner_alive(str(r.owner))]
        released = []
        for job_id, owner in dead:
            async with self._write(f"release queued job {job_id}") as conn:
                result = await conn.execute(
                    update(jobs)
                    .where(
                        jobs.c.id == job_id,
                        jobs.c.state == JobState.QUEUED.value,
                        jobs.c.owner == owner,
                    )
                    .values(owner=ORPHANED)
                )
                job = await _fetch_job(conn, job_id) if result.rowcount == 1 else None
            if job is not None:
                released.append(job)
        return released

    async def adopt_job(self, job_id: int, *, owner: str) -> Job | None:
        """Take over a queued job nobody waits for; None when another process was faster."""
        async with self._write(f"adopt job {job_id}") as conn:
            result = await conn.execute(
                update(jobs)
                .where(
                    jobs.c.id == job_id,
                    jobs.c.state == JobState.QUEUED.value,
                    jobs.c.owner == ORPHANED,
                )
                .values(owner=owner)
            )
            return await _fetch_job(conn, job_id) if result.rowcount == 1 else None

    async def orphaned_queue(self, *, limit: int = 100) -> list[Job]:
        """Queued jobs that no process waits for, first in line first."""
        query = (
            select(jobs)
            .where(jobs.c.state == JobState.QUEUED.value, jobs.c.owner == ORPHANED)
            .order_by(_queue_key(), jobs.c.id)
            .limit(limit)
        )
        async with self._read("list orphaned queued jobs") as conn:
            return [_job(row) for row in (await conn.execute(query)).all()]

    # --- job control across processes (SPEC §5.5) ----------------------------------------

    async def claim_job(self, job_id: int, *, owner: str, limits: Limits) -> Claim:
        """Start a queued job for `owner` if the limits allow it now; otherwise say why not.

        Claims are serialised across processes (SQLite: BEGIN IMMEDIATE; PostgreSQL: an
        advisory lock), so the counts they check cannot change underneath them. With a
        per-command limit, jobs of one command start strictly in queue order.
        """
        async with self._write(f"start job {job_id}") as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CLAIM_LOCK_KEY}
                )
            job = await _fetch_job(conn, job_id)
            if job is None:
                raise StoreError(f"job {job_id} does not exist")
            if job.state is not JobState.QUEUED:
                return Claim(False, job, reason=f"job {job_id} is {job.state.value}")
            blocker = await _blocker(conn, job, limits)
            if blocker is not None:
                return Claim(False, job, blocked_by=blocker[0], reason=blocker[1])
            await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == JobState.QUEUED.value)
                .values(state=JobState.RUNNING.value, started_at=utcnow(), owner=owner)
            )
            job = await _fetch_job(conn, job_id)
        assert job is not None
        return Claim(True, job)

    async def set_job_catalog(
        self, job_id: int, *, commit: str | None, script_hash: str | None
    ) -> Job:
        """Record the catalog commit and script a job actually runs (it changed meanwhile)."""
        async with self._write(f"record the catalog commit of job {job_id}") as conn:
            await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(catalog_commit=commit, script_hash=script_hash)
            )
            job = await _fetch_job(conn, job_id)
        if job is None:
            raise StoreError(f"job {job_id} does not exist")
        return job

    async def set_process(self, job_id: int, *, pid: int, token: str) -> None:
        """Record the running job's process (group leader) and its OPSROOM_JOB_TOKEN."""
        async with self._write(f"record the process of job {job_id}") as conn:
            result = await conn.execute(
                update(jobs).where(jobs.c.id == job_id).values(pid=pid, process_token=token)
            )
        if result.rowcount != 1:
            raise StoreError(f"job {job_id} does not exist")

    async def request_cancel(self, job_id: int, *, by: str) -> Job:
        """Cancel a job that has not started, or ask the process running it to end it.

        Queued and awaiting-approval jobs become `cancelled` at once. For a running job
        the request is recorded (the first asker is kept) and its owning process, which
        polls `cancel_requests`, ends it. A finished job is returned unchanged.
        """
        now = utcnow()
        async with self._write(f"cancel job {job_id}") as conn:
            state = await conn.scalar(
                select(jobs.c.state).where(jobs.c.id == job_id).with_for_update()
            )
            if state is None:
                raise StoreError(f"job {job_id} does not exist")
            if state in _STARTABLE:
                await conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.state.in_(_STARTABLE))
                    .values(
                        state=JobState.CANCELLED.value,
                        finished_at=now,
                        cancel_requested_at=now,
                        cancel_requested_by=by,
                    )
                )
            elif state == JobState.RUNNING.value:
                await conn.execute(
                    update(jobs)
                    .where(
                        jobs.c.id == job_id,
                        jobs.c.state == JobState.RUNNING.value,
                        jobs.c.cancel_requested_at.is_(None),
                    )
                    .values(cancel_requested_at=now, cancel_requested_by=by)
                )
            job = await _fetch_job(conn, job_id)
        assert job is not None
        return job

    async def cancel_requests(self, job_ids: Collection[int]) -> dict[int, str]:
        """Of these jobs, the running ones with a pending cancel request, and who asked."""
        if not job_ids:
            return {}
        query = select(jobs.c.id, jobs.c.cancel_requested_by).where(
            jobs.c.id.in_(list(job_ids)),
            jobs.c.state == JobState.RUNNING.value,
            jobs.c.cancel_requested_at.is_not(None),
        )
        async with self._read("look for cancel requests") as conn:
            rows = (await conn.execute(query)).all()
        return {int(row.id): str(row.cancel_requested_by or "") for row in rows}

    async def queued_jobs(self, *, limit: int = 100) -> list[Job]:
        """Jobs waiting to start, first in line first."""
        query = (
            select(jobs)
            .where(jobs.c.state == JobState.QUEUED.value)
            .order_by(_queue_key(), jobs.c.id)
            .limit(limit)
        )
        async with self._read("list queued jobs") as conn:
            return [_job(row) for row in await conn.execute(query)]

    async def unnotified_interrupted(self, *, requester: str | None = None) -> list[Job]:
        """Interrupted jobs whose requester has not been told yet, oldest first."""
        query = (
            select(jobs)
            .where(jobs.c.state == JobState.INTERRUPTED.value, jobs.c.notified.is_(False))
            .order_by(jobs.c.id)
        )
        if requester is not None:
            query = query.where(jobs.c.requester == requester)
        async with self._read("list interrupted jobs") as conn:
            return [_job(row) for row in await conn.execute(query)]

    async def mark_notified(self, job_ids: Collection[int]) -> set[int]:
        """Record that these jobs' requesters were told; returns the ids not marked before.

        Mark first and tell only the returned ids, and two processes never both tell.
        """
        if not job_ids:
            return set()
        ids = list(job_ids)
        async with self._write("record interrupted jobs as told") as conn:
            fresh = set(
                await conn.scalars(
                    select(jobs.c.id)
                    .where(jobs.c.id.in_(ids), jobs.c.notified.is_(False))
                    .with_for_update()
                )
            )
            if fresh:
                await conn.execute(
                    update(jobs).where(jobs.c.id.in_(list(fresh))).values(notified=true())
                )
        return {int(i) for i in fresh}

    # --- output and events ----------------------------------------------------------------

    async def append_output(self, job_id: int, lines: Sequence[tuple[str, str]]) -> None:
        """Add (stream, text) lines after those already kept for the job."""
        if not lines:
            return
        size = sum(_line_bytes(line) for _, line in lines)
        async with self._write(f"keep output of job {job_id}") as conn:
            await _insert_output(conn, job_id, lines)
            await _count_output(conn, job_id, lines=len(lines), size=size, stored=size)

    async def record_output(
        self, job_id: int, lines: Sequence[tuple[str, str]], *, cap_bytes: int
    ) -> bool:
        """Add (stream, text) lines while the kept output stays within `cap_bytes`.

        Every line is counted (`output_lines`, `output_bytes`: UTF-8 text plus newline);
        from the first line that does not fit, nothing more is kept and the job is marked
        `output_truncated`. True while output is still being kept.
        """
        if not lines:
            async with self._read(f"read output of job {job_id}") as conn:
                truncated = await conn.scalar(
                    select(jobs.c.output_truncated).where(jobs.c.id == job_id)
                )
            return not truncated
        async with self._write(f"keep output of job {job_id}") as conn:
            return await _record(conn, job_id, lines, cap_bytes)

    async def record_outputs(
        self, batches: Mapping[int, Sequence[tuple[str, str]]], *, cap_bytes: int
    ) -> set[int]:
        """`record_output` for many jobs in one transaction; the ids no longer kept."""
        done: set[int] = set()
        batches = {job_id: lines for job_id, lines in batches.items() if lines}
        if not batches:
            return done
        async with self._write(f"keep output of {len(batches)} jobs") as conn:
            for job_id, lines in batches.items():
                if not await _record(conn, job_id, lines, cap_bytes):
                    done.add(job_id)
        return done

    async def add_attachment(
        self, job_id: int, *, name: str, content_type: str, data: bytes
    ) -> int:
        """Keep a file the job offered; returns the attachment's id."""
        async with self._write(f"keep a file of job {job_id}") as conn:
            if await conn.scalar(select(jobs.c.id).where(jobs.c.id == job_id)) is None:
                raise StoreError(f"job {job_id} does not exist")
            result = await conn.execute(
                insert(attachments).values(
                    job_id=job_id,
                    name=name,
                    content_type=content_type,
                    size=len(data),
                    data=data,
                    created_at=utcnow(),
                )
            )
            key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    async def attachments(self, job_id: int) -> list[tuple[int, str, str, int]]:
        """The job's files as (id, name, content_type, size), in the order they came."""
        query = (
            select(
                attachments.c.id,
                attachments.c.name,
                attachments.c.content_type,
                attachments.c.size,
            )
            .where(attachments.c.job_id == job_id)
            .order_by(attachments.c.id)
        )
        async with self._read(f"list files of job {job_id}") as conn:
            rows = (await conn.execute(query)).all()
        return [(int(r.id), str(r.name), str(r.content_type), int(r.size)) for r in rows]

    async def attachment_data(self, attachment_id: int) -> bytes | None:
        """The content of one attachment, or None when there is no such attachment."""
        query = select(attachments.c.data).where(attachments.c.id == attachment_id)
        async with self._read(f"read attachment {attachment_id}") as conn:
            data = await conn.scalar(query)
        return None if data is None else bytes(data)

    async def output(self, job_id: int, *, tail: int | None = None) -> list[tuple[str, str]]:
        """The job's output lines in order; with `tail`, only the last so many."""
        query = select(job_output.c.stream, job_output.c.text).where(job_output.c.job_id == job_id)
        if tail is None:
            query = query.order_by(job_output.c.seq)
        else:
            query = query.order_by(job_output.c.seq.desc()).limit(max(tail, 0))
        async with self._read(f"read output of job {job_id}") as conn:
            rows = [(str(r.stream), str(r.text)) for r in await conn.execute(query)]
        return rows if tail is None else rows[::-1]

    async def append_events(self, job_id: int, events: Sequence[Mapping[str, Any]]) -> None:
        """Add structured events (progress, table, status, ...) as JSON objects, in order."""
        if not events:
            return
        async with self._write(f"keep events of job {job_id}") as conn:
            first = await _next_seq(conn, job_events, job_id)
            await conn.execute(
                insert(job_events),
                [
                    {
                        "job_id": job_id,
                        "seq": first + i,
                        "data": json.dumps(dict(ev), ensure_ascii=False, default=str),
                    }
                    for i, ev in enumerate(events)
                ],
            )

    async def events(self, job_id: int) -> list[dict[str, Any]]:
        """The job's structured events in the order they were added."""
        query = (
            select(job_events.c.data)
            .where(job_events.c.job_id == job_id)
            .order_by(job_events.c.seq)
        )
        async with self._read(f"read events of job {job_id}") as conn:
            return [json.loads(data) for data in (await conn.scalars(query))]

    # --- audit ----------------------------------------------------------------------------

    async def append_audit(self, event: AuditEvent) -> AuditRecord:
        """Append one hash-chained entry, durably; StoreError when it cannot be written.

        Appends are serialised across processes (SQLite: BEGIN IMMEDIATE; PostgreSQL: an
        advisory lock), so each entry's previous hash is really the last one. The commit
        is flushed to disk before this returns (SQLite: synchronous=FULL for this
        transaction only; PostgreSQL: synchronous_commit=on), so an entry that was
        acknowledged survives a power loss.
        """
        async with self._audit_transaction("write the audit entry") as conn:
            return await _insert_audit(conn, event)

    @asynccontextmanager
    async def _audit_transaction(self, doing: str) -> AsyncIterator[AsyncConnection]:
        """A durable transaction holding the audit append lock (see `append_audit`)."""
        async with (
            self._guard(doing),
            self._writer.connect() as conn,
            _fully_synchronous(conn),
            conn.begin(),
        ):
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SET LOCAL synchronous_commit = on"))
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _AUDIT_LOCK_KEY}
                )
            yield conn

    async def audit(self, *, limit: int = 100) -> list[AuditRecord]:
        """The latest audit entries, newest first."""
        query = select(audit).order_by(audit.c.id.desc()).limit(limit)
        async with self._read("read the audit trail") as conn:
            return [_audit_record(row) for row in await conn.execute(query)]

    async def iter_audit(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> AsyncIterator[AuditRecord]:
        """Audit entries in id order with `since <= at < until`, read a page at a time."""
        after: int | None = None  # not 0: a forged entry #0 or #-1 must show up too
        while True:
            query = select(audit).order_by(audit.c.id).limit(_PAGE)
            if after is not None:
                query = query.where(audit.c.id > after)
            if since is not None:
                query = query.where(audit.c.at >= literal(since, UTCDateTime()))
            if until is not None:
                query = query.where(audit.c.at < literal(until, UTCDateTime()))
            async with self._read("read the audit trail") as conn:
                rows = (await conn.execute(query)).all()
            for row in rows:
                try:
                    record = _audit_record(row)
                except (TypeError, ValueError) as e:
                    raise StoreError(f"audit entry #{row.id} cannot be read: {e}") from None
                yield record
            if len(rows) < _PAGE:
                return
            after = int(rows[-1].id)

    async def check_audit(self, *, anchor: tuple[int, str] | None = None) -> AuditVerdict:
        """Recompute the whole chain, and compare it with `anchor` when one is given.

        The anchor is an entry id and its hash (or a prefix of it) kept outside the
        database; a chain alone cannot tell that its last entries were deleted.
        """
        check = ChainCheck()
        after: int | None = None  # not 0: a forged entry #0 or #-1 must show up too
        async with self._read("read the audit trail") as conn:
            while check.problem is None:
                query = select(audit).order_by(audit.c.id).limit(_PAGE)
                if after is not None:
                    query = query.where(audit.c.id > after)
                rows = (await conn.execute(query)).all()
                for row in rows:
                    try:
                        record = _audit_record(row)
                    except (TypeError, ValueError) as e:
                        check.fail(unreadable(int(row.id), e))
                        break
                    if not check.feed(record):
                        break
                if len(rows) < _PAGE:
                    break
                after = int(rows[-1].id)
            problem = check.problem
            if problem is not None and problem.problem == RELINKED:
                # Where does the broken link point now? That tells reordering from insertion.
                prev = await conn.scalar(
                    select(audit.c.prev_hash).where(audit.c.id == problem.entry_id)
                )
                follows = await conn.scalar(
                    select(func.min(audit.c.id)).where(
                        audit.c.hash == prev, audit.c.id != problem.entry_id
                    )
                )
                check.problem = link_break(
                    problem.entry_id, None if follows is None else int(follows)
                )
            elif problem is None and anchor is not None:
                anchor_id, anchor_hash = anchor
                found = await conn.scalar(select(audit.c.hash).where(audit.c.id == anchor_id))
                verdict = check.verdict()
                mismatch = anchor_break(anchor_id, anchor_hash, found, verdict.last_id)
                if mismatch is not None:
                    check.fail(mismatch)
        return check.verdict()

    async def verify_audit(self) -> int | None:
        """Recompute the chain; the id of the first broken entry, or None when intact."""
        verdict = await self.check_audit()
        return None if verdict.broken is None else verdict.broken.entry_id

    # --- approvals (SPEC §6.3) ------------------------------------------------------------

    async def request_approval(
        self,
        job_id: int,
        *,
        role: str,
        required: int,
        params_hash: str,
        requested_by: str,
        ttl: float,
        now: datetime | None = None,
    ) -> ApprovalRequest:
        """Put a queued (or just created) job up for approval by `required` members of `role`.

        The job waits in `awaiting_approval` until `ttl` seconds from now; the request
        binds `params_hash` (see `policy.approval.params_hash`).
        """
        async with self._write(f"put job {job_id} up for approval") as conn:
            await approval_sql.open_request(
                conn,
                job_id,
                role=role,
                required=required,
                params_hash=params_hash,
                requested_by=requested_by,
                now=now or utcnow(),
                ttl=ttl,
            )
            request = await approval_sql.load(conn, job_id)
        assert request is not None
        return request

    async def approval(self, job_id: int) -> ApprovalRequest | None:
        """The job's approval request and its votes, or None when it never needed one."""
        async with self._read(f"read the approval of job {job_id}") as conn:
            return await approval_sql.load(conn, job_id)

    async def pending_approvals(
        self, *, roles: Collection[str] | None = None, now: datetime | None = None
    ) -> list[ApprovalRequest]:
        """Requests still open to votes (not expired), oldest first; optionally for `roles`."""
        async with self._read("list pending approvals") as conn:
            return await approval_sql.list_pending(conn, roles=roles, now=now or utcnow())

    async def vote(
        self,
        job_id: int,
        *,
        approver: str,
        decision: VoteDecision | str,
        reason: str = "",
        params_hash: str,
        now: datetime | None = None,
    ) -> VoteResult:
        """Record an approve or deny atomically across processes; the caller checked membership.

        Refused (and not recorded) when the job is not awaiting approval, the request
        expired (the job is then marked `expired`), the requester votes, the approver
        already approved, or `params_hash` differs from the one requested. The deny, or the
        approval that reaches the quorum, settles the job — `denied`, or `queued` at the
        back of the line — and only that one caller gets `decided=True`.
        """
        decision = VoteDecision(decision)
        async with self._write(f"record a vote on job {job_id}") as conn:
            cast = await approval_sql.cast_vote(
                conn,
                job_id,
                approver=approver,
                decision=decision,
                reason=reason,
                params_hash=params_hash,
                now=now or utcnow(),
                queue_seq=_next_queue_seq(),
            )
            job = await _fetch_job(conn, job_id)
        assert job is not None
        return VoteResult(
            accepted=cast.accepted,
            decided=cast.decided,
            approved=cast.approved,
            job=job,
            reason=cast.reason,
            refusal=cast.refusal,
        )

    async def expire_approvals(self, *, now: datetime | None = None) -> list[int]:
        """Mark waiting jobs whose approval ran out `expired`; returns their ids."""
        now = now or utcnow()
        # Every opsroom start calls this: look first, take the write lock only when due.
        async with self._read("look for expired approvals") as conn:
            due = await approval_sql.any_due(conn, now=now)
        if not due:
            return []
        async with self._write("expire approvals") as conn:
            return await approval_sql.expire_due(conn, now=now)

    # --- web console: chat history, accounts, sessions, API tokens (SPEC §9) -------------

    async def add_web_message(
        self, *, room: str, author: str, kind: str, payload: Mapping[str, Any]
    ) -> web_sql.WebMessage:
        """Append an event to a room's history; its `seq` orders the room."""
        async with self._write(f"keep a message of {room}") as conn:
            return await web_sql.add_message(
                conn, room=room, author=author, kind=kind, payload=payload, now=utcnow()
            )

    async def web_messages(
        self, room: str, *, after: int = 0, limit: int = 200
    ) -> list[web_sql.WebMessage]:
        """A room's events after `after` (oldest first); with after=0 the newest `limit`."""
        async with self._read(f"read messages of {room}") as conn:
            return await web_sql.list_messages(conn, room=room, after=after, limit=limit)

    async def web_rooms(self, *, prefix: str = "web:", limit: int = 100) -> list[str]:
        """Rooms with history under `prefix`, most recently active first."""
        async with self._read("list rooms") as conn:
            return await web_sql.list_rooms(conn, prefix=prefix, limit=limit)

    async def web_user_count(self) -> int:
        """How many local web accounts exist."""
        async with self._read("count accounts") as conn:
            return await web_sql.count_users(conn)

    async def web_user(self, username: str) -> web_sql.WebUser | None:
        """The local account `username`, or None."""
        async with self._read("read an account") as conn:
            return await web_sql.get_user(conn, username)

    async def put_web_user(
        self, username: str, *, password_hash: str, admin: bool = False
    ) -> web_sql.WebUser:
        """Create an account or set its password (ending its sessions)."""
        async with self._write("save an account") as conn:
            return await web_sql.put_user(
                conn, username=username, password_hash=password_hash, admin=admin, now=utcnow()
            )

    async def add_web_session(self, token_hash: str, *, username: str, ttl: float) -> None:
        """Record a session (by the hash of its cookie) that lasts `ttl` seconds."""
        now = utcnow()
        async with self._write("open a session") as conn:
            await web_sql.add_session(
                conn,
                token_hash=token_hash,
                username=username,
                now=now,
                expires_at=now + timedelta(seconds=ttl),
            )

    async def web_session_user(self, token_hash: str) -> web_sql.WebUser | None:
        """The account behind a live session, or None."""
        async with self._read("read a session") as conn:
            return await web_sql.session_user(conn, token_hash=token_hash, now=utcnow())

    async def drop_web_session(self, token_hash: str) -> None:
        """End one session."""
        async with self._write("end a session") as conn:
            await web_sql.drop_session(conn, token_hash=token_hash)

    async def add_api_token(self, *, name: str, username: str, token_hash: str) -> web_sql.ApiToken:
        """Record an API token by its hash."""
        async with self._write("create an API token") as conn:
            return await web_sql.add_token(
                conn, name=name, username=username, token_hash=token_hash, now=utcnow()
            )

    async def api_token_user(self, token_hash: str) -> web_sql.WebUser | None:
        """The account an API token belongs to, or None."""
        async with self._write("check an API token") as conn:
            return await web_sql.token_user(conn, token_hash=token_hash, now=utcnow())

    async def api_tokens(self, *, username: str | None = None) -> list[web_sql.ApiToken]:
        """API tokens, newest first (only `username`'s when given)."""
        async with self._read("list API tokens") as conn:
            return await web_sql.list_tokens(conn, username=username)

    async def drop_api_token(self, token_id: int, *, username: str | None = None) -> bool:
        """Revoke an API token; False when there was none (of `username`)."""
        async with self._write("revoke an API token") as conn:
            return await web_sql.drop_token(conn, token_id=token_id, username=username)

    async def find_jobs(
        self,
        *,
        states: Collection[JobState] | None = None,
        command: str | None = None,
        requester: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[Job]:
        """Jobs matching every given filter, newest first; `before` pages by id."""
        async with self._read("find jobs") as conn:
            ids = await web_sql.job_ids(
                conn,
                states=states,
                command=command,
                requester=requester,
                before=before,
                limit=limit,
            )
            if not ids:
                return []
            query = select(jobs).where(jobs.c.id.in_(ids)).order_by(jobs.c.id.desc())
            rows = (await conn.execute(query)).all()
        return [_job(row) for row in rows]

    async def job_counts(self) -> dict[str, int]:
        """How many jobs are in each state (for metrics)."""
        async with self._read("count jobs") as conn:
            return await web_sql.job_counts(conn)

    # --- chat deliveries (platform retries and redeliveries run once) ----------------------

    async def first_delivery(self, key: str) -> bool:
        """Record a platform delivery `key`; False when it was already received."""
        async with self._write("record a delivery") as conn:
            return await delivery_sql.first(conn, key, now=utcnow())

    # --- the outbox: replies kept while a chat platform is unreachable (SPEC §5.2) ---------

    async def outbox_put(
        self,
        adapter: str,
        room: str,
        thread_id: str | None,
        reply: Mapping[str, Any],
        *,
        job_id: int | None = None,
        live: bool = False,
    ) -> int:
        """Keep a reply (wire JSON) for `adapter`; a live view replaces older ones of its job."""
        async with self._write(f"keep a reply for {adapter}") as conn:
            return await outbox_sql.put(
                conn,
                adapter=adapter,
                room=room,
                thread_id=thread_id,
                reply=reply,
                job_id=job_id,
                live=live,
                now=utcnow(),
            )

    async def outbox_pending(self, adapter: str, *, limit: int = 100) -> list[outbox_sql.KeptReply]:
        """Replies waiting for `adapter`, oldest first."""
        async with self._read(f"read the replies kept for {adapter}") as conn:
            return await outbox_sql.pending(conn, adapter=adapter, limit=limit)

    async def outbox_count(self, adapter: str) -> int:
        """How many replies wait for `adapter`."""
        async with self._read(f"count the replies kept for {adapter}") as conn:
            return await outbox_sql.count(conn, adapter=adapter)

    async def outbox_done(self, ids: Collection[int]) -> None:
        """Forget kept replies that were delivered."""
        async with self._write("forget delivered replies") as conn:
            await outbox_sql.done(conn, ids)

    # --- schedules (SPEC §5.7); the SQL is in store/schedules.py ---------------------------
    # Every change is written with its audit entry in one transaction: no audit, no change.

    async def add_schedule(
        self,
        *,
        cron: str,
        tz: str,
        command: str,
        room: str,
        creator: str,
        now: datetime,
        audit: Callable[[Schedule], AuditEvent],
    ) -> Schedule:
        """Record a new schedule together with the audit entry `audit` makes of it."""
        async with self._audit_transaction("record a schedule") as conn:
            schedule = await schedule_sql.create(
                conn, cron=cron, tz=tz, command=command, room=room, creator=creator, now=now
            )
            await _insert_audit(conn, audit(schedule))
        return schedule

    async def schedule(self, schedule_id: int) -> Schedule | None:
        """One schedule, or None."""
        async with self._read(f"read schedule {schedule_id}") as conn:
            return await schedule_sql.get(conn, schedule_id)

    async def schedules(
        self, *, room: str | None = None, creator: str | None = None, active: bool = False
    ) -> list[Schedule]:
        """Schedules in id order, optionally of one room or creator, or only unpaused ones."""
        async with self._read("list schedules") as conn:
            return await schedule_sql.find(conn, room=room, creator=creator, active=active)

    async def count_schedules(self, *, creator: str) -> int:
        """How many schedules `creator` has."""
        async with self._read("count schedules") as conn:
            return await schedule_sql.count(conn, creator=creator)

    async def remove_schedule(self, schedule_id: int, *, audit: AuditEvent) -> bool:
        """Delete a schedule and record `audit`; False (nothing recorded) when it was gone."""
        async with self._audit_transaction(f"remove schedule {schedule_id}") as conn:
            removed = await schedule_sql.remove(conn, schedule_id)
            if removed:
                await _insert_audit(conn, audit)
        return removed

    async def pause_schedule(
        self, schedule_id: int, *, paused: bool, now: datetime, audit: AuditEvent
    ) -> Schedule | None:
        """Pause (or resume) and record `audit`; None, nothing recorded, when nothing changed."""
        async with self._audit_transaction(f"pause or resume schedule {schedule_id}") as conn:
            changed = await schedule_sql.set_paused(conn, schedule_id, paused=paused, now=now)
            if changed is not None:
                await _insert_audit(conn, audit)
        return changed

    async def claim_schedule(
        self,
        schedule_id: int,
        *,
        version: int,
        cursor: datetime,
        due: datetime | None,
        result: str,
        audit: Sequence[AuditEvent],
    ) -> bool:
        """Claim the due times up to `cursor` (see `schedules.claim`) and record `audit`.

        True for exactly one process per version; the others record nothing.
        """
        async with self._audit_transaction(f"claim schedule {schedule_id}") as conn:
            claimed = await schedule_sql.claim(
                conn, schedule_id, version=version, cursor=cursor, due=due, result=result
            )
            if claimed:
                for event in audit:
                    await _insert_audit(conn, event)
        return claimed

    async def schedule_ran(
        self, schedule_id: int, *, due: datetime, job_id: int | None, result: str
    ) -> None:
        """Record what came of the firing at `due`."""
        async with self._write(f"record what schedule {schedule_id} ran") as conn:
            await schedule_sql.record_result(
                conn, schedule_id, due=due, job_id=job_id, result=result
            )


# --- helpers ------------------------------------------------------------------------------


async def _fetch_job(conn: AsyncConnection, job_id: int) -> Job | None:
    row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()
    return None if row is None else _job(row)


async def _next_seq(conn: AsyncConnection, table: Any, job_id: int) -> int:
    # Lock the job row where the backend can (PostgreSQL), so two appenders to one job
    # cannot pick the same sequence number; SQLite is already serialised by BEGIN IMMEDIATE.
    await conn.execute(select(jobs.c.id).where(jobs.c.id == job_id).with_for_update())
    last = await conn.scalar(select(func.max(table.c.seq)).where(table.c.job_id == job_id))
    return 1 if last is None else int(last) + 1


async def _record(
    conn: AsyncConnection, job_id: int, lines: Sequence[tuple[str, str]], cap_bytes: int
) -> bool:
    """Keep what fits of `lines` under the cap, count them all; True while still keeping."""
    sizes = [_line_bytes(line) for _, line in lines]
    row = (
        await conn.execute(
            select(jobs.c.output_stored_bytes, jobs.c.output_truncated)
            .where(jobs.c.id == job_id)
            .with_for_update()
        )
    ).first()
    if row is None:
        raise StoreError(f"job {job_id} does not exist")
    truncated = bool(row.output_truncated)
    keep, room = 0, cap_bytes - int(row.output_stored_bytes)
    if not truncated:
        for size in sizes:
            if size > room:
                truncated = True
                break
            room -= size
            keep += 1
    if keep:
        await _insert_output(conn, job_id, lines[:keep])
    await _count_output(
        conn,
        job_id,
        lines=len(lines),
        size=sum(sizes),
        stored=sum(sizes[:keep]),
        truncated=truncated,
    )
    return not truncated


async def _insert_output(
    conn: AsyncConnection, job_id: int, lines: Sequence[tuple[str, str]]
) -> None:
    first = await _next_seq(conn, job_output, job_id)
    await conn.execute(
        insert(job_output),
        [
            {"job_id": job_id, "seq": first + i, "stream": stream, "text": line}
            for i, (stream, line) in enumerate(lines)
        ],
    )


async def _count_output(
    conn: AsyncConnection,
    job_id: int,
    *,
    lines: int,
    size: int,
    stored: int,
    truncated: bool = False,
) -> None:
    values: dict[str, Any] = {
        "output_lines": jobs.c.output_lines + lines,
        "output_bytes": jobs.c.output_bytes + size,
        "output_stored_bytes": jobs.c.output_stored_bytes + stored,
    }
    if truncated:
        values["output_truncated"] = True
    await conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))


def _line_bytes(line: str) -> int:
    """What a line costs against the cap: its UTF-8 bytes and the newline it came with."""
    if line.isascii():
        return len(line) + 1
    return len(line.encode("utf-8", "surrogatepass")) + 1


def _queue_key() -> Any:
    return func.coalesce(jobs.c.queue_seq, jobs.c.id)


def _next_queue_seq() -> Any:
    # From an alias, so that inside UPDATE jobs the subquery is not correlated to the row.
    others = jobs.alias("queue")
    return select(func.coalesce(func.max(others.c.queue_seq), 0) + 1).scalar_subquery()


async def _blocker(conn: AsyncConnection, job: Job, limits: Limits) -> tuple[int, str] | None:
    """The job (and reason) that keeps `job` from starting now, or None when it may start."""
    # Running jobs are few (at most the overall limit), so one small read serves every check.
    running = (
        await conn.execute(
            select(jobs.c.id, jobs.c.command, jobs.c.requester)
            .where(jobs.c.state == JobState.RUNNING.value)
            .order_by(jobs.c.id)
        )
    ).all()
    if limits.per_command is not None:
        same = [int(r.id) for r in running if r.command == job.command]
        mine = await conn.scalar(select(_queue_key()).where(jobs.c.id == job.id))
        ahead = list(
            await conn.scalars(
                select(jobs.c.id)
                .where(
                    jobs.c.command == job.command,
                    jobs.c.state == JobState.QUEUED.value,
                    # Orphans (no process waits for them) do not hold up the line.
                    or_(jobs.c.owner.is_(None), jobs.c.owner != ORPHANED),
                    or_(
                        _queue_key() < mine,
                        and_(_queue_key() == mine, jobs.c.id < job.id),
                    ),
                )
                .order_by(_queue_key(), jobs.c.id)
                .limit(max(limits.per_command, 1))
            )
        )
        # Older queued jobs take the free places first (FIFO).
        if len(same) + len(ahead) >= limits.per_command:
            reason = per_command_reason(job.command, limits.per_command)
            if same:
                return same[0], reason
            return int(ahead[0]), f"{reason}; job {ahead[0]} is ahead in the queue"
    if len(running) >= limits.total:
        return int(running[0].id), total_reason(limits.total)
    own = [int(r.id) for r in running if r.requester == job.requester]
    if len(own) >= limits.per_user:
        return own[0], per_user_reason(limits.per_user)
    return None


async def _discard(engine: AsyncEngine, threads_before: set[threading.Thread]) -> None:
    """Dispose of an engine that failed to open, and let its driver threads finish.

    When aiosqlite fails to connect, its worker thread reports its own shutdown to the
    event loop a moment later; if the loop has closed by then (a CLI exiting on the
    error) the thread dies with "Event loop is closed". Waiting here avoids that.
    """
    await engine.dispose()
    for thread in set(threading.enumerate()) - threads_before:
        if "_connection_worker_thread" in thread.name:
            await asyncio.to_thread(thread.join, 1.0)


def _coalesce_time(column: Any, value: datetime) -> Any:
    return case((column.is_(None), literal(value, UTCDateTime())), else_=column)


def _job(row: Row[Any]) -> Job:
    return Job(
        id=row.id,
        command=row.command,
        params=json.loads(row.params),
        state=JobState(row.state),
        requester=row.requester,
        room=row.room,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        exit_code=row.exit_code,
        catalog_commit=row.catalog_commit,
        script_hash=row.script_hash,
        owner=row.owner,
        dry_run=bool(row.dry_run),
        error=row.error,
        pid=row.pid,
        process_token=row.process_token,
        cancel_requested_by=row.cancel_requested_by,
        output_lines=int(row.output_lines),
        output_truncated=bool(row.output_truncated),
        notified=bool(row.notified),
    )


async def _insert_audit(conn: AsyncConnection, event: AuditEvent) -> AuditRecord:
    """Append one chained entry inside a transaction that holds the audit append lock."""
    try:
        params = params_json(event.params)
    except (TypeError, ValueError) as e:
        raise StoreError(f"audit entry could not be written: parameters: {e}") from None
    last = (
        await conn.execute(select(audit.c.id, audit.c.hash).order_by(audit.c.id.desc()).limit(1))
    ).first()
    entry_id, prev = (1, GENESIS_HASH) if last is None else (int(last.id) + 1, last.hash)
    at = utcnow()
    digest = entry_hash(prev, entry_id, at, event)
    await conn.execute(
        insert(audit).values(
            id=entry_id,
            at=at,
            action=event.action,
            principal=event.principal,
            room=event.room,
            command=event.command,
            params=params,
            job_id=event.job_id,
            outcome=event.outcome,
            reason=event.reason,
            catalog_commit=event.catalog_commit,
            script_hash=event.script_hash,
            prev_hash=prev,
            hash=digest,
        )
    )
    return AuditRecord(id=entry_id, at=at, event=event, prev_hash=prev, hash=digest)


def _interrupted_event(job: Job) -> AuditEvent:
    """The `job.end` entry of a job whose process died before it could write one."""
    return AuditEvent(
        action="job.end",
        principal=job.requester,
        room=job.room,
        command=job.command,
        job_id=job.id,
        outcome=JobState.INTERRUPTED.value,
        reason=job.error or "",
        catalog_commit=job.catalog_commit,
        script_hash=job.script_hash,
    )


def _audit_record(row: Row[Any]) -> AuditRecord:
    event = AuditEvent(
        action=row.action,
        principal=row.principal,
        room=row.room,
        command=row.command,
        params=None if row.params is None else json.loads(row.params),
        job_id=row.job_id,
        outcome=row.outcome,
        reason=row.reason,
        catalog_commit=row.catalog_commit,
        script_hash=row.script_hash,
    )
    return AuditRecord(id=row.id, at=row.at, event=event, prev_hash=row.prev_hash, hash=row.hash)


@asynccontextmanager
async def _fully_synchronous(conn: AsyncConnection) -> AsyncIterator[None]:
    """On SQLite, fsync each commit made inside (synchronous=FULL); NORMAL again after.

    SQLite refuses to change the safety level inside a transaction, so it is set on the
    driver's connection around it. Other writes sharing the pool (job output) keep NORMAL,
    which under WAL survives a crash of the process, though not a power loss.
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    try:
        await (await driver.execute("PRAGMA synchronous = FULL")).close()
    except sqlite3.Error as e:
        raise StoreError(f"could not make the audit write durable: {e}") from None
    try:
        yield
    finally:
        try:
            await (await driver.execute("PRAGMA synchronous = NORMAL")).close()
        except sqlite3.Error:
            # Never hand a FULL connection back to the pool: it would slow every write.
            await conn.invalidate()


def _reason(e: BaseException) -> str:
    """The driver's own words, without SQLAlchemy's statement dump."""
    orig = getattr(e, "orig", None)
    return str(orig if orig is not None else e).strip() or type(e).__name__


def _open_failure(url: str, e: BaseException) -> str:
    """A message saying what went wrong opening the store, and for SQLite files, why."""
    reason = _reason(e)
    message = f"cannot open the store {redacted(url)}: {reason}"
    path = sqlite_path(url)
    if path is None:
        return message
    file = Path(path).absolute()
    folder = file.parent
    hint = ""
    if file.is_dir():
        hint = f"{file} is a folder, not a database file"
    elif not folder.is_dir():
        hint = f"the folder {folder} does not exist"
    elif "not a database" in reason:
        hint = f"{file} is not a SQLite database"
    elif "readonly" in reason or "read-only" in reason or not os.access(folder, os.W_OK):
        hint = (
            f"{file} or its folder is read-only; opsroom writes the file and its "
            "-wal and -shm companions beside it"
        )
    elif "unable to open" in reason:
        hint = f"check that {file} can be created and written"
    return f"{message} ({hint})" if hint else message
