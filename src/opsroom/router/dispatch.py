"""The pipeline: inbound message → parse → policy → job → runner → replies.

The dispatcher is one of the two places (with `app.py`) that wires rooms together. It is a
client of the store through the `JobStore` protocol and of the runner through `build_launch`
and `run_local`; adapters and the CLI are clients of the dispatcher.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from opsroom.config import Settings
from opsroom.errors import RefusedError, StoreError, UserError
from opsroom.model.audit import AuditEvent, AuditRecord
from opsroom.model.blocks import Block, Code, Progress, Reply, Status, Table, Text
from opsroom.model.commands import CommandSpec, Invocation, Language
from opsroom.model.jobs import (
    ExitEvent,
    Job,
    JobEvent,
    JobState,
    OutputLine,
    ProgressEvent,
    StatusEvent,
    TableEvent,
)
from opsroom.model.messages import Inbound
from opsroom.policy.rbac import Decision, decide
from opsroom.router.builtins import HANDLERS, BuiltinContext, command_help, format_duration
from opsroom.router.parser import bind_arguments, normalize, strip_trigger, tokenize
from opsroom.router.registry import Registry
from opsroom.runner.argv import build_launch, powershell_available
from opsroom.runner.local import run_local
from opsroom.runner.pep723 import ensure_environment, environments_dir

Send = Callable[[Reply], Awaitable[None]]

_FLUSH_LINES = 200
_FLUSH_SECONDS = 0.5
_PROGRESS_EVERY = 1.0
_REPLY_TAIL = 40


class JobStore(Protocol):
    """What the dispatcher needs from the store."""

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
    ) -> Job:
        """Record a new job."""
        ...

    async def get_job(self, job_id: int) -> Job | None:
        """One job or None."""
        ...

    async def list_jobs(
        self,
        *,
        limit: int = 50,
        states: Collection[JobState] | None = None,
        requester: str | None = None,
    ) -> list[Job]:
        """Jobs, newest first."""
        ...

    async def start_job(self, job_id: int, *, owner: str) -> Job:
        """Mark a job running, owned by this process."""
        ...

    async def finish_job(
        self, job_id: int, *, state: JobState, exit_code: int | None, error: str | None = None
    ) -> Job:
        """Record how a job ended."""
        ...

    async def append_output(self, job_id: int, lines: Sequence[tuple[str, str]]) -> None:
        """Append (stream, text) lines."""
        ...

    async def output(self, job_id: int, *, tail: int | None = None) -> list[tuple[str, str]]:
        """(stream, text) lines of a job."""
        ...

    async def append_events(self, job_id: int, events: Sequence[Mapping[str, Any]]) -> None:
        """Append structured events."""
        ...

    async def append_audit(self, event: AuditEvent) -> AuditRecord:
        """Append one audit entry; raises StoreError when it cannot be written."""
        ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """What came of one message: the summary `opsroom run --json` prints last."""

    outcome: str  # ignored | succeeded | failed | refused | awaiting_approval
    job_id: int | None = None
    state: JobState | None = None
    exit_code: int | None = None
    output: str = ""

    @property
    def cli_exit_code(self) -> int:
        """0 accepted and succeeded (or waiting), 1 ran and failed, 2 refused (SPEC §7.2)."""
        if self.outcome == "refused":
            return 2
        if self.outcome == "failed":
            return 1
        return 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary line."""
        return {
            "outcome": self.outcome,
            "job_id": self.job_id,
            "state": self.state.value if self.state else None,
            "exit_code": self.exit_code,
            "output": self.output,
        }


@dataclass(frozen=True, slots=True)
class DispatchContext:
    """Fixed facts the dispatcher works with."""

    settings: Settings
    registry: Registry
    store: JobStore
    catalog_root: Path
    catalog_commit: str | None
    owner: str
    workdir_root: Path | None = None


class Dispatcher:
    """Turns inbound messages into replies and jobs."""

    def __init__(self, ctx: DispatchContext) -> None:
        self.ctx = ctx
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
        with tempfile.TemporaryDirectory(prefix="opsroom-check-") as tmp:
            build_launch(
                spec,
                invocation,
                catalog_root=self.ctx.catalog_root,
                job_id=0,
                requester=inbound.principal,
                room=inbound.room,
                settings=self.ctx.settings.runner,
                workdir=Path(tmp),
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
        store = self.ctx.store
        job = await store.create_job(
            command=spec.name,
            params=params,
            requester=inbound.principal,
            room=inbound.room,
            catalog_commit=self.ctx.catalog_commit,
            script_hash=spec.script_hash or None,
            dry_run=invocation.dry_run,
        )
        job = await store.start_job(job.id, owner=self.ctx.owner)
        await self._audit("job.start", inbound, spec, job, params=params)
        exit_event = await self._supervise(job, spec, invocation, inbound, send)
        job = await store.finish_job(
            job.id,
            state=exit_event.state,
            exit_code=exit_event.exit_code,
            error=exit_event.message or None,
        )
        await self._audit(
            "job.end", inbound, spec, job, outcome=job.state.value, reason=exit_event.message
        )
        outcome = "succeeded" if job.state is JobState.SUCCEEDED else "failed"
        lines = await store.output(job.id)
        return Outcome(
            outcome,
            job_id=job.id,
            state=job.state,
            exit_code=job.exit_code,
            output="\n".join(t for _, t in lines),
        )

    async def _python_for(self, spec: CommandSpec) -> str | None:
        """The interpreter of the cached PEP 723 environment a Python script asks for."""
        if spec.language is not Language.PYTHON or not spec.requires:
            return None
        env_python = await ensure_environment(
            spec.requires,
            spec.requires_python,
            cache_dir=environments_dir(self.ctx.settings.runner),
            python=self.ctx.settings.runner.python,
        )
        return str(env_python)

    async def _supervise(
        self,
        job: Job,
        spec: CommandSpec,
        invocation: Invocation,
        inbound: Inbound,
        send: Send,
    ) -> ExitEvent:
        runner = self.ctx.settings.runner
        workdir = Path(tempfile.mkdtemp(prefix=f"opsroom-job{job.id}-", dir=self.ctx.workdir_root))
        try:
            python = await self._python_for(spec)
            launch = build_launch(
                spec,
                invocation,
                catalog_root=self.ctx.catalog_root,
                job_id=job.id,
                requester=inbound.principal,
                room=inbound.room,
                settings=runner,
                workdir=workdir,
                python=python,
            )
            collector = _Collector(self.ctx.store, job.id, send)
            timeout = min(spec.timeout or runner.timeout, runner.max_timeout)
            task = asyncio.ensure_future(
                run_local(
                    launch,
                    timeout=timeout,
                    kill_grace=runner.kill_grace,
                    on_event=collector.on_event,
                )
            )
            wait = 0.0 if spec.background else runner.foreground_seconds
            done, _ = await asyncio.wait({task}, timeout=wait)
            if not done:
                await send(
                    Reply(
                        (
                            Status(
                                f"job {job.id} is running — `{self._prefix}job {job.id}` to look, "
                                f"`{self._prefix}cancel {job.id}` to stop",
                                "info",
                            ),
                        ),
                        job_id=job.id,
                        kind="job",
                    )
                )
            exit_event = await task
            await collector.flush()
            await send(collector.final_reply(job, exit_event))
            return exit_event
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


class _Collector:
    """Gathers a running job's events: stores output in batches, throttles progress replies."""

    def __init__(self, store: JobStore, job_id: int, send: Send) -> None:
        self.store = store
        self.job_id = job_id
        self.send = send
        self.lines: list[tuple[str, str]] = []
        self.pending: list[tuple[str, str]] = []
        self.events: list[Mapping[str, Any]] = []
        self.tables: list[Table] = []
        self.statuses: list[Status] = []
        self.count = 0
        self.last_flush = time.monotonic()
        self.last_progress = 0.0
        self.progress: ProgressEvent | None = None

    async def on_event(self, event: JobEvent) -> None:
        """Receive one event from the runner."""
        match event:
            case OutputLine(stream=stream, text=text):
                self.pending.append((stream.value, text))
                self.lines.append((stream.value, text))
                if len(self.lines) > _REPLY_TAIL:
                    del self.lines[0]
                self.count += 1
                now = time.monotonic()
                if len(self.pending) >= _FLUSH_LINES or now - self.last_flush > _FLUSH_SECONDS:
                    await self.flush()
            case ProgressEvent(percent=percent, message=message):
                self.progress = event
                self.events.append({"type": "progress", "percent": percent, "message": message})
                now = time.monotonic()
                if now - self.last_progress >= _PROGRESS_EVERY or (percent or 0) >= 100:
                    self.last_progress = now
                    await self.send(
                        Reply((Progress(percent, message),), job_id=self.job_id, kind="progress")
                    )
            case TableEvent(columns=columns, rows=rows):
                self.tables.append(Table(columns, rows))
                self.events.append(
                    {"type": "table", "columns": list(columns), "rows": [list(r) for r in rows]}
                )
            case StatusEvent(text=text, level=level):
                self.statuses.append(Status(text, level))
                self.events.append({"type": "status", "text": text, "level": level})

    async def flush(self) -> None:
        """Write pending output and events to the store."""
        self.last_flush = time.monotonic()
        if self.pending:
            batch, self.pending = self.pending, []
            await self.store.append_output(self.job_id, batch)
        if self.events:
            events, self.events = self.events, []
            await self.store.append_events(self.job_id, events)

    def final_reply(self, job: Job, exit_event: ExitEvent) -> Reply:
        """What the room sees when the job ends."""
        blocks: list[Block] = []
        if self.lines:
            more = self.count - len(self.lines)
            blocks.append(Code(tuple(t for _, t in self.lines), more=more, link=f"job {job.id}"))
        blocks.extend(self.tables)
        blocks.extend(self.statuses)
        took = ""
        if job.started_at is not None:
            took = f" in {format_duration(time.time() - job.started_at.timestamp())}"
        state = exit_event.state
        if state is JobState.SUCCEEDED:
            blocks.append(Status(f"job {job.id} {job.command}: succeeded{took}", "success"))
        else:
            why = f" — {exit_event.message}" if exit_event.message else ""
            code = f" (exit code {exit_event.exit_code})" if exit_event.exit_code else ""
            blocks.append(
                Status(
                    f"job {job.id} {job.command}: {state.value.replace('_', ' ')}{code}{took}{why}",
                    "error",
                )
            )
        return Reply(tuple(blocks), job_id=job.id, kind="job")


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
            case Progress():
                pass
    return "\n".join(parts)


__all__ = ["DispatchContext", "Dispatcher", "JobStore", "Outcome", "Send", "command_help"]
