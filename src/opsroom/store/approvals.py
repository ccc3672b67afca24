"""Approvals (SPEC §6.3): requests, votes, decisions and expiry.

Writers lock the job row first (SELECT ... FOR UPDATE on PostgreSQL; SQLite is serialised
by BEGIN IMMEDIATE), so a vote, an expiry and a cancel of one job never interleave.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from opsroom.errors import StoreError
from opsroom.model.approvals import (
    ApprovalRequest,
    ApprovalState,
    ApprovalVote,
    Refusal,
    VoteDecision,
    VoteResult,
)
from opsroom.model.jobs import JobState
from opsroom.store.database import Part
from opsroom.store.jobs import fetch_job, next_queue_seq
from opsroom.store.schema import approval_votes, approvals, jobs, utcnow

_WAITING = JobState.AWAITING_APPROVAL.value
_PENDING = ApprovalState.PENDING.value
# A pending request whose job left `awaiting_approval` by another way (a cancel) shows
# what became of it.
_SETTLED_BY_JOB = {
    JobState.CANCELLED: ApprovalState.CANCELLED,
    JobState.EXPIRED: ApprovalState.EXPIRED,
    JobState.DENIED: ApprovalState.DENIED,
}


class Approvals(Part):
    """Jobs waiting for approval, the votes on them, and their expiry."""

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
        async with self._db.write(f"put job {job_id} up for approval") as conn:
            await open_request(
                conn,
                job_id,
                role=role,
                required=required,
                params_hash=params_hash,
                requested_by=requested_by,
                now=now or utcnow(),
                ttl=ttl,
            )
            request = await load(conn, job_id)
        assert request is not None
        return request

    async def approval(self, job_id: int) -> ApprovalRequest | None:
        """The job's approval request and its votes, or None when it never needed one."""
        async with self._db.read(f"read the approval of job {job_id}") as conn:
            return await load(conn, job_id)

    async def pending_approvals(
        self, *, roles: Collection[str] | None = None, now: datetime | None = None
    ) -> list[ApprovalRequest]:
        """Requests still open to votes (not expired), oldest first; optionally for `roles`."""
        async with self._db.read("list pending approvals") as conn:
            return await list_pending(conn, roles=roles, now=now or utcnow())

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
        async with self._db.write(f"record a vote on job {job_id}") as conn:
            cast = await cast_vote(
                conn,
                job_id,
                approver=approver,
                decision=decision,
                reason=reason,
                params_hash=params_hash,
                now=now or utcnow(),
                queue_seq=next_queue_seq(),
            )
            job = await fetch_job(conn, job_id)
        assert job is not None
        return VoteResult(
            accepted=cast.accepted,
            decided=cast.decided,
            approved=cast.approved,
            job=job,
            reason=cast.reason,
            refusal=cast.refusal,
            missing=cast.missing,
        )

    async def expire_approvals(self, *, now: datetime | None = None) -> list[int]:
        """Mark waiting jobs whose approval ran out `expired`; returns their ids."""
        now = now or utcnow()
        # Every opsroom start calls this: look first, take the write lock only when due.
        async with self._db.read("look for expired approvals") as conn:
            due = await any_due(conn, now=now)
        if not due:
            return []
        async with self._db.write("expire approvals") as conn:
            return await expire_due(conn, now=now)


# --- the SQL, each inside the caller's transaction ----------------------------------------


@dataclass(frozen=True)
class Cast:
    """What `cast_vote` did; `Approvals.vote` adds the job as it now stands."""

    accepted: bool
    decided: bool
    approved: bool
    reason: str
    refusal: Refusal | None = None
    missing: int = 0  # approvals still needed after this one


async def open_request(
    conn: AsyncConnection,
    job_id: int,
    *,
    role: str,
    required: int,
    params_hash: str,
    requested_by: str,
    now: datetime,
    ttl: float,
) -> None:
    """Put a queued (or just created) job up for approval: it waits in awaiting_approval."""
    if required < 1:
        raise ValueError(f"an approval needs at least 1 approver, not {required}")
    if ttl <= 0:
        raise ValueError(f"an approval needs a positive lifetime, not {ttl} seconds")
    state = await _lock_job(conn, job_id)
    if state not in (JobState.QUEUED.value, _WAITING):
        raise StoreError(f"job {job_id} is {state}; it cannot wait for approval")
    if await conn.scalar(select(approvals.c.job_id).where(approvals.c.job_id == job_id)):
        raise StoreError(f"job {job_id} already has an approval request")
    await conn.execute(update(jobs).where(jobs.c.id == job_id).values(state=_WAITING))
    await conn.execute(
        insert(approvals).values(
            job_id=job_id,
            role=role,
            required=required,
            params_hash=params_hash,
            requested_by=requested_by,
            requested_at=now,
            expires_at=now + timedelta(seconds=ttl),
            state=_PENDING,
        )
    )


async def load(conn: AsyncConnection, job_id: int) -> ApprovalRequest | None:
    """The job's approval request with its votes, or None when it never had one."""
    found = await _requests(conn, _joined().where(approvals.c.job_id == job_id))
    return found[0] if found else None


async def list_pending(
    conn: AsyncConnection, *, roles: Collection[str] | None, now: datetime
) -> list[ApprovalRequest]:
    """Requests still open to votes, oldest first; with `roles`, only for those roles."""
    query = (
        _joined()
        .where(
            jobs.c.state == _WAITING,
            approvals.c.state == _PENDING,
            approvals.c.expires_at > now,
        )
        .order_by(approvals.c.requested_at, approvals.c.job_id)
    )
    if roles is not None:
        query = query.where(approvals.c.role.in_(list(roles)))
    return await _requests(conn, query)


async def cast_vote(
    conn: AsyncConnection,
    job_id: int,
    *,
    approver: str,
    decision: VoteDecision,
    reason: str,
    params_hash: str,
    now: datetime,
    queue_seq: Any,
) -> Cast:
    """Check and record one vote; settle the job when it denies or reaches the quorum.

    `queue_seq` is the expression that puts an approved job at the back of the queue.
    """
    await _lock_job(conn, job_id)
    request = await load(conn, job_id)
    if request is None:
        state = await conn.scalar(select(jobs.c.state).where(jobs.c.id == job_id))
        why = (
            f"job {job_id} has no approval request on record; it cannot be approved"
            if state == _WAITING
            else f"job {job_id} is not waiting for approval (it is {state})"
        )
        return Cast(False, False, False, why, Refusal.NOT_WAITING)
    refusal = request.refusal(approver, decision, now)
    if refusal is None and params_hash != request.params_hash:
        refusal = Refusal.PARAMS_CHANGED
    if refusal is not None:
        if refusal is Refusal.EXPIRED and request.job_state is JobState.AWAITING_APPROVAL:
            await _expire(conn, [request], now)
        return Cast(False, False, False, request.explain(refusal, decision), refusal)

    seq = await conn.scalar(
        select(func.coalesce(func.max(approval_votes.c.seq), 0) + 1).where(
            approval_votes.c.job_id == job_id
        )
    )
    await conn.execute(
        insert(approval_votes).values(
            job_id=job_id,
            seq=seq,
            approver=approver,
            decision=decision.value,
            reason=reason,
            at=now,
        )
    )
    if decision is VoteDecision.DENY:
        because = f"denied by {approver}" + (f": {reason}" if reason else "")
        await _settle(conn, job_id, ApprovalState.DENIED, now)
        await conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.state == _WAITING)
            .values(state=JobState.DENIED.value, finished_at=now, error=because)
        )
        return Cast(True, True, False, f"job {job_id} {because}")
    approvers = (*request.approvers, approver)
    missing = request.required - len(approvers)
    if missing > 0:
        more = "1 more approval" if missing == 1 else f"{missing} more approvals"
        return Cast(
            True,
            False,
            False,
            f"approval of job {job_id} recorded; it needs {more} from {request.role}",
            missing=missing,
        )
    await _settle(conn, job_id, ApprovalState.APPROVED, now)
    await conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.state == _WAITING)
        .values(state=JobState.QUEUED.value, queue_seq=queue_seq)
    )
    return Cast(True, True, True, f"job {job_id} approved by {', '.join(approvers)}")


async def any_due(conn: AsyncConnection, *, now: datetime) -> bool:
    """Is any waiting job's approval past its deadline? (A read: no lock taken.)"""
    found = await conn.scalar(
        select(approvals.c.job_id)
        .join(jobs, approvals.c.job_id == jobs.c.id)
        .where(
            jobs.c.state == _WAITING,
            approvals.c.state == _PENDING,
            approvals.c.expires_at <= now,
        )
        .limit(1)
    )
    return found is not None


async def expire_due(conn: AsyncConnection, *, now: datetime) -> list[int]:
    """Mark every waiting job whose approval ran out `expired`; their ids, oldest first."""
    ids = list(
        await conn.scalars(
            select(jobs.c.id)
            .join(approvals, approvals.c.job_id == jobs.c.id)
            .where(
                jobs.c.state == _WAITING,
                approvals.c.state == _PENDING,
                approvals.c.expires_at <= now,
            )
            .order_by(jobs.c.id)
            .with_for_update(of=jobs)
        )
    )
    if not ids:
        return []
    requests = await _requests(conn, _joined().where(approvals.c.job_id.in_(ids)))
    await _expire(conn, requests, now)
    return [int(i) for i in ids]


# --- helpers ------------------------------------------------------------------------------


async def _lock_job(conn: AsyncConnection, job_id: int) -> str:
    state = await conn.scalar(select(jobs.c.state).where(jobs.c.id == job_id).with_for_update())
    if state is None:
        raise StoreError(f"job {job_id} does not exist")
    return str(state)


async def _expire(
    conn: AsyncConnection, requests: Sequence[ApprovalRequest], now: datetime
) -> None:
    for request in requests:
        got = len(request.approvers)
        so_far = f" ({got} of {request.required} approvals)" if got else ""
        error = (
            f"approval by {request.role} expired at "
            f"{request.expires_at:%Y-%m-%d %H:%M:%S} UTC{so_far}"
        )
        await _settle(conn, request.job_id, ApprovalState.EXPIRED, now)
        await conn.execute(
            update(jobs)
            .where(jobs.c.id == request.job_id, jobs.c.state == _WAITING)
            .values(state=JobState.EXPIRED.value, finished_at=now, error=error)
        )


async def _settle(conn: AsyncConnection, job_id: int, state: ApprovalState, now: datetime) -> None:
    await conn.execute(
        update(approvals)
        .where(approvals.c.job_id == job_id, approvals.c.state == _PENDING)
        .values(state=state.value, decided_at=now)
    )


def _joined() -> Any:
    return select(approvals, jobs.c.state.label("job_state")).join(
        jobs, jobs.c.id == approvals.c.job_id
    )


async def _requests(conn: AsyncConnection, query: Any) -> list[ApprovalRequest]:
    rows = (await conn.execute(query)).all()
    if not rows:
        return []
    votes: dict[int, list[ApprovalVote]] = {}
    vote_rows = await conn.execute(
        select(approval_votes)
        .where(approval_votes.c.job_id.in_([r.job_id for r in rows]))
        .order_by(approval_votes.c.job_id, approval_votes.c.seq)
    )
    for v in vote_rows:
        votes.setdefault(int(v.job_id), []).append(
            ApprovalVote(
                job_id=int(v.job_id),
                approver=v.approver,
                decision=VoteDecision(v.decision),
                reason=v.reason,
                at=v.at,
            )
        )
    return [_request(row, tuple(votes.get(int(row.job_id), ()))) for row in rows]


def _request(row: Row[Any], votes: tuple[ApprovalVote, ...]) -> ApprovalRequest:
    job_state = JobState(row.job_state)
    state = ApprovalState(row.state)
    if state is ApprovalState.PENDING:
        state = _SETTLED_BY_JOB.get(job_state, state)
    return ApprovalRequest(
        job_id=int(row.job_id),
        role=row.role,
        required=int(row.required),
        params_hash=row.params_hash,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        expires_at=row.expires_at,
        approvals=votes,
        state=state,
        job_state=job_state,
    )
