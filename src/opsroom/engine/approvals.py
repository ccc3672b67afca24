"""Approvals in the pipeline (SPEC §6.3): ask, approve, deny, list what is pending.

A gated command's job waits in `awaiting_approval`; the request is persisted, so it
survives restarts and any opsroom process sharing the store may record the deciding vote.
The process that records it starts the job, after checking the requester's permission
again. Like `dispatch.py`, this module wires rooms together.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opsroom.config import Settings
from opsroom.engine.supervisor import Announce, JobRequest, Supervisor
from opsroom.errors import ParseError, RefusedError
from opsroom.model.approvals import VoteDecision
from opsroom.model.audit import AuditEvent
from opsroom.model.blocks import Actions, Code, Reply, Status, Table, Text
from opsroom.model.commands import Invocation, Language
from opsroom.model.jobs import Job, JobState
from opsroom.model.messages import Inbound
from opsroom.policy.approval import DEFAULT_TTL, check_vote, params_hash
from opsroom.policy.groups import GroupResolver
from opsroom.policy.rbac import decide, roles_of
from opsroom.router.bounded import AuditedRefusal, bounded_params, escaped, shorten
from opsroom.router.deployment import Deployment, Live
from opsroom.router.outcome import Outcome

if TYPE_CHECKING:
    from opsroom.store import Store

Send = Callable[[Reply], Awaitable[None]]

_MAX_ID_DIGITS = 18  # job ids fit in 64 bits


class ApprovalDesk:
    """Everything approval-related the dispatcher delegates."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        live: Live,
        groups: GroupResolver,
        supervisor: Supervisor,
    ) -> None:
        self.settings = settings
        self.store = store
        self.live = live
        self.groups = groups
        self.supervisor = supervisor
        self.prefix = settings.bot.prefix

    async def request(self, job: Job, req: JobRequest, send: Send) -> Outcome:
        """Put a freshly created job up for approval and tell the room who can approve."""
        spec = req.spec
        assert spec.approval is not None
        ttl = spec.approval_ttl or DEFAULT_TTL
        request = await self.store.request_approval(
            job.id,
            role=spec.approval,
            required=spec.approvals,
            params_hash=params_hash(job.command, job.params),
            requested_by=req.requester,
            ttl=ttl,
        )
        who = f"{request.required} members" if request.required > 1 else "a member"
        until = request.expires_at.strftime("%H:%M UTC")
        text = (
            f"job {job.id} {job.command} needs approval by {who} of role {request.role} "
            f"(not {req.requester}) — `{self.prefix}approve {job.id}` or "
            f"`{self.prefix}deny {job.id} <reason>`; the request expires at {until}"
        )
        buttons = Actions((("Approve", f"approve:{job.id}"), ("Deny", f"deny:{job.id}")))
        await send(Reply((Status(text, "warning"), buttons), job_id=job.id, kind="approval"))
        return Outcome("awaiting_approval", job_id=job.id, state=JobState.AWAITING_APPROVAL)

    async def vote(
        self, inbound: Inbound, args: list[str], decision: VoteDecision, send: Send
    ) -> Outcome:
        """`approve N` or `deny N [reason]`."""
        usage = (
            f"{self.prefix}approve <id>"
            if decision is VoteDecision.APPROVE
            else f"{self.prefix}deny <id> [reason]"
        )
        digits = args[0].lstrip("#") if args else ""
        if not digits.isdecimal():
            raise ParseError("id: give the job number", usage=usage)
        if decision is VoteDecision.APPROVE and len(args) > 1:
            raise ParseError("approve takes only the job number", usage=usage)
        if len(digits) > _MAX_ID_DIGITS:  # names no job, and int() would refuse it
            raise RefusedError(f"job {shorten(digits, 20)} is not waiting for approval")
        job_id = int(digits)
        reason = " ".join(args[1:])
        job = await self.store.get_job(job_id)
        request = await self.store.approval(job_id)
        if job is None or request is None:
            raise RefusedError(f"job {job_id} is not waiting for approval")
        groups = await self.groups.groups_of(inbound.principal)
        member = request.role in roles_of(inbound.principal, self.settings, groups=groups)
        check = check_vote(
            request, inbound.principal, is_member=member, now=datetime.now(UTC), decision=decision
        )
        if not check.allowed:
            await self._audit("approval", inbound, job, outcome="refused", reason=check.reason)
            raise AuditedRefusal(check.reason)
        result = await self.store.vote(
            job_id,
            approver=inbound.principal,
            decision=decision,
            reason=reason,
            params_hash=params_hash(job.command, job.params),
        )
        if not result.accepted:
            await self._audit("approval", inbound, job, outcome="refused", reason=result.reason)
            raise AuditedRefusal(result.reason)
        await self._audit(
            "approval", inbound, job, outcome=decision.value, reason=reason or result.reason
        )
        job = result.job
        if not result.decided:
            more = result.missing
            await send(
                Reply(
                    (
                        Status(
                            f"approval of job {job.id} recorded; {more} more needed from role "
                            f"{request.role}",
                            "info",
                        ),
                    ),
                    job_id=job.id,
                )
            )
            return Outcome("awaiting_approval", job_id=job.id, state=job.state)
        if not result.approved:
            why = f": {shorten(reason)}" if reason else ""
            await send(
                Reply(
                    (
                        Status(
                            f"job {job.id} {job.command} denied by {inbound.principal}{why}",
                            "success",
                        ),
                    ),
                    job_id=job.id,
                )
            )
            return Outcome("succeeded", job_id=job.id, state=job.state)
        return await self._start_approved(job, inbound, send)

    async def _start_approved(self, job: Job, inbound: Inbound, send: Send) -> Outcome:
        """The deciding approval was recorded here: re-check and run the job."""
        dep = self.live.current  # the catalog as it is now: re-checked, run and recorded
        with self.live.hold(dep):
            return await self._start_on(job, inbound, send, dep)

    async def _start_on(self, job: Job, inbound: Inbound, send: Send, dep: Deployment) -> Outcome:
        spec = dep.registry.get(job.command)
        why = ""
        if spec is None or spec.language is Language.BUILTIN:
            why = f"{job.command} is no longer in the catalog"
        else:
            groups = await self.groups.groups_of(job.requester)
            decision = decide(
                job.requester, job.room, spec, self.settings, groups=groups, params=job.params
            )
            if not decision.allowed:
                why = f"{job.requester} may no longer run it ({decision.reason})"
        if spec is None or why:
            await self.supervisor.end_unstarted(job, why)
            await send(
                Reply(
                    (Status(f"job {job.id} {job.command}: not run — {why}", "error"),),
                    job_id=job.id,
                )
            )
            return Outcome("refused", job_id=job.id, state=JobState.FAILED, output=why)
        decided = f"job {job.id} {job.command} approved by {inbound.principal}"
        approved = Announce(
            starting=Reply((Status(f"{decided}; starting", "success"),), job_id=job.id),
            # Its place in the queue is said next ("queued behind job N"): not "starting".
            waiting=Reply((Status(decided, "success"),), job_id=job.id),
        )
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in job.params.items()}
        invocation = Invocation(command=spec.name, params=params, dry_run=job.dry_run)
        request = JobRequest(spec, invocation, job.requester, job.room, deployment=dep)
        # Said once its start is on disk (or it waits in the queue), never before.
        return await self.supervisor.execute(job, request, send, announce=approved)

    async def pending(self, inbound: Inbound) -> Reply:
        """`pending`: requests waiting for approval, and whether the asker may decide them."""
        waiting = await self.store.pending_approvals()
        if not waiting:
            return Reply((Text("Nothing is waiting for approval."),))
        groups = await self.groups.groups_of(inbound.principal)
        mine = set(roles_of(inbound.principal, self.settings, groups=groups))
        jobs = {r.job_id: await self.store.get_job(r.job_id) for r in waiting}
        rows = tuple(
            (
                str(r.job_id),
                _command_line(jobs[r.job_id]),
                r.requested_by,
                r.role,
                f"{len(r.approvers)}/{r.required}",
                r.expires_at.strftime("%H:%M UTC"),
                "yes" if r.role in mine and r.requested_by != inbound.principal else "no",
            )
            for r in waiting
        )
        return Reply(
            (
                Table(
                    ("job", "command", "asked by", "role", "approved", "expires", "you may"), rows
                ),
                Code((f"{self.prefix}approve <job>   {self.prefix}deny <job> <reason>",)),
            )
        )

    async def expire(self) -> list[int]:
        """Mark requests past their deadline `expired`."""
        return await self.store.expire_approvals()

    async def _audit(
        self, action: str, inbound: Inbound, job: Job, *, outcome: str, reason: str
    ) -> None:
        await self.store.append_audit(
            AuditEvent(
                action=action,
                principal=inbound.principal,
                room=inbound.room,
                command=job.command,
                params=bounded_params(job.params),
                job_id=job.id,
                outcome=outcome,
                reason=escaped(shorten(reason)),
                catalog_commit=job.catalog_commit,
                script_hash=job.script_hash,
            )
        )


def _command_line(job: Job | None) -> str:
    """The job's command as it would be typed: `--seconds-per-volume 1.0`, flags bare."""
    if job is None:
        return "?"
    params: dict[str, Any] = dict(job.params)
    words = [job.command]
    for name, value in params.items():
        option = "--" + name.replace("_", "-")
        for item in value if isinstance(value, list | tuple) else [value]:
            if item is True:
                words.append(option)
            elif item is not False and item is not None:
                words.append(f"{option} {item}")
    return " ".join(words)
