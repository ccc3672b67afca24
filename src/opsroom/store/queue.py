"""The job queue (SPEC §5.5): starting queued jobs within the concurrency limits and saying
why not, and queued jobs whose waiting process is gone, until another one adopts them.

A job's start is one transaction: its claim, its process token, the catalog version it
runs and its `job.start` audit entry (`Start`) — and for a new job its creation too
(`create_and_claim`), so starting a job costs one durable commit, shared with the other
jobs starting at the same moment (`commit.py`).

Claims take turns under the audit trail's lock (`audited`): a claim that writes its
`job.start` entry must hold it anyway, and one lock for both keeps every claim — audited
or not — from counting running jobs while another starts one. Every job start and end of
every process waits for that lock, so a claim does as little as it can while holding it:
what it needs of the job that never changes once it is queued (its command, requester
and place in line) is read before, and the limits are checked by counting the running
jobs in the indexes of (…, state), never reading their rows: all of them, then the
requester's while the overall limit has room; with a per-command limit, the command's
first, with the queued jobs ahead of it in its line.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Integer, and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from opsroom.errors import StoreError
from opsroom.model.audit import AuditEvent
from opsroom.model.jobs import Job, JobState
from opsroom.store.audit import LastEntry, insert_audit, last_entry, lock_audit
from opsroom.store.database import Part
from opsroom.store.jobs import fetch_job, insert_job, job_from_row, new_job_values
from opsroom.store.prepared import Prepared
from opsroom.store.schema import jobs, utcnow

ORPHANED = ""
"""The owner of a queued job whose waiting process is gone, until another process adopts it."""
_IDS_AT_ONCE = 500  # job ids in one statement: well within every backend's bound parameters


@dataclass(frozen=True)
class Limits:
    """How many jobs may run at once: overall, per command (None = no limit), per requester."""

    total: int
    per_command: int | None
    per_user: int


Held = Literal["total", "per_user", "per_command"]
"""Which limit holds a queued job back: overall, its requester's, or its command's."""


@dataclass(frozen=True)
class Claim:
    """The outcome of `Store.claim_job`: the job as it now stands, and if it did not start, why.

    `blocked_by` names a running job to wait for ("queued behind job N"), or an older
    queued job of the same command that goes first; `held` the limit that holds it back.
    """

    claimed: bool
    job: Job
    blocked_by: int | None = None
    reason: str = ""
    held: Held | None = None


@dataclass(frozen=True)
class Start:
    """What is recorded with a job's claim, in the same transaction.

    `token` is the job's OPSROOM_JOB_TOKEN (it finds the job's processes should this
    process die); `catalog` the (commit, script hash) it runs when they changed since it
    was queued; `audit` makes its `job.start` entry from the job as it starts — with it
    the claim is durable, and a started job is never without its entry. `request` (for
    `create_and_claim` only) is the request's own entry, chained before it: one commit,
    not two, for a request that runs at once — and no job without its request's entry.
    """

    token: str | None = None
    catalog: tuple[str | None, str | None] | None = None
    audit: Callable[[Job], AuditEvent] | None = None
    request: AuditEvent | None = None


class Queue(Part):
    """Which queued job starts when, and queued jobs nobody waits for."""

    async def claim_job(
        self, job_id: int, *, owner: str, limits: Limits, start: Start | None = None
    ) -> Claim:
        """Start a queued job for `owner` if the limits allow it now; otherwise say why not.

        Claims are serialised across processes (SQLite: BEGIN IMMEDIATE; PostgreSQL: the
        audit trail's advisory lock), so the counts they check cannot change underneath
        them. With a per-command limit, jobs of one command start strictly in queue order.
        `start` says what else to record if it starts.
        """
        start = start or Start()
        doing = f"start job {job_id}"
        if start.audit is None:
            async with self._db.write(doing) as conn:
                return await _claim(conn, await _queued(conn, job_id), owner, limits, start)
        async with self._db.durable(doing) as conn:
            return await _claim(conn, await _queued(conn, job_id), owner, limits, start)

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
        async with self._db.durable("record and start a job") as conn:
            # Recorded before the claim takes its lock: a row nobody else sees yet.
            job = await insert_job(conn, values)
            if start.request is not None:
                # Under the lock the claim takes anyway (re-taking it is free), and before
                # the claim's `job.start` entry: the chain reads request, then start.
                await lock_audit(conn)
                await insert_audit(conn, start.request)
            return await _claim(conn, job, owner, limits, start)

    async def still_queued(self, job_ids: Collection[int]) -> set[int]:
        """Of these jobs, those still queued (the others were cancelled or ended meanwhile)."""
        ids = list(job_ids)
        found: set[int] = set()
        async with self._db.read("look at queued jobs") as conn:
            for at in range(0, len(ids), _IDS_AT_ONCE):
                query = select(jobs.c.id).where(
                    jobs.c.id.in_(ids[at : at + _IDS_AT_ONCE]),
                    jobs.c.state == JobState.QUEUED.value,
                )
                found.update(int(i) for i in (await conn.execute(query)).scalars())
        return found

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


async def _queued(conn: AsyncConnection, job_id: int) -> Job:
    """The job to claim, read before the claim takes its lock (see `_claim`)."""
    job = await fetch_job(conn, job_id)
    if job is None:
        raise StoreError(f"job {job_id} does not exist")
    return job


async def _claim(
    conn: AsyncConnection, job: Job, owner: str, limits: Limits, start: Start
) -> Claim:
    """Claim `job` inside the caller's write transaction (see `Queue.claim_job`).

    `job` was read in this transaction before the lock: the limits only need what never
    changes once it is queued, and its start below only happens while it is still
    queued, so a job cancelled meanwhile is never started.
    """
    if job.state is not JobState.QUEUED:
        return Claim(False, job, reason=f"job {job.id} is {job.state.value}")
    await lock_audit(conn)
    blocker = await _blocker(conn, job, limits)
    if blocker is not None:
        return Claim(False, job, blocked_by=blocker[0], reason=blocker[1], held=blocker[2])
    values: dict[str, Any] = {
        "job_id": job.id,
        "state": JobState.RUNNING.value,
        "started_at": utcnow(),
        "owner": owner,
    }
    if start.token is not None:
        values.update(pid=0, process_token=start.token)  # the pid follows once it runs
    if start.catalog is not None:
        values.update(catalog_commit=start.catalog[0], script_hash=start.catalog[1])
    # The started row comes back with the audit trail's last entry, which its `job.start`
    # entry follows: one round trip, not three, while every start and end waits.
    started = await _START.first(conn, values)
    if started is None:  # cancelled (or adopted and run) since it was read
        now = await fetch_job(conn, job.id)
        assert now is not None
        return Claim(False, now, reason=f"job {job.id} is {now.state.value}")
    job = job_from_row(started)
    if start.audit is not None:
        last = LastEntry(started.audit_last_id, started.audit_last_hash)
        await insert_audit(conn, start.audit(job), last=last)
    return Claim(True, job)


def _queue_key() -> Any:
    return func.coalesce(jobs.c.queue_seq, jobs.c.id)


# The claim's statements, built once: the job's values are bound at execution, so each
# claim finds the compiled form in the cache without building or keying it anew.
_JOB_ID = bindparam("job_id", type_=jobs.c.id.type)
_REQUESTER = bindparam("requester", type_=jobs.c.requester.type)
_COMMAND = bindparam("command", type_=jobs.c.command.type)
# SET from the values given at execution (state, start, owner, token, catalog).
_START = Prepared(
    update(jobs)
    .where(jobs.c.id == _JOB_ID, jobs.c.state == JobState.QUEUED.value)
    .returning(*jobs.c, *last_entry())
)


def _running(*where: Any) -> Prepared:
    """How many jobs run that match `where`, and the oldest of them (NULL: none)."""
    counted: Any = select(func.count().label("n"), func.min(jobs.c.id).label("oldest"))
    return Prepared(counted.where(*where, jobs.c.state == JobState.RUNNING.value))


# Counted by the database from an index of (…, state), not read row by row: with hundreds
# running, reading them cost each claim about a millisecond under the lock, and one
# statement counting all three at once a third of one (it reads every running row).
_RUNNING = _running()
_RUNNING_OWN = _running(jobs.c.requester == _REQUESTER)
_RUNNING_SAME = _running(jobs.c.command == _COMMAND)


def _ahead() -> Any:
    """The queued jobs of the command ahead of the job in line, first first (at most `ahead`)."""
    me = jobs.alias("me")  # aliased: not correlated with the rows it is compared with
    mine = (
        select(func.coalesce(me.c.queue_seq, me.c.id)).where(me.c.id == _JOB_ID)
    ).scalar_subquery()
    return (
        select(jobs.c.id)
        .where(
            jobs.c.command == _COMMAND,
            jobs.c.state == JobState.QUEUED.value,
            # Orphans (no process waits for them) do not hold up the line.
            or_(jobs.c.owner.is_(None), jobs.c.owner != ORPHANED),
            or_(_queue_key() < mine, and_(_queue_key() == mine, jobs.c.id < _JOB_ID)),
        )
        .order_by(_queue_key(), jobs.c.id)
        .limit(bindparam("ahead", type_=Integer))
    )


_AHEAD = _ahead()


async def _blocker(conn: AsyncConnection, job: Job, limits: Limits) -> tuple[int, str, Held] | None:
    """The job (the reason, the limit) that keeps `job` from starting now, or None when it
    may start.

    Under the lock: with a per-command limit, the command's running jobs are counted and its
    queued jobs ahead of this one read (at most the limit); then all running jobs are
    counted, and the requester's only when the overall limit has room.
    """
    if limits.per_command is not None:
        same = await _RUNNING_SAME.first(conn, {"command": job.command})
        assert same is not None  # counts: always one row
        line = {"job_id": job.id, "command": job.command, "ahead": max(limits.per_command, 1)}
        ahead = [int(i) for i in (await conn.execute(_AHEAD, line)).scalars()]
        # Older queued jobs take the free places first (FIFO).
        if same.n + len(ahead) >= limits.per_command:
            reason = _per_command_reason(job.command, limits.per_command)
            if same.n:
                return int(same.oldest), reason, "per_command"
            first = ahead[0]
            return first, f"{reason}; job {first} is ahead in the queue", "per_command"
    total = await _RUNNING.first(conn, {})
    assert total is not None
    if total.n >= limits.total:
        return int(total.oldest), _total_reason(limits.total), "total"
    own = await _RUNNING_OWN.first(conn, {"requester": job.requester})
    assert own is not None
    if own.n >= limits.per_user:
        return int(own.oldest), _per_user_reason(limits.per_user), "per_user"
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
