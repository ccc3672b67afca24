"""Approvals: what waits for a decision, and approve/deny exactly as `!approve`/`!deny` would.

Decisions go through the dispatcher as a message from the web user, so policy, audit and
starting the approved job are the same as in chat.
"""

from __future__ import annotations

import shlex
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from opsroom.model.approvals import ApprovalRequest
from opsroom.model.commands import CommandSpec
from opsroom.model.jobs import Job
from opsroom.policy.rbac import roles_of
from opsroom.render.text import reply_to_dict
from opsroom.web.actions import act
from opsroom.web.api.deps import Ctx, accepting
from opsroom.web.api.models import OutcomeOut, Problem
from opsroom.web.auth import ApiUser
from opsroom.web.commandline import typed_command
from opsroom.web.context import WebContext

router = APIRouter(tags=["approvals"])

JobId = Annotated[int, Path(ge=1, lt=2**31, description="the job waiting for approval")]
Wait = Annotated[bool, Query(description="answer when the job ended, not when the vote counted")]


class PendingOut(BaseModel):
    """A job waiting for approval, and whether the caller may decide it."""

    job_id: int
    command: str
    command_line: str
    params: dict[str, Any]
    requested_by: str
    room: str
    role: str
    required: int
    approved_by: list[str]
    missing: int
    requested_at: datetime
    expires_at: datetime
    you_may_decide: bool
    why_not: str = Field("", description="why the caller may not decide, when they may not")


class DecidedOut(BaseModel):
    """A recorded approve or deny (from the audit trail)."""

    audit_id: int
    at: datetime
    job_id: int | None
    command: str
    by: str
    decision: str
    reason: str


class DenyIn(BaseModel):
    """Why the job should not run."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=500)


class DecisionOut(OutcomeOut):
    """What `!approve N` / `!deny N` answered (with `wait`, the job's outcome when it ran)."""

    replies: list[dict[str, Any]]
    room: str | None = Field(None, description="the job's room, where its messages went")


def command_line(job: Job | None, spec: CommandSpec | None = None) -> str:
    """The job's command and parameters as they would be typed (`--seconds-per-volume 1.0`)."""
    if job is None:
        return "?"
    return typed_command("", job.command, job.params, spec)


async def pending_for(ctx: WebContext, principal: str) -> list[PendingOut]:
    """Open requests, oldest first, each saying whether `principal` may decide it."""
    engine = ctx.engine
    waiting: list[ApprovalRequest] = await ctx.store.pending_approvals()
    groups = await engine.dispatcher.groups.groups_of(principal)
    mine = set(roles_of(principal, engine.settings, groups=groups))
    registry = engine.dispatcher.ctx.registry
    out = []
    for request in waiting:
        job: Job | None = await ctx.store.get_job(request.job_id)
        if request.requested_by == principal:
            why = "you asked for it; someone else must decide"
        elif request.role not in mine:
            why = f"you are not a member of {request.role}"
        elif principal in request.approvers:
            why = "you already approved it"
        else:
            why = ""
        out.append(
            PendingOut(
                job_id=request.job_id,
                command=job.command if job else "?",
                command_line=command_line(job, registry.get(job.command) if job else None),
                params=dict(job.params) if job else {},
                requested_by=request.requested_by,
                room=job.room if job else "",
                role=request.role,
                required=request.required,
                approved_by=list(request.approvers),
                missing=request.missing,
                requested_at=request.requested_at,
                expires_at=request.expires_at,
                you_may_decide=not why,
                why_not=why,
            )
        )
    return out


async def decided(ctx: WebContext, *, limit: int = 20) -> list[DecidedOut]:
    """The latest approvals and denials, newest first, as the audit trail recorded them."""
    out = []
    for record in await ctx.store.audit(limit=max(limit * 20, 200)):
        event = record.event
        if event.action != "approval" or event.outcome not in ("approve", "deny"):
            continue
        out.append(
            DecidedOut(
                audit_id=record.id,
                at=record.at,
                job_id=event.job_id,
                command=event.command,
                by=event.principal,
                decision=event.outcome,
                reason=event.reason,
            )
        )
        if len(out) >= limit:
            break
    return out


async def decide_as(
    ctx: WebContext,
    principal: str,
    job_id: int,
    *,
    approve: bool,
    reason: str = "",
    wait: bool = False,
) -> DecisionOut:
    """Say `!approve N` or `!deny N reason` as `principal`, for the job's room to hear.

    "approved by …", the job's progress and its result go to the job's room; the answer
    comes once the decision is recorded (with `wait`, once the job ended).
    """
    prefix = ctx.engine.settings.bot.prefix
    text = f"{prefix}approve {job_id}"
    reason = " ".join(reason.split())
    if not approve:
        # Quoted: the reason reaches the desk as typed, whatever quotes it holds.
        text = f"{prefix}deny {job_id}" + (f" {shlex.quote(reason)}" if reason else "")
    job = await ctx.store.get_job(job_id)
    done = await act(ctx, principal, job, text, wait=wait)
    return DecisionOut(
        **done.outcome.to_dict(),
        replies=[reply_to_dict(r) for r in done.replies],
        room=done.room,
    )


@router.get("/approvals", response_model=list[PendingOut])
async def pending(ctx: Ctx, user: ApiUser) -> list[PendingOut]:
    """Requests waiting for approval, oldest first, with `you_may_decide` for the caller."""
    return await pending_for(ctx, user.principal)


@router.get("/approvals/decided", response_model=list[DecidedOut])
async def history(ctx: Ctx, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> list[DecidedOut]:
    """The latest approve and deny decisions, newest first."""
    return await decided(ctx, limit=limit)


@router.post(
    "/approvals/{job_id}/approve",
    response_model=DecisionOut,
    dependencies=[Depends(accepting)],
    responses={503: {"model": Problem}},
)
async def approve(job_id: JobId, ctx: Ctx, user: ApiUser, wait: Wait = False) -> DecisionOut:
    """Approve job `job_id` as `!approve` would; when it reaches the quorum the job runs.

    Its messages go to the job's room; the answer comes once the vote is recorded.
    """
    return await decide_as(ctx, user.principal, job_id, approve=True, wait=wait)


@router.post(
    "/approvals/{job_id}/deny",
    response_model=DecisionOut,
    dependencies=[Depends(accepting)],
    responses={503: {"model": Problem}},
)
async def deny(
    job_id: JobId, body: DenyIn, ctx: Ctx, user: ApiUser, wait: Wait = False
) -> DecisionOut:
    """Deny job `job_id` with a reason, as `!deny N reason` would (told in the job's room)."""
    return await decide_as(
        ctx, user.principal, job_id, approve=False, reason=body.reason, wait=wait
    )
