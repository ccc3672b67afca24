"""Job records: creating, finding and ending jobs, their process, cancel requests, and the
jobs left running by a process that died (SPEC §5.5).

Which queued job may start, and queued jobs nobody waits for, are in `queue.py`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Integer,
    Row,
    Text,
    bindparam,
    case,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from opsroom.errors import StoreError
from opsroom.model.audit import AuditEvent
from opsroom.model.jobs import Job, JobState
from opsroom.store.audit import LastEntry, audited, insert_audit, last_entry
from opsroom.store.database import Part
from opsroom.store.notify import Topic, send_notices
from opsroom.store.output import record_lines
from opsroom.store.prepared import Prepared
from opsroom.store.schema import UTCDateTime, jobs, utcnow

_FINAL = [s.value for s in JobState if s.finished]
_NOT_STARTED = [JobState.QUEUED.value, JobState.AWAITING_APPROVAL.value]


@dataclass(frozen=True)
class End:
    """How a job ended, and what is recorded with its end in the same transaction.

    `error` is already masked; `output` are the job's (stream, text) lines not yet kept,
    kept within `cap_bytes`; `audit` makes its `job.end` entry from the job as it ended;
    `pid` is the job's process when it was not recorded yet (`OutputWriter.note_pid`).
    """

    state: JobState
    exit_code: int | None
    error: str | None = None
    output: Sequence[tuple[str, str]] = ()
    cap_bytes: int = 0
    audit: Callable[[Job], AuditEvent] | None = None
    pid: int | None = None


class Jobs(Part):
    """Job records and their life from creation to the end (or interruption)."""

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
        values = new_job_values(
            command=command,
            params=params,
            requester=requester,
            room=room,
            state=state,
            catalog_commit=catalog_commit,
            script_hash=script_hash,
            dry_run=dry_run,
            owner=owner,
        )
        async with self._db.write("record a job") as conn:
            return await insert_job(conn, values)

    async def get_job(self, job_id: int) -> Job | None:
        """The job with this id, or None."""
        async with self._db.read(f"read job {job_id}") as conn:
            return await fetch_job(conn, job_id)

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
        async with self._db.read("list jobs") as conn:
            rows = (await conn.execute(query)).all()
        return [job_from_row(row) for row in rows]

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
        query = select(jobs).order_by(jobs.c.id.desc()).limit(limit)
        if states:
            query = query.where(jobs.c.state.in_([JobState(s).value for s in states]))
        if command is not None:
            query = query.where(jobs.c.command == command)
        if requester is not None:
            query = query.where(jobs.c.requester == requester)
        if before is not None:
            query = query.where(jobs.c.id < before)
        async with self._db.read("find jobs") as conn:
            rows = (await conn.execute(query)).all()
        return [job_from_row(row) for row in rows]

    async def job_counts(self) -> dict[str, int]:
        """How many jobs are in each state (for metrics)."""
        query = select(jobs.c.state, func.count()).group_by(jobs.c.state)
        async with self._db.read("count jobs") as conn:
            return {str(state): int(n) for state, n in (await conn.execute(query)).all()}

    async def finish_job(
        self, job_id: int, *, state: JobState, exit_code: int | None, error: str | None = None
    ) -> Job:
        """Record how a job ended; the first final state wins (a cancel is not overwritten).

        When the job already ended (say it was cancelled from another process), only the
        missing exit code, error and end time are filled in; the returned job shows the
        state that stands.
        """
        state = _final(state)
        async with self._db.write(f"finish job {job_id}") as conn:
            job, _ = await _finish(conn, job_id, state, exit_code, error)
            return job

    async def end_job(self, job_id: int, end: End) -> Job:
        """Record a job's end, its last output lines and its audit entry: one durable commit.

        As `finish_job` (the first final state wins), with `end.output` kept under the cap
        first and `end.audit` made from the job as it ended. No entry, no end: when any
        part fails nothing is kept and the job stays as it was, for the caller to retry.
        Shares its commit with the other durable writes of the moment (`commit.py`).
        """
        state = _final(end.state)
        async with audited(self._db, f"record the end of job {job_id}") as conn:
            if end.output:
                await record_lines(conn, job_id, end.output, end.cap_bytes)
            job, last = await _finish(
                conn, job_id, state, end.exit_code, end.error, pid=end.pid, audited=True
            )
            if end.audit is not None:
                await insert_audit(conn, end.audit(job), last=last)
        return job

    async def set_job_catalog(
        self, job_id: int, *, commit: str | None, script_hash: str | None
    ) -> Job:
        """Record the catalog commit and script a job actually runs (it changed meanwhile)."""
        async with self._db.write(f"record the catalog commit of job {job_id}") as conn:
            await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(catalog_commit=commit, script_hash=script_hash)
            )
            job = await fetch_job(conn, job_id)
        if job is None:
            raise StoreError(f"job {job_id} does not exist")
        return job

    async def set_process(self, job_id: int, *, pid: int, token: str) -> None:
        """Record the running job's process (group leader) and its OPSROOM_JOB_TOKEN."""
        async with self._db.write(f"record the process of job {job_id}") as conn:
            result = await conn.execute(
                update(jobs).where(jobs.c.id == job_id).values(pid=pid, process_token=token)
            )
        if result.rowcount != 1:
            raise StoreError(f"job {job_id} does not exist")

    # --- cancel across processes --------------------------------------------------------

    async def request_cancel(self, job_id: int, *, by: str) -> Job:
        """Cancel a job that has not started, or ask the process running it to end it.

        Queued and awaiting-approval jobs become `cancelled` at once. For a running job
        the request is recorded (the first asker is kept) and its owning process, which
        polls `cancel_requests`, ends it. A finished job is returned unchanged.
        """
        now = utcnow()
        async with self._db.write(f"cancel job {job_id}") as conn:
            state = await conn.scalar(
                select(jobs.c.state).where(jobs.c.id == job_id).with_for_update()
            )
            if state is None:
                raise StoreError(f"job {job_id} does not exist")
            if state in _NOT_STARTED:
                await conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.state.in_(_NOT_STARTED))
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
            if state in _NOT_STARTED or state == JobState.RUNNING.value:
                # Whoever follows or runs it hears of it now, not at its next look (notify.py).
                await send_notices(conn, Topic.CANCEL, [job_id])
            if state in _NOT_STARTED:
                await send_notices(conn, Topic.END, [job_id])  # it ended here and now
            job = await fetch_job(conn, job_id)
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
        async with self._db.read("look for cancel requests") as conn:
            rows = (await conn.execute(query)).all()
        return {int(row.id): str(row.cancel_requested_by or "") for row in rows}

    # --- jobs whose process died ----------------------------------------------------------

    async def reconcile(
        self,
        *,
        is_owner_alive: Callable[[str], bool],
        reason: Callable[[str], str] | None = None,
    ) -> list[Job]:
        """Mark jobs left `running` by owners that are gone as `interrupted`; return them.

        Jobs of live owners (and running jobs without an owner) are left alone. `reason`
        words why, from the owner (default: its process ended before the job did).
        """
        async with self._db.read("look for interrupted jobs") as conn:
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
            async with audited(self._db, f"mark job {job_id} interrupted") as conn:
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
                        error=(
                            reason(owner)
                            if reason is not None
                            else f"the process running it ({owner}) ended before the job did"
                        ),
                    )
                )
                job = await fetch_job(conn, job_id) if result.rowcount == 1 else None
                if job is not None:
                    await insert_audit(conn, _interrupted_event(job))
                    await send_notices(conn, Topic.END, [job_id])  # a `cancel` waits for it
            if job is not None:
                interrupted.append(job)
        return interrupted

    async def unnotified_interrupted(self, *, requester: str | None = None) -> list[Job]:
        """Interrupted jobs whose requester has not been told yet, oldest first."""
        query = (
            select(jobs)
            .where(jobs.c.state == JobState.INTERRUPTED.value, jobs.c.notified.is_(False))
            .order_by(jobs.c.id)
        )
        if requester is not None:
            query = query.where(jobs.c.requester == requester)
        async with self._db.read("list interrupted jobs") as conn:
            return [job_from_row(row) for row in await conn.execute(query)]

    async def mark_notified(self, job_ids: Collection[int]) -> set[int]:
        """Record that these jobs' requesters were told; returns the ids not marked before.

        Mark first and tell only the returned ids, and two processes never both tell.
        """
        if not job_ids:
            return set()
        ids = list(job_ids)
        async with self._db.write("record interrupted jobs as told") as conn:
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


# --- shared with the other parts that touch jobs ------------------------------------------


def new_job_values(
    *,
    command: str,
    params: Mapping[str, Any],
    requester: str,
    room: str,
    state: JobState,
    catalog_commit: str | None,
    script_hash: str | None,
    dry_run: bool,
    owner: str | None,
) -> dict[str, Any]:
    """The row of a new job (`insert_job` puts it at the back of the queue)."""
    return {
        "command": command,
        "params": json.dumps(dict(params), ensure_ascii=False, default=str),
        "state": JobState(state).value,
        "requester": requester,
        "room": room,
        "created_at": utcnow(),
        "catalog_commit": catalog_commit,
        "script_hash": script_hash,
        "dry_run": dry_run,
        "owner": owner,
    }


async def insert_job(conn: AsyncConnection, values: Mapping[str, Any]) -> Job:
    """Insert a job row made by `new_job_values`; the job as stored, with its id."""
    row = await _INSERT.first(conn, values)
    assert row is not None
    return job_from_row(row)


async def fetch_job(conn: AsyncConnection, job_id: int) -> Job | None:
    """The job with this id as the connection sees it now, or None."""
    row = await _FETCH.first(conn, {"job_id": job_id})
    return None if row is None else job_from_row(row)


def next_queue_seq() -> Any:
    """The expression that puts a job at the back of the queue."""
    # From an alias, so that inside UPDATE jobs the subquery is not correlated to the row.
    others = jobs.alias("queue")
    return select(func.coalesce(func.max(others.c.queue_seq), 0) + 1).scalar_subquery()


# The statements of a job's start and end, built once: their values are bound at execution,
# so each run finds its compiled form in the cache without building or keying it anew.
_JOB_ID = bindparam("job_id", type_=jobs.c.id.type)
_FETCH = Prepared(select(jobs).where(jobs.c.id == _JOB_ID))
# `new_job_values` gives the other columns; the queue place is worked out in the statement.
_INSERT = Prepared(insert(jobs).values(queue_seq=next_queue_seq()).returning(*jobs.c))
# SET from the values given at execution: state, exit code, error, end time (and pid).
# The final states as constants, not an expanding IN: one compiled form (prepared.py).
_UNFINISHED = jobs.c.state.not_in([literal(s, jobs.c.state.type) for s in _FINAL])
_END_ROW = update(jobs).where(jobs.c.id == _JOB_ID, _UNFINISHED).returning(*jobs.c)
_END = Prepared(_END_ROW)
# Under the audit lock: with the trail's last entry, which the `job.end` entry follows.
_END_AUDITED = Prepared(_END_ROW.returning(*last_entry()))
_END_LATE = (
    update(jobs)
    .where(jobs.c.id == _JOB_ID)
    .values(
        exit_code=func.coalesce(jobs.c.exit_code, bindparam("late_exit_code", type_=Integer)),
        error=func.coalesce(jobs.c.error, bindparam("late_error", type_=Text)),
        finished_at=case(
            (jobs.c.finished_at.is_(None), bindparam("late_at", type_=UTCDateTime())),
            else_=jobs.c.finished_at,
        ),
    )
)


def job_from_row(row: Row[Any]) -> Job:
    """A `jobs` row as the model's Job."""
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


def _final(state: JobState) -> JobState:
    """`state`, which must be one a job ends in."""
    state = JobState(state)
    if not state.finished:
        raise ValueError(f"a job's end needs a final state, not {state.value}")
    return state


async def _finish(
    conn: AsyncConnection,
    job_id: int,
    state: JobState,
    exit_code: int | None,
    error: str | None,
    *,
    pid: int | None = None,
    audited: bool = False,
) -> tuple[Job, LastEntry | None]:
    """Record the end inside the caller's write transaction: the job as it now stands, and
    (`audited`: the caller holds the audit lock) the trail's last entry when it was read."""
    now = utcnow()
    values: dict[str, Any] = {
        "job_id": job_id,
        "state": state.value,
        "exit_code": exit_code,
        "error": error,
        "finished_at": now,
    }
    if pid is not None:
        values["pid"] = pid
    row = await (_END_AUDITED if audited else _END).first(conn, values)
    if row is None:
        late = {"job_id": job_id, "late_exit_code": exit_code, "late_error": error, "late_at": now}
        if pid is not None:
            late["pid"] = pid
        await conn.execute(_END_LATE, late)
    # A `cancel` waiting in another process answers now (notify.py; engine/ends.py).
    await send_notices(conn, Topic.END, [job_id])
    job = job_from_row(row) if row is not None else await fetch_job(conn, job_id)
    if job is None:
        raise StoreError(f"job {job_id} does not exist")
    last = (
        LastEntry(row.audit_last_id, row.audit_last_hash) if audited and row is not None else None
    )
    return job, last


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
