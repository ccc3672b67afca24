"""Who may approve or deny a waiting job, and what an approval binds (SPEC §6.3)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from opsroom.model.approvals import (
    ApprovalRequest,
    ApprovalState,
    ApprovalVote,
    Refusal,
    VoteDecision,
)
from opsroom.model.jobs import JobState
from opsroom.policy.approval import check_vote, params_hash, quorum_reached, waiting_reason

T0 = datetime(2024, 12, 9, 10, 0, tzinfo=UTC)
APPROVE, DENY = VoteDecision.APPROVE, VoteDecision.DENY


def request(required: int = 1, *approved_by: str, **changes: object) -> ApprovalRequest:
    base = ApprovalRequest(
        job_id=42,
        role="ops-leads",
        required=required,
        params_hash=params_hash("storage migrate", {"volume": "vol1"}),
        requested_by="slack:alice",
        requested_at=T0,
        expires_at=T0 + timedelta(hours=1),
        approvals=tuple(
            ApprovalVote(42, who, APPROVE, "", T0 + timedelta(minutes=1)) for who in approved_by
        ),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


SOON = T0 + timedelta(minutes=5)

CASES = [
    # (name, request, approver, member, decision, now, allowed, decides, refusal, message)
    ("member approves", request(), "slack:bob", True, APPROVE, SOON, True, True, None, ""),
    ("member denies", request(), "slack:bob", True, DENY, SOON, True, True, None, ""),
    (
        "requester approves own job",
        request(),
        "slack:alice",
        True,
        APPROVE,
        SOON,
        False,
        False,
        Refusal.OWN_JOB,
        "you asked for job 42 yourself — another member of ops-leads must approve",
    ),
    (
        "requester denies own job",
        request(),
        "slack:alice",
        True,
        DENY,
        SOON,
        False,
        False,
        Refusal.OWN_JOB,
        "you asked for job 42 yourself — to withdraw it, cancel it (`cancel 42`)",
    ),
    (
        "outsider",
        request(),
        "slack:mallory",
        False,
        APPROVE,
        SOON,
        False,
        False,
        Refusal.NOT_MEMBER,
        "you are not a member of ops-leads",
    ),
    (
        "after expiry",
        request(),
        "slack:bob",
        True,
        APPROVE,
        T0 + timedelta(hours=1),
        False,
        False,
        Refusal.EXPIRED,
        "job 42's approval expired at 2024-12-09 11:00:00 UTC",
    ),
    (
        "job already marked expired",
        request(job_state=JobState.EXPIRED, state=ApprovalState.EXPIRED),
        "slack:bob",
        True,
        APPROVE,
        SOON,
        False,
        False,
        Refusal.EXPIRED,
        "job 42's approval expired at 2024-12-09 11:00:00 UTC",
    ),
    (
        "approving twice",
        request(2, "slack:bob"),
        "slack:bob",
        True,
        APPROVE,
        SOON,
        False,
        False,
        Refusal.ALREADY_VOTED,
        "you already approved job 42; it needs 1 more approval from another member of ops-leads",
    ),
    (
        "already approved and running",
        request(1, "slack:bob", job_state=JobState.RUNNING, state=ApprovalState.APPROVED),
        "slack:carol",
        True,
        APPROVE,
        SOON,
        False,
        False,
        Refusal.NOT_WAITING,
        "job 42 is not waiting for approval (it is running)",
    ),
    (
        "single use: approved job queued",
        request(1, "slack:bob", job_state=JobState.QUEUED, state=ApprovalState.APPROVED),
        "slack:bob",
        True,
        APPROVE,
        SOON,
        False,
        False,
        Refusal.NOT_WAITING,
        "job 42 is not waiting for approval (it is queued)",
    ),
    (
        "denied job",
        request(job_state=JobState.DENIED, state=ApprovalState.DENIED),
        "slack:carol",
        True,
        APPROVE,
        SOON,
        False,
        False,
        Refusal.NOT_WAITING,
        "job 42 is not waiting for approval (it is denied)",
    ),
    ("quorum 2: first", request(2), "slack:bob", True, APPROVE, SOON, True, False, None, ""),
    (
        "quorum 2: second, distinct",
        request(2, "slack:bob"),
        "slack:carol",
        True,
        APPROVE,
        SOON,
        True,
        True,
        None,
        "",
    ),
    (
        "quorum 2: approver changes mind",
        request(2, "slack:bob"),
        "slack:bob",
        True,
        DENY,
        SOON,
        True,
        True,
        None,
        "",
    ),
]


@pytest.mark.parametrize(
    ("req", "approver", "member", "decision", "now", "allowed", "decides", "refusal", "message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_check_vote(
    req: ApprovalRequest,
    approver: str,
    member: bool,
    decision: VoteDecision,
    now: datetime,
    allowed: bool,
    decides: bool,
    refusal: Refusal | None,
    message: str,
) -> None:
    check = check_vote(req, approver, is_member=member, now=now, decision=decision)
    assert (check.allowed, check.decides, check.refusal, check.reason) == (
        allowed,
        decides,
        refusal,
        message,
    )


def test_the_requester_is_told_it_is_their_own_job_even_when_not_a_member() -> None:
    check = check_vote(request(), "slack:alice", is_member=False, now=SOON)
    assert check.refusal is Refusal.OWN_JOB


def test_quorum_needs_distinct_approvers() -> None:
    one = request(2, "slack:bob")
    assert not quorum_reached(one)
    assert not quorum_reached(replace(one, approvals=one.approvals * 2))
    assert waiting_reason(one) == "job 42 needs 2 approvals from ops-leads (1 so far: slack:bob)"
    assert quorum_reached(request(2, "slack:bob", "slack:carol"))


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ({"volume": "vol1", "force": True}, {"force": True, "volume": "vol1"}, True),
        ({"hosts": ("a", "b")}, {"hosts": ["a", "b"]}, True),  # as the store keeps them
        ({"volume": "vol1"}, {"volume": "vol2"}, False),
        ({"volume": "vol1"}, {"volume": "vol1", "force": True}, False),
        ({"count": 1}, {"count": "1"}, False),
        ({"flag": True}, {"flag": 1}, False),
    ],
)
def test_params_hash_binds_exact_values_not_their_order(
    a: dict[str, object], b: dict[str, object], same: bool
) -> None:
    assert (params_hash("storage migrate", a) == params_hash("storage migrate", b)) is same


def test_params_hash_binds_the_command() -> None:
    params = {"volume": "vol1"}
    assert params_hash("storage migrate", params) != params_hash("storage delete", params)
    assert len(params_hash("storage migrate", params)) == 64
