"""The pipeline: inbound message → parse → policy → job → runner → replies.

The dispatcher is one of the two places (with `app.py`) that wires rooms together. It is a
client of the store through the `JobStore` protocol and of the runner through `build_launch`
and `run_local`; adapters and the CLI are clients of the dispatcher.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsroom.config import Settings
from opsroom.errors import RefusedError, StoreError, UserError
from opsroom.model.audit import AuditEvent
from opsroom.model.blocks import Code, File, Progress, Reply, Status, Table, Text
from opsroom.model.commands import CommandSpec, Invocation, Language
from opsroom.model.jobs import Job
from opsroom.model.messages import Inbound
from opsroom.policy.rbac import Decision, decide, is_admin
from opsroom.router.builtins import HANDLERS, BuiltinContext, command_help
from opsroom.router.outcome import Outcome
from opsroom.router.parser import bind_arguments, normalize, strip_trigger, tokenize
from opsroom.router.registry import Registry
from opsroom.router.supervisor import JobRequest, Supervisor
from opsroom.runner.argv import build_launch, powershell_available

if TYPE_CHECKING:
    from opsroom.store import Store

Send = Callable[[Reply], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DispatchContext:
    """Fixed facts the dispatcher works with."""

    settings: Settings
    registry: Registry
    store: Store
    catalog_root: Path
    catalog_commit: str | None
    owner: str
    workdir_root: Path | None = None


class Dispatcher:
    """Turns inbound messages into replies and jobs."""

    def __init__(self, ctx: DispatchContext) -> None:
        self.ctx = ctx
        self.supervisor = Supervisor(
            settings=ctx.settings,
            store=ctx.store,
            catalog_root=ctx.catalog_root,
            catalog_commit=ctx.catalog_commit,
            owner=ctx.owner,
            workdir_root=ctx.workdir_root,
        )
        self._prefix = ctx.settings.bot.prefix
        self._names = (ctx.settings.bot.name,)

    # -- entry point -----------------------------------------------------------------------

    async def handle(self, inbound: Inbound, send: Send) -> Outcome:
        """Handle one message; every reply goes through `send`."""
        body = strip_trigger(
            normalize(inbound.text),
            prefix=self._prefix,
            bot_names=self._names,
            direct=inbound.direct,
        )
        if body is None:
            return Outcome("ignored")
        try:
            return await self._handle(inbound, body, send)
        except UserError as e:
            await send(Reply((Status(str(e), "error"),), kind="error"))
            return Outcome("refused", output=str(e))

    async def _handle(self, inbound: Inbound, body: str, send: Send) -> Outcome:
        tokens = tokenize(body)
        if not tokens:
            await send(Reply((Text(f"Say `{self._prefix}help` to see what I can do."),)))
            return Outcome("succeeded")
        spec, rest = self.ctx.registry.lookup(tokens)
        decision = decide(inbound.principal, inbound.room, spec, self.ctx.settings)
        if not decision.allowed:
            await self._audit(
                "decision", inbound, spec, None, outcome="denied", reason=decision.reason
            )
            raise RefusedError(decision.reason)
        if spec.language is Language.BUILTIN:
            reply = await HANDLERS[spec.name](self._builtin_ctx(inbound), rest)
            await send(reply)
            return Outcome("succeeded", output=_plain(reply))
        if _asks_for_help(spec, rest):
            await send(command_help(spec, self._prefix, self.spec_notes(spec)))
            return Outcome("succeeded")
        invocation = bind_arguments(spec, rest, text=body, prefix=self._prefix)
        return await self._run(inbound, spec, invocation, decision, send)

    def _builtin_ctx(self, inbound: Inbound) -> BuiltinContext:
        return BuiltinContext(
            principal=inbound.principal,
            room=inbound.room,
            prefix=self._prefix,
            registry=self.ctx.registry,
            jobs=self.ctx.store,
            catalog_root=str(self.ctx.catalog_root),
            catalog_commit=self.ctx.catalog_commit,
            can_run=lambda s: decide(inbound.principal, inbound.room, s, self.ctx.settings).allowed,
            spec_notes=self.spec_notes,
            is_admin=is_admin(inbound.principal, self.ctx.settings),
            cancel_wait=self.ctx.settings.runner.kill_grace + 3.0,
        )

    def spec_notes(self, spec: CommandSpec) -> tuple[str, ...]:
        """Warnings shown with a command's help, e.g. no PowerShell runtime on this host."""
        if spec.language is Language.POWERSHELL and not powershell_available(
            self.ctx.settings.runner
        ):
            return ("No PowerShell runtime (pwsh) on this host: this command cannot run here.",)
        return ()

    # -- running a catalog command ---------------------------------------------------------

    def _preflight(self, spec: CommandSpec, invocation: Invocation, inbound: Inbound) -> None:
        """Raise RefusedError before a job exists when the runner could never start it."""
        missing = [n for n in spec.secrets if n not in self.ctx.settings.secrets]
        if missing:
            raise RefusedError(
                f"{spec.name} needs the secret {', '.join(missing)}, which is not configured "
                "in [secrets]; nothing was run"
            )
        build_launch(  # pure: checks dry-run support, the runtime, the script path
            spec,
            invocation,
            catalog_root=self.ctx.catalog_root,
            job_id=0,
            requester=inbound.principal,
            room=inbound.room,
            settings=self.ctx.settings.runner,
            workdir=Path(tempfile.gettempdir()),
        )

    async def _audit(
        self,
        action: str,
        inbound: Inbound,
        spec: CommandSpec,
        job: Job | None,
        *,
        params: Mapping[str, Any] | None = None,
        outcome: str = "",
        reason: str = "",
    ) -> None:
        await self.ctx.store.append_audit(
            AuditEvent(
                action=action,
                principal=inbound.principal,
                room=inbound.room,
                command=spec.name,
                params=dict(params) if params is not None else None,
                job_id=job.id if job else None,
                outcome=outcome,
                reason=reason,
                catalog_commit=self.ctx.catalog_commit,
                script_hash=spec.script_hash or None,
            )
        )

    async def _run(
        self,
        inbound: Inbound,
        spec: CommandSpec,
        invocation: Invocation,
        decision: Decision,
        send: Send,
    ) -> Outcome:
        self._preflight(spec, invocation, inbound)
        params = _jsonable(invocation.params)
        try:
            await self._audit(
                "request",
                inbound,
                spec,
                None,
                params=params,
                outcome="allowed",
                reason=decision.reason,
            )
        except StoreError as e:
            raise RefusedError(f"the audit log cannot be written ({e}); nothing was run") from None
        request = JobRequest(spec, invocation, inbound.principal, inbound.room)
        job = await self.supervisor.submit(request, params)
        return await self.supervisor.execute(job, request, send)


def _asks_for_help(spec: CommandSpec, rest: Sequence[str]) -> bool:
    """`!cmd --help` shows help unless the script declares its own `help` parameter."""
    if len(rest) != 1 or rest[0].lower() not in ("--help", "-h", "-?", "/?"):
        return False
    return all(p.name.lower() != "help" for p in spec.params)


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def _plain(reply: Reply) -> str:
    parts: list[str] = []
    for b in reply.blocks:
        match b:
            case Text(text=t) | Status(text=t):
                parts.append(t)
            case Code(lines=lines):
                parts.extend(lines)
            case Table(columns=cols, rows=rows):
                parts.append("\t".join(cols))
                parts.extend("\t".join(r) for r in rows)
            case File(name=name):
                parts.append(f"[file {name}]")
            case Progress():
                pass
    return "\n".join(parts)


__all__ = ["DispatchContext", "Dispatcher", "Outcome", "Send"]
