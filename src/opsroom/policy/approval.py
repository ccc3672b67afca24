"""Approvals (SPEC §6.3), decided purely: who may vote on a waiting job, and what it binds.

The rules themselves sit on `ApprovalRequest` (model), so the store can enforce the same
ones atomically; this module adds what only policy knows — role membership — and the
parameter binding.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsroom.model.approvals import ApprovalRequest, Refusal, VoteDecision

DEFAULT_TTL = 3600.0
"""Seconds an approval request stays open unless configured otherwise (SPEC: 1 h)."""


@dataclass(frozen=True, slots=True)
class VoteCheck:
    """May this vote be cast, why not, and would it settle the job."""

    allowed: bool
    reason: str = ""
    refusal: Refusal | None = None
    decides: bool = False  # a deny, or the approval that reaches the quorum


def params_hash(command: str, params: Mapping[str, Any]) -> str:
    """sha256 of the command and its parameters as canonical JSON.

    Serialised as the store keeps parameters (`default=str`), so the hash of a job read
    back from the store equals the hash taken when it was requested.
    """
    canonical = json.dumps(
        {"command": command, "params": dict(params)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def check_vote(
    request: ApprovalRequest,
    approver: str,
    *,
    is_member: bool,
    now: datetime,
    decision: VoteDecision | str = VoteDecision.APPROVE,
) -> VoteCheck:
    """May `approver` (a member of the request's role or not) cast `decision` now?"""
    decision = VoteDecision(decision)
    refusal = request.refusal(approver, decision, now, is_member=is_member)
    if refusal is not None:
        return VoteCheck(False, request.explain(refusal, decision), refusal)
    return VoteCheck(True, "", None, decides=request.decides(decision))


def quorum_reached(request: ApprovalRequest) -> bool:
    """True when enough distinct members approved for the job to run."""
    return request.missing == 0


def waiting_reason(request: ApprovalRequest) -> str:
    """What the job waits for, e.g. "needs 2 approvals from ops-leads (1 so far: bob)"."""
    needed = "1 approval" if request.required == 1 else f"{request.required} approvals"
    text = f"job {request.job_id} needs {needed} from {request.role}"
    if request.approvers:
        text += f" ({len(request.approvers)} so far: {', '.join(request.approvers)})"
    return text
