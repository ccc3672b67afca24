"""The job queue (SPEC §5.5): starting queued jobs within the concurrency limits and saying
why not, and queued jobs whose waiting process is gone, until another one adopts them.

A job's start is one transaction: its claim, its process token, the catalog version it
runs and its `job.start` audit entry (`Start`) — and for a new job its creation too
(`create_and_claim`), so starting a job costs one durable commit, shared with the other
jobs starting at the same moment (`commit.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from opsroom.errors import StoreError
from opsroom.model.audit import AuditEvent
from opsroom.model.jobs import Job, JobState
from opsroom.store.audit import audited, insert_audit
from opsroom.store.database import Part
from opsroom.store.engine import serialise
from opsroom.store.jobs import fetch_job, insert_job, job_from_row, new_job_values
from opsroom.store.schema import jobs, utcnow

_CLAIM_LOCK_KEY = 0x6F7073636C61696D  # "opsclaim": serialises job starts across processes

ORPHANED = ""
"""The owner of a queued job whose waiting process is gone, until another process adopts it."""


@dataclass(frozen=True)
class Limits:
    """How many jobs may run at once: overall, per command (None = no limit), per requester."""

    total: int
    per_command: int | None
    per_user: int


@dataclass(frozen=True)
class Claim:
    """The outcome of `Store.claim_job`: the job as it now stands, and if it did not start, why.

    `blocked_by` names a running job to wait for ("queued behind job N"), or an older
    queued job of the same command that goes first.
    """

    claimed: bool
    job: Job
    blocked_by: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class Start:
    """What is recorded with a job's claim, in the same transaction.

    `token` is the job's OPSROOM_JOB_TOKEN (it finds the job's processes should this
    process die); `catalog` the (commit, script hash) it runs when they changed since it
    was queued; `audit` makes its `job.start` entry from the job as it starts — with it
    the claim is durable, and a started job is never without its entry.
    """

    token: str | None = None
    catalog: tuple[str | None, str | None] | None = None
    audit: Callable[[Job], AuditEvent] | None = None


class Queue(Part):
    """Which queued job starts when, and queued jobs nobody waits for."""

    async def claim_job(
        self, job_id: int, *, owner: str, limits: Limits, start: Start | None = None
    ) -> Claim:
        """Start a queued job for `owner` if the limits allow it now; otherwise say why not.

        Claims are serialised across processes (SQLite: BEGIN IMMEDIATE; PostgreSQL: an
        advisory lock), so the counts they check cannot change underneath them. With a
        per-command limit, jobs of one command start strictly in queue order. `start`
        says what else to record if it starts.
        """
        start = start or Start()
        if start.audit is None:
            async with self._db.write(f"start job {job_id}") as conn:
                return await _claim(conn, job_id, owner, limits, start)
        async with audited(self._db, f"start job {job_id}") as conn:
            return await _claim(conn, job_id, owner, limits, start)

    async def create_and_claim(
        self,
        *,
        command: str,
        params: Mapping[str, Any],
        requester: str,
        room: str,
        owner: str,
        limits: Limits,
        start: Start,
        catalog_commit: str | None = None,
        script_hash: str | None = None,
        dry_run: bool = False,
    ) -> Claim:
        """Record a new job for `owner` and start it if the limits allow, in one transaction.

        As `create_job` then `claim_job`: a job that may not start yet stays queued, and
        the claim says why.
        """
        values = new_job_values(
            command=command,
            params=params,
            requester=requester,
            room=room,
            state=JobState.QUEUED,
            catalog_commit=catalog_commit,
            script_hash=script_hash,
            dry_run=dry_run,
            owner=owner,
        )
        async with audited(self._db, "record and start a job") as conn:
            job = await insert_job(conn, values)
            return await _claim(conn, job.id, owner, limits, start, job=job)

    async def release_orphaned_queue(self, *, is_owner_alive: Callable[[str], bool]) -> list[Job]:
        """Queued jobs whose waiting process is gone lose their owner; return them.

        They stay queued (SPEC §5.5: queued jobs survive a restart) until a long-lived
        process adopts them, and meanwhile they do not hold up the queue of their command.
        """
        async with self._db.read("look for orphaned queued jobs") as conn:
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
            async with self._db.write(f"release queued job {job_id}") as conn:
                result = await conn.execute(
                    update(jobs)
                    .where(
                        jobs.c.id == job_id,
                        jobs.c.state == JobState.QUEUED.value,
                        jobs.c.owner == owner,
                    )
                    .values(owner=ORPHANED)
                )
                job = await fetch_job(conn, job_id) if result.rowcount == 1 else None
            if job is not None:
                released.append(job)
        return released

    async def adopt_job(self, job_id: int, *, owner: str) -> Job | None:
        """Take over a queued job nobody waits for; None when another process was faster."""
        async with self._db.write(f"adopt job {job_id}") as conn:
            result = await conn.execute(
                update(jobs)
                .where(
                    jobs.c.id == job_id,
                    jobs.c.state == JobState.QUEUED.value,
                    jobs.c.owner == ORPHANED,
                )
                .values(owner=owner)
            )
            return await fetch_job(conn, job_id) if result.rowcount == 1 else None

    async def orphaned_queue(self, *, limit: int = 100) -> list[Job]:
        """Queued jobs that no process waits for, first in line first."""
        query = (
            select(jobs)
            .where(jobs.c.state == JobState.QUEUED.value, jobs.c.owner == ORPHANED)
            .order_by(_queue_key(), jobs.c.id)
            .limit(limit)
        )
        async with self._db.read("list orphaned queued jobs") as conn:
            return [job_from_row(row) for row in (await conn.execute(query)).all()]


async def _claim(
    conn: AsyncConnection,
    job_id: int,
    owner: str,
    limits: Limits,
    start: Start,
    *,
    job: Job | None = None,
) -> Claim:
    """Claim the job inside the caller's write transaction (see `Queue.claim_job`).

    `job`: the job as this transaction just wrote it, so it need not be read again.
    """
    await serialise(conn, _CLAIM_LOCK_KEY)
    job = job or await fetch_job(conn, job_id)
    if job is None:
        raise StoreError(f"job {job_id} does not exist")
    if job.state is not JobState.QUEUED:
        return Claim(False, job, reason=f"job {job_id} is {job.state.value}")
    blocker = await _blocker(conn, job, limits)
    if blocker is not None:
        return Claim(False, job, blocked_by=blocker[0], reason=blocker[1])
    values: dict[str, Any] = {
        "state": JobState.RUNNING.value,
        "started_at": utcnow(),
        "owner": owner,
    }
    if start.token is not None:
        values.update(pid=0, process_token=start.token)  # the pid follows once it runs
    if start.catalog is not None:
        values.update(catalog_commit=start.catalog[0], script_hash=start.catalog[1])
    await conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.state == JobState.QUEUED.value)
        .values(**values)
    )
    job = await fetch_job(conn, job_id)
    assert job is not None
    if start.audit is not None:
        await insert_audit(conn, start.audit(job))
    return Claim(True, job)


def _queue_key() -> Any:
    return func.coalesce(jobs.c.queue_seq, jobs.c.id)


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
            reason = _per_command_reason(job.command, limits.per_command)
            if same:
                return same[0], reason
            return int(ahead[0]), f"{reason}; job {ahead[0]} is ahead in the queue"
    if len(running) >= limits.total:
        return int(running[0].id), _total_reason(limits.total)
    own = [int(r.id) for r in running if r.requester == job.requester]
    if len(own) >= limits.per_user:
        return own[0], _per_user_reason(limits.per_user)
    return None


def _per_command_reason(command: str, limit: int) -> str:
    """Why a per-command limit holds a job, e.g. "1 `storage migrate` job may run at a time"."""
    return f"{limit} `{command}` {_jobs(limit)} may run at a time"


def _total_reason(limit: int) -> str:
    """Why the overall limit holds a job, e.g. "8 jobs are running (the limit)"."""
    verb = "is" if limit == 1 else "are"
    return f"{limit} {_jobs(limit)} {verb} running (the limit)"


def _per_user_reason(limit: int) -> str:
    """Why the per-user limit holds a job, e.g. "you have 4 jobs running (the per-user limit)"."""
    return f"you have {limit} {_jobs(limit)} running (the per-user limit)"


def _jobs(n: int) -> str:
    return "job" if n == 1 else "jobs"
