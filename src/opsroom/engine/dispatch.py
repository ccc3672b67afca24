"""The pipeline: inbound message → parse → policy → job → runner → replies.

The dispatcher is one of the two places (with `app.py`) that wires rooms together. It is a
client of the store through the `JobStore` protocol and of the runner through `build_launch`
and `run_local`; adapters and the CLI are clients of the dispatcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsroom.config import Settings
from opsroom.engine.approvals import ApprovalDesk
from opsroom.engine.ends import BuiltinJobs
from opsroom.engine.remote import check_remote
from opsroom.engine.schedules import ScheduleDesk
from opsroom.engine.supervisor import (
    Announce,
    JobRequest,
    Supervisor,
    append_request,
    local_secrets,
)
from opsroom.errors import RefusedError, StoreError, UserError
from opsroom.model.approvals import VoteDecision
from opsroom.model.audit import AuditEvent
from opsroom.model.blocks import Choices, Code, File, Progress, Reply, Status, Table, Text
from opsroom.model.commands import Builtin, CommandSpec, Invocation, Language
from opsroom.model.jobs import Job, JobState
from opsroom.model.messages import Inbound
from opsroom.policy.groups import GroupResolver
from opsroom.policy.masking import Masker
from opsroom.policy.rbac import Decision, decide, is_admin, roles_of
from opsroom.router.bounded import (
    MAX_MESSAGE_BYTES,
    AuditedRefusal,
    bounded_params,
    escaped,
    exec_limit_problem,
    exec_limits,
    sent_form,
    shorten,
    size_of,
    too_long,
)
from opsroom.router.builtins import (
    HANDLERS,
    BuiltinContext,
    cancel_job,
    cancel_target,
    command_help,
)
from opsroom.router.deployment import Deployment, Live
from opsroom.router.menus import Menu, MenuBook
from opsroom.router.outcome import Outcome
from opsroom.router.parser import (
    MissingParameters,
    bind_arguments,
    normalize,
    strip_trigger,
    tokenize,
)
from opsroom.router.registry import Registry
from opsroom.runner.argv import arg_env_name, build_launch, missing_runtime

if TYPE_CHECKING:
    from opsroom.store import Store

Send = Callable[[Reply], Awaitable[None]]

CHOICES_TTL = 60.0  # seconds `choices_from` results are reused
MAX_MENU_OPTIONS = 50
_TRIGGER_HEAD = 1024  # characters enough to tell whether an oversized message is addressed


# Longer requests are bound in a worker thread (see `_invoke`).
_BIND_OFF_LOOP_CHARS = 4096


@dataclass(frozen=True, slots=True)
class DispatchContext:
    """Fixed facts the dispatcher works with."""

    settings: Settings
    live: Live  # the catalog being served; a request takes `live.current` once
    store: Store
    owner: str
    workdir_root: Path | None = None
    groups: GroupResolver | None = None  # None: static [groups] and [ldap] from settings
    # `reload` (admins): re-read the catalog now, for (principal, room); None: cannot here
    reload: Callable[[str, str], Awaitable[Reply]] | None = None

    # For readers outside a request (web pages, the CLI): the catalog as it is right now.
    @property
    def registry(self) -> Registry:
        """Commands of the current catalog, and the built-ins."""
        return self.live.current.registry

    @property
    def catalog_root(self) -> Path:
        """Where the current catalog's scripts are."""
        return self.live.current.root

    @property
    def catalog_commit(self) -> str | None:
        """The commit of the current catalog (None: a folder outside git)."""
        return self.live.current.commit


@dataclass(slots=True)
class _Trail:
    """What one request has revealed so far, for the audit entry should it be refused."""

    spec: CommandSpec | None = None
    params: dict[str, Any] = field(default_factory=dict)
    dep: Deployment | None = None  # the catalog version this request uses, taken once


class Dispatcher:
    """Turns inbound messages into replies and jobs."""

    def __init__(self, ctx: DispatchContext) -> None:
        self.ctx = ctx
        self.supervisor = Supervisor(
            settings=ctx.settings,
            store=ctx.store,
            live=ctx.live,
            owner=ctx.owner,
            workdir_root=ctx.workdir_root,
        )
        self.groups = ctx.groups or GroupResolver(ctx.settings)
        self.approvals = ApprovalDesk(
            settings=ctx.settings,
            store=ctx.store,
            live=ctx.live,
            groups=self.groups,
            supervisor=self.supervisor,
        )
        self.schedules = ScheduleDesk(
            settings=ctx.settings,
            store=ctx.store,
            registry=lambda: self.ctx.registry,
            groups=self.groups,
            catalog_commit=lambda: self.ctx.catalog_commit,
        )
        self.menus = MenuBook()
        self._choices_cache: dict[tuple[str, str], tuple[float, tuple[str, ...]]] = {}
        self._prefix = ctx.settings.bot.prefix
        self._names = (ctx.settings.bot.name,)

    # -- entry point -----------------------------------------------------------------------

    async def handle(self, inbound: Inbound, send: Send) -> Outcome:
        """Handle one message; every reply goes through `send`."""
        dep = self.ctx.live.current  # one catalog version for the whole request
        with self.ctx.live.hold(dep):
            return await self._handle_message(inbound, send, dep)

    async def _handle_message(self, inbound: Inbound, send: Send, dep: Deployment) -> Outcome:
        if too_long(inbound.text):
            return await self._oversized(inbound, send)
        text = normalize(inbound.text)
        body = strip_trigger(
            text, prefix=self._prefix, bot_names=self._names, direct=inbound.direct
        )
        menu = self.menus.pending(inbound.principal, inbound.room)
        if menu is not None:
            # An answer to an open menu needs no prefix: "2" or "dc1".
            choice = menu.answer(body if body is not None else text)
            if choice is not None:
                self.menus.close(menu)
                trail = _Trail(menu.spec, dep=dep)
                work = self._resume(inbound, menu, choice, send, trail)
                return await self._guarded(work, inbound, send, trail)
        if body is None:
            return Outcome("ignored")
        trail = _Trail(dep=dep)
        return await self._guarded(self._handle(inbound, body, send, trail), inbound, send, trail)

    async def choose(self, inbound: Inbound, menu_id: str, index: int, send: Send) -> Outcome:
        """A button of a menu was clicked (`menu_id`, option `index`, 0-based)."""
        dep = self.ctx.live.current
        with self.ctx.live.hold(dep):
            return await self._choose(inbound, menu_id, index, send, dep)

    async def _choose(
        self, inbound: Inbound, menu_id: str, index: int, send: Send, dep: Deployment
    ) -> Outcome:
        menu = self.menus.by_id(menu_id)
        if menu is None or menu.principal != inbound.principal:
            await self._audit_refusal(
                inbound, _Trail(), "that menu has expired", sent={"menu": menu_id, "option": index}
            )
            await send(Reply((Status("That menu has expired; ask again.", "warning"),)))
            return Outcome("refused", output="menu expired")
        if not 0 <= index < len(menu.options):
            await self._audit_refusal(
                inbound,
                _Trail(menu.spec),
                "no such option",
                sent={"menu": menu_id, "option": index},
            )
            return Outcome("refused", output="no such option")
        self.menus.close(menu)
        trail = _Trail(menu.spec, dep=dep)
        work = self._resume(inbound, menu, menu.options[index], send, trail)
        return await self._guarded(work, inbound, send, trail)

    async def _guarded(
        self, work: Awaitable[Outcome], inbound: Inbound, send: Send, trail: _Trail
    ) -> Outcome:
        try:
            return await work
        except UserError as e:
            # Bounded whatever raised it: an error never carries a flood back to the room.
            why = shorten(e.message)
            shown = f"{why}\nusage: {e.usage}" if e.usage else why
            if not isinstance(e, AuditedRefusal):
                await self._audit_refusal(inbound, trail, why)
            await send(Reply((Status(shown, "error"),), kind="error"))
            return Outcome("refused", output=shown)

    async def _oversized(self, inbound: Inbound, send: Send) -> Outcome:
        """Refuse a message over MAX_MESSAGE_BYTES unread — if it was meant for the bot."""
        head = normalize(inbound.text[:_TRIGGER_HEAD])
        addressed = strip_trigger(
            head, prefix=self._prefix, bot_names=self._names, direct=inbound.direct
        )
        if addressed is None:
            return Outcome("ignored")  # a long message between people is none of our business
        why = (
            f"that message is {size_of(inbound.text):,} bytes; "
            f"messages to the bot can be at most {MAX_MESSAGE_BYTES:,} bytes — nothing was run"
        )
        await self._audit_refusal(inbound, _Trail(), why)
        await send(Reply((Status(why, "error"),), kind="error"))
        return Outcome("refused", output=why)

    async def _resume(
        self, inbound: Inbound, menu: Menu, choice: str, send: Send, trail: _Trail
    ) -> Outcome:
        spec = _dep(self, trail).registry.get(menu.spec.name) or menu.spec
        trail.spec = spec
        groups = await self.groups.groups_of(inbound.principal)
        text = " ".join([spec.name, *menu.continued(choice)])
        return await self._invoke(inbound, spec, menu.continued(choice), text, groups, send, trail)

    async def _handle(self, inbound: Inbound, body: str, send: Send, trail: _Trail) -> Outcome:
        tokens = tokenize(body)
        if not tokens:
            await send(Reply((Text(f"Say `{self._prefix}help` to see what I can do."),)))
            return Outcome("succeeded")
        dep = _dep(self, trail)
        spec, rest = dep.registry.lookup(tokens)
        trail.spec = spec
        groups = await self.groups.groups_of(inbound.principal)
        decision = decide(inbound.principal, inbound.room, spec, self.ctx.settings, groups=groups)
        await self._refuse_unless(decision, inbound, trail)
        if spec.language is Language.BUILTIN:
            return await self._builtin(inbound, spec, rest, groups, send, dep)
        if _asks_for_help(spec, rest):
            await send(command_help(spec, self._prefix, self.spec_notes(spec)))
            return Outcome("succeeded")
        return await self._invoke(inbound, spec, rest, body, groups, send, trail)

    async def _invoke(
        self,
        inbound: Inbound,
        spec: CommandSpec,
        rest: list[str],
        body: str,
        groups: frozenset[str],
        send: Send,
        trail: _Trail,
    ) -> Outcome:
        try:
            if len(body) > _BIND_OFF_LOOP_CHARS:
                # Patterns match in linear time (RE2, which releases the GIL), but linear in
                # 64 KiB is still tens of ms: other rooms keep being answered meanwhile.
                invocation = await asyncio.to_thread(
                    bind_arguments, spec, rest, text=body, prefix=self._prefix
                )
            else:
                invocation = bind_arguments(spec, rest, text=body, prefix=self._prefix)
        except MissingParameters as missing:
            menu = await self._menu_for(inbound, spec, rest, missing, groups, _dep(self, trail))
            if menu is None:
                raise
            prompt = f"{spec.name}: which {menu.param.name}?"
            await send(Reply((Choices(prompt, menu.options, menu.id),), kind="menu"))
            return Outcome("succeeded", output=prompt)
        trail.params = _jsonable(invocation.params)
        # Now the values are known: `where` limits of the roles apply to them.
        decision = decide(
            inbound.principal,
            inbound.room,
            spec,
            self.ctx.settings,
            groups=groups,
            params=invocation.params,
        )
        await self._refuse_unless(decision, inbound, trail)
        return await self._run(inbound, spec, invocation, decision, send, _dep(self, trail))

    async def _menu_for(
        self,
        inbound: Inbound,
        spec: CommandSpec,
        rest: list[str],
        missing: MissingParameters,
        groups: frozenset[str],
        dep: Deployment,
    ) -> Menu | None:
        """A menu for the first missing parameter with choices, where someone can answer."""
        if not inbound.interactive:
            return None
        first = next((p for p in spec.params if p.name == missing.missing[0]), None)
        if first is None:
            return None
        options = first.choices
        if not options and first.choices_from:
            options = await self.dynamic_choices(first.choices_from, inbound, groups, dep)
        if not options:
            return None
        return self.menus.open(
            principal=inbound.principal,
            room=inbound.room,
            spec=spec,
            param=first,
            options=tuple(options),
            tokens=tuple(rest),
        )

    async def dynamic_choices(
        self,
        command: str,
        inbound: Inbound,
        groups: frozenset[str],
        dep: Deployment | None = None,
    ) -> tuple[str, ...]:
        """`choices_from`: run `command` as the asking user, under policy; cached briefly."""
        dep = dep or self.ctx.live.current
        key = (command, inbound.principal)
        cached = self._choices_cache.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[0] < CHOICES_TTL:
            return cached[1]
        spec = dep.registry.get(command)
        if spec is None or spec.language is Language.BUILTIN:
            return ()
        decision = decide(inbound.principal, inbound.room, spec, self.ctx.settings, groups=groups)
        if not decision.allowed:
            return ()
        replies: list[Reply] = []

        async def keep(reply: Reply) -> None:
            replies.append(reply)

        outcome = await self._run(inbound, spec, Invocation(command=spec.name), decision, keep, dep)
        options = _options_from(outcome.output, replies) if outcome.outcome == "succeeded" else ()
        self._choices_cache[key] = (now, options)
        return options

    async def _refuse_unless(self, decision: Decision, inbound: Inbound, trail: _Trail) -> None:
        if decision.allowed:
            return
        await self._audit_refusal(
            inbound, trail, decision.reason, action="decision", outcome="denied"
        )
        raise AuditedRefusal(decision.reason)

    async def _audit_refusal(
        self,
        inbound: Inbound,
        trail: _Trail,
        why: str,
        *,
        action: str = "request",
        outcome: str = "refused",
        sent: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a refused request: who, where, what they sent (escaped, bounded), and why."""
        masker = await self._masker()
        params: dict[str, Any] = {"text": sent_form(masker.mask(inbound.text))}
        if trail.params:
            params["params"] = bounded_params(masker.mask_obj(trail.params))
        if sent is not None:
            params.update(masker.mask_obj(dict(sent)))
        spec = trail.spec
        # Refused either way: a refusal the audit log cannot record is still a refusal.
        with contextlib.suppress(StoreError):
            await self.ctx.store.append_audit(
                AuditEvent(
                    action=action,
                    principal=inbound.principal,
                    room=inbound.room,
                    command=spec.name if spec is not None else "",
                    params=params,
                    outcome=outcome,
                    reason=escaped(shorten(masker.mask(why))),
                    catalog_commit=_dep(self, trail).commit,
                    script_hash=(spec.script_hash or None) if spec is not None else None,
                )
            )

    async def _masker(self) -> Masker:
        """Masks the secrets readable here and now in what people sent (see local_secrets)."""
        return Masker(await local_secrets(self.ctx.settings))

    async def _builtin(
        self,
        inbound: Inbound,
        spec: CommandSpec,
        rest: list[str],
        groups: frozenset[str],
        send: Send,
        dep: Deployment,
    ) -> Outcome:
        if spec.name in (Builtin.APPROVE, Builtin.DENY):
            return await self.approvals.vote(inbound, rest, VoteDecision(spec.name), send)
        if spec.name == Builtin.PENDING:
            reply = await self.approvals.pending(inbound)
        elif spec.name == Builtin.SCHEDULE:
            reply = await self.schedules.command(inbound, rest, groups)
        elif spec.name == Builtin.CANCEL:
            ctx = self._builtin_ctx(inbound, groups, dep)
            try:
                job = await cancel_target(ctx, rest)
            except UserError as e:
                await self._audit_refusal(
                    inbound, _Trail(spec), e.message, action="job.cancel", outcome="refused"
                )
                raise AuditedRefusal(e.message, usage=e.usage) from None
            # Recorded before it takes effect: no audit, no action.
            try:
                await self._audit(
                    "job.cancel",
                    inbound,
                    spec,
                    job,
                    params={"args": rest},
                    outcome="requested",
                )
            except StoreError as e:
                raise RefusedError(
                    f"the audit log cannot be written ({e}); nothing was cancelled"
                ) from None
            reply = await cancel_job(ctx, job)
        else:
            reply = await HANDLERS[spec.name](self._builtin_ctx(inbound, groups, dep), rest)
        await send(reply)
        return Outcome("succeeded", output=_plain(reply))

    async def adopt_orphans(self, send_for_room: Callable[[str], Send]) -> list[Outcome]:
        """Run queued jobs whose waiting process is gone (SPEC §5.5: they survive restarts).

        Long-lived processes (`serve`) call this periodically; replies go to the job's room.
        Each adopted job is re-checked against the catalog and the policy before it runs.
        """
        store = self.ctx.store
        tasks = []
        for orphan in await store.orphaned_queue():
            job = await store.adopt_job(orphan.id, owner=self.ctx.owner)
            if job is None:
                continue  # another process adopted it first
            send = send_for_room(job.room)
            tasks.append(asyncio.ensure_future(self._run_adopted(job, send)))
        return list(await asyncio.gather(*tasks))

    async def _run_adopted(self, job: Job, send: Send) -> Outcome:
        dep = self.ctx.live.current
        with self.ctx.live.hold(dep):
            return await self._run_adopted_on(job, send, dep)

    async def _run_adopted_on(self, job: Job, send: Send, dep: Deployment) -> Outcome:
        spec = dep.registry.get(job.command)
        why = ""
        if spec is None or spec.language is Language.BUILTIN:
            why = f"{job.command} is no longer in the catalog"
        else:
            groups = await self.groups.groups_of(job.requester)
            decision = decide(
                job.requester, job.room, spec, self.ctx.settings, groups=groups, params=job.params
            )
            if not decision.allowed:
                why = decision.reason
        if spec is None or why:
            ended = await self.supervisor.end_unstarted(job, why)
            await send(
                Reply(
                    (Status(f"job {job.id} {job.command}: not run — {why}", "error"),),
                    job_id=job.id,
                    kind="job",
                )
            )
            return Outcome("refused", job_id=job.id, state=ended.state, output=why)
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in job.params.items()}
        invocation = Invocation(command=spec.name, params=params, dry_run=job.dry_run)
        request = JobRequest(spec, invocation, job.requester, job.room, deployment=dep)
        starting = Reply(
            (
                Status(
                    f"job {job.id} {job.command} (queued by {job.requester}) is starting", "info"
                ),
            ),
            job_id=job.id,
            kind="job",
        )
        # Said once its start is on disk, never before; one that must wait its turn again
        # is told by its place in the queue alone.
        announce = Announce(starting=starting)
        return await self.supervisor.execute(job, request, send, announce=announce)

    def _builtin_ctx(
        self, inbound: Inbound, groups: frozenset[str], dep: Deployment
    ) -> BuiltinContext:
        reload = self.ctx.reload
        return BuiltinContext(
            principal=inbound.principal,
            room=inbound.room,
            prefix=self._prefix,
            registry=dep.registry,
            jobs=BuiltinJobs(self.ctx.store, self.supervisor),
            catalog_root=dep.label or str(dep.root),
            catalog_commit=dep.commit,
            reload=(lambda: reload(inbound.principal, inbound.room)) if reload else None,
            can_run=lambda s: (
                decide(inbound.principal, inbound.room, s, self.ctx.settings, groups=groups).allowed
            ),
            spec_notes=self.spec_notes,
            is_admin=is_admin(inbound.principal, self.ctx.settings, groups=groups),
            roles=roles_of(inbound.principal, self.ctx.settings, groups=groups),
            groups=tuple(sorted(groups)),
            roles_configured=bool(self.ctx.settings.roles),
            cancel_wait=self.ctx.settings.runner.kill_grace + 3.0,
        )

    def spec_notes(self, spec: CommandSpec) -> tuple[str, ...]:
        """Notes shown with a command's help (and on its web page): the queue whose workers
        run it, or a runtime missing on this host that its language's record needs."""
        queue = self.supervisor.queue_of(spec)
        if queue is not None:
            # Its interpreter is the worker's business, not this host's.
            return (f"Runs on the workers of queue {queue}, not on this host.",)
        missing = missing_runtime(spec.language, self.ctx.settings.runner)
        if missing is not None:
            return (f"No {missing} on this host: this command cannot run here.",)
        return ()

    # -- running a catalog command ---------------------------------------------------------

    def _preflight(
        self, spec: CommandSpec, invocation: Invocation, inbound: Inbound, dep: Deployment
    ) -> None:
        """Raise RefusedError before a job exists when the runner could never start it."""
        queue = self.supervisor.queue_of(spec)
        if queue is not None:
            # Its worker resolves the secrets and builds the launch, on the host it needs.
            check_remote(spec, invocation, self.ctx.store, queue)
            return
        missing = [n for n in spec.secrets if n not in self.ctx.settings.secrets]
        if missing:
            raise RefusedError(
                f"{spec.name} needs the secret {', '.join(missing)}, which is not configured "
                "in [secrets]; nothing was run"
            )
        launch = build_launch(  # pure: checks dry-run support, the runtime, the script path
            spec,
            invocation,
            catalog_root=dep.root,
            job_id=0,
            requester=inbound.principal,
            room=inbound.room,
            settings=self.ctx.settings.runner,
            workdir=Path(tempfile.gettempdir()),
        )
        # A value the OS would refuse at exec ("Argument list too long") is refused now,
        # before a job exists, naming the value and the limit.
        string_max, total_max = exec_limits()
        problem = exec_limit_problem(
            spec,
            _jsonable(invocation.params),
            launch.argv,
            launch.env,
            env_param={arg_env_name(p.name): p for p in spec.params},
            string_max=string_max,
            total_max=total_max,
        )
        if problem is not None:
            raise RefusedError(problem)

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
        dep: Deployment | None = None,
    ) -> None:
        await self.ctx.store.append_audit(
            self._event(
                action, inbound, spec, job, params=params, outcome=outcome, reason=reason, dep=dep
            )
        )

    def _event(
        self,
        action: str,
        inbound: Inbound,
        spec: CommandSpec,
        job: Job | None,
        *,
        params: Mapping[str, Any] | None = None,
        outcome: str = "",
        reason: str = "",
        dep: Deployment | None = None,
    ) -> AuditEvent:
        """The audit entry of a request about `spec` (and `job`), its parameters bounded."""
        return AuditEvent(
            action=action,
            principal=inbound.principal,
            room=inbound.room,
            command=spec.name,
            params=bounded_params(params) if params is not None else None,
            job_id=job.id if job else None,
            outcome=outcome,
            reason=reason,
            catalog_commit=(dep or self.ctx.live.current).commit,
            script_hash=spec.script_hash or None,
        )

    async def _run(
        self,
        inbound: Inbound,
        spec: CommandSpec,
        invocation: Invocation,
        decision: Decision,
        send: Send,
        dep: Deployment,
    ) -> Outcome:
        self._preflight(spec, invocation, inbound, dep)
        params = _jsonable(invocation.params)
        masker = await self._masker()
        entry = self._event(
            "request",
            inbound,
            spec,
            None,
            params=masker.mask_obj(params),
            outcome="allowed",
            reason=decision.reason,
            dep=dep,
        )
        request = JobRequest(spec, invocation, inbound.principal, inbound.room, deployment=dep)
        if spec.approval or not inbound.wait:
            await append_request(self.ctx.store, entry)
        if spec.approval:
            job = await self.supervisor.submit(request, params, state=JobState.AWAITING_APPROVAL)
            return await self.approvals.request(job, request, send)
        if not inbound.wait:
            job = await self.supervisor.submit(request, params, detached=True)
            await send(
                Reply(
                    (
                        Status(
                            f"job {job.id} {job.command} is queued; a running `opsroom serve` "
                            f"starts it — `{self._prefix}job {job.id}` to look",
                            "info",
                        ),
                    ),
                    job_id=job.id,
                    kind="job",
                )
            )
            return Outcome("queued", job_id=job.id, state=job.state)
        # Its request's entry, the job, its start and the start's entry: one transaction.
        return await self.supervisor.run(request, params, send, entry=entry)


def _dep(dispatcher: Dispatcher, trail: _Trail) -> Deployment:
    """The catalog version of a request (taken when it arrived), else the current one."""
    return trail.dep or dispatcher.ctx.live.current


def _options_from(output: str, replies: Sequence[Reply]) -> tuple[str, ...]:
    """Choices from a command's result: its table's first column, else its output lines."""
    for reply in replies:
        for block in reply.blocks:
            if isinstance(block, Table) and block.rows:
                return tuple(dict.fromkeys(row[0] for row in block.rows if row and row[0]))
    lines = (line.strip() for line in output.splitlines())
    return tuple(dict.fromkeys(line for line in lines if line))[:MAX_MENU_OPTIONS]


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
