"""Approvals (SPEC §6.3): a job waiting for members of a role to approve or deny it.

The rules of a vote live here, beside the values they judge, because two rooms enforce
them: policy explains them before a vote, and the store re-checks them atomically when
recording it (and a room may not import a sibling).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from opsroom.model.jobs import Job, JobState


class VoteDecision(StrEnum):
    """What an approver says."""

    APPROVE = "approve"
    DENY = "deny"


class ApprovalState(StrEnum):
    """Where an approval request stands."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"  # the job was cancelled while it waited


class Refusal(StrEnum):
    """Why a vote was not counted."""

    NOT_WAITING = "not_waiting"
    EXPIRED = "expired"
    OWN_JOB = "own_job"
    NOT_MEMBER = "not_member"
    ALREADY_VOTED = "already_voted"
    PARAMS_CHANGED = "params_changed"


@dataclass(frozen=True, slots=True)
class ApprovalVote:
    """One approver's recorded approve or deny."""

    job_id: int
    approver: str
    decision: VoteDecision
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """A job's request for approval, with the votes cast so far."""

    job_id: int
    role: str
    required: int  # distinct approvals needed (the quorum)
    params_hash: str  # binds the command and its exact parameters
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    approvals: tuple[ApprovalVote, ...] = ()  # every vote, in the order cast
    state: ApprovalState = ApprovalState.PENDING
    job_state: JobState = JobState.AWAITING_APPROVAL

    @property
    def approvers(self) -> tuple[str, ...]:
        """Who approved, in order, each once."""
        seen: dict[str, None] = {}
        for vote in self.approvals:
            if vote.decision is VoteDecision.APPROVE:
                seen.setdefault(vote.approver, None)
        return tuple(seen)

    @property
    def missing(self) -> int:
        """Approvals still needed before the job may run."""
        return max(self.required - len(self.approvers), 0)

    def expired(self, now: datetime) -> bool:
        """True once the request can no longer be approved because time ran out."""
        return self.state is ApprovalState.EXPIRED or now >= self.expires_at

    def refusal(
        self,
        approver: str,
        decision: VoteDecision,
        now: datetime,
        *,
        is_member: bool = True,
    ) -> Refusal | None:
        """Why `approver` may not cast `decision` now, or None when the vote counts."""
        if self.job_state is JobState.EXPIRED or self.state is ApprovalState.EXPIRED:
            return Refusal.EXPIRED
        if self.job_state is not JobState.AWAITING_APPROVAL or self.state is not (
            ApprovalState.PENDING
        ):
            return Refusal.NOT_WAITING
        if self.expired(now):
            return Refusal.EXPIRED
        if approver == self.requested_by:
            return Refusal.OWN_JOB
        if not is_member:
            return Refusal.NOT_MEMBER
        # Changing one's mind towards "no" is always allowed; approving twice never counts.
        if decision is VoteDecision.APPROVE and approver in self.approvers:
            return Refusal.ALREADY_VOTED
        return None

    def decides(self, decision: VoteDecision) -> bool:
        """True when one more accepted vote of `decision` settles the request."""
        return decision is VoteDecision.DENY or self.missing <= 1

    def explain(self, refusal: Refusal, decision: VoteDecision = VoteDecision.APPROVE) -> str:
        """The refusal in words for the person who voted."""
        n = self.job_id
        match refusal:
            case Refusal.NOT_WAITING:
                return f"job {n} is not waiting for approval (it is {self.job_state.value})"
            case Refusal.EXPIRED:
                return f"job {n}'s approval expired at {self.expires_at:%Y-%m-%d %H:%M:%S} UTC"
            case Refusal.OWN_JOB if decision is VoteDecision.DENY:
                return f"you asked for job {n} yourself — to withdraw it, cancel it (`cancel {n}`)"
            case Refusal.OWN_JOB:
                return (
                    f"you asked for job {n} yourself — another member of {self.role} must approve"
                )
            case Refusal.NOT_MEMBER:
                return f"you are not a member of {self.role}"
            case Refusal.ALREADY_VOTED:
                return (
                    f"you already approved job {n}; it needs {_more(self.missing)} "
                    f"from another member of {self.role}"
                )
            case Refusal.PARAMS_CHANGED:
                return (
                    f"job {n}'s parameters are not those put up for approval; it cannot be approved"
                )


@dataclass(frozen=True, slots=True)
class VoteResult:
    """The outcome of `Store.vote`: counted or not, whether it settled the job, and why.

    `decided` is True for exactly one vote per job: the deny, or the approval that
    reached the quorum (the caller that gets it starts the job).
    """

    accepted: bool
    decided: bool
    approved: bool
    job: Job
    reason: str
    refusal: Refusal | None = None
    # Approvals still missing after this one, counted in the vote's own transaction (a
    # count read afterwards may already include a vote recorded by another process).
    missing: int = 0


def _more(n: int) -> str:
    return "1 more approval" if n == 1 else f"{n} more approvals"
