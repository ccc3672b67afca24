"""Built-in commands (`help`, `whoami`, `version`, `jobs`, `job`): ordinary specs with handlers.

Handlers read the store through the small `JobReader` protocol, so this module does not
import the store room.
"""

from __future__ import annotations

import platform
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from opsroom import __version__
from opsroom.errors import ParseError, RefusedError, UnknownCommand
from opsroom.model.blocks import Code, File, Reply, Status, Table, Text
from opsroom.model.commands import Builtin, CommandSpec, Language, ParamSpec, ParamType
from opsroom.model.jobs import Job, JobState
from opsroom.router.bounded import shorten
from opsroom.router.parser import option_name, usage_line
from opsroom.router.registry import Registry

_HELP_LIST_LIMIT = 60
_JOB_TAIL = 15
_QUOTED = 80  # characters of the asker's words quoted back in an answer
_MAX_ID_DIGITS = 18  # job ids fit in 64 bits; longer numbers name no job


class JobReader(Protocol):
    """What the built-ins need from the store (and the engine, which waits for a job's end)."""

    async def list_jobs(
        self,
        *,
        limit: int = 50,
        states: Sequence[JobState] | None = None,
        requester: str | None = None,
    ) -> list[Job]:
        """Jobs, newest first."""
        ...

    async def get_job(self, job_id: int) -> Job | None:
        """One job or None."""
        ...

    async def output(self, job_id: int, *, tail: int | None = None) -> list[tuple[str, str]]:
        """(stream, text) lines of a job."""
        ...

    async def request_cancel(self, job_id: int, *, by: str) -> Job:
        """Ask the owning process to cancel a job (queued jobs end at once)."""
        ...

    async def wait_for_end(self, job_id: int, timeout: float) -> Job | None:
        """The job once it has ended, or None when it has not within `timeout` seconds."""
        ...

    async def attachments(self, job_id: int) -> list[tuple[int, str, str, int]]:
        """(id, name, content type, size) of a job's files."""
        ...


@dataclass(frozen=True, slots=True)
class BuiltinContext:
    """Everything a built-in handler may look at."""

    principal: str
    room: str
    prefix: str
    registry: Registry
    jobs: JobReader
    catalog_root: str
    catalog_commit: str | None
    can_run: Callable[[CommandSpec], bool]
    spec_notes: Callable[[CommandSpec], tuple[str, ...]]
    is_admin: bool = False
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    roles_configured: bool = False
    cancel_wait: float = 8.0  # how long `cancel` waits to see the job end
    reload: Callable[[], Awaitable[Reply]] | None = None  # `reload`; None: not here


Handler = Callable[[BuiltinContext, list[str]], Awaitable[Reply]]


def _spec(name: Builtin, summary: str, *params: ParamSpec, description: str = "") -> CommandSpec:
    return CommandSpec(
        name=name.value,
        path="",
        language=Language.BUILTIN,
        summary=summary,
        description=description,
        params=params,
    )


_ID = ParamSpec("id", ParamType.INT, required=True, position=0, help="the job number")

BUILTIN_SPECS: tuple[CommandSpec, ...] = (
    _spec(
        Builtin.HELP,
        "List the commands you may run here, or show one command's help.",
        ParamSpec("topic", multiple=True, position=0, help="a command name or search words"),
    ),
    _spec(Builtin.WHOAMI, "Show who opsroom thinks you are, and your roles."),
    _spec(Builtin.VERSION, "Show the opsroom version and the catalog it serves."),
    _spec(
        Builtin.JOBS,
        "List recent jobs.",
        ParamSpec(
            "scope", choices=("all", "mine", "running"), position=0, help="which jobs to list"
        ),
    ),
    _spec(Builtin.JOB, "Show one job: state, duration and its last lines.", _ID),
    _spec(Builtin.CANCEL, "Cancel a job you asked for (admins: any job).", _ID),
    _spec(Builtin.APPROVE, "Approve a job that waits for your role's approval.", _ID),
    _spec(
        Builtin.DENY,
        "Deny a job that waits for your role's approval.",
        _ID,
        ParamSpec("reason", multiple=True, position=1, help="why, for the requester"),
    ),
    _spec(Builtin.PENDING, "List the jobs waiting for approval."),
    _spec(
        Builtin.RELOAD,
        "Re-read the catalog now (a git catalog is fetched first); admins only.",
        description="Replies with what changed: commands added, changed and removed, "
        "or the errors that kept the new version out.",
    ),
    _spec(
        Builtin.SCHEDULE,
        "Run a command on a cron schedule, posting in this room (SPEC §5.7).",
        ParamSpec(
            "action",
            choices=("add", "list", "rm", "pause", "resume"),
            required=True,
            position=0,
            help="what to do",
        ),
        ParamSpec("args", multiple=True, position=1, help="cron, command, id or `all`"),
        description=(
            'schedule add "0 7 * * 1-5" store status --region emea [--tz Europe/Berlin] — '
            "five-field cron, time zone default [bot] timezone; schedule list [all]; "
            "schedule rm|pause|resume <id> (its creator or an admin). It runs as you, "
            "checked against your roles at every run."
        ),
    ),
)


def _age(when: datetime, now: datetime) -> str:
    seconds = int((now - when).total_seconds())
    if seconds < 60:
        return f"{seconds}s ago"
    if seconds < 3600:
        return f"{seconds // 60}m ago"
    if seconds < 86400:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


def format_duration(seconds: float | None) -> str:
    """`4.2s`, `3m 05s`, `1h 02m`."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def describe_param(p: ParamSpec) -> str:
    """One line about a parameter for `help <command>`."""
    bits = [p.type_label]
    if p.required:
        bits.append("required")
    if p.choices:
        bits.append("one of " + ", ".join(p.choices))
    if p.default is not None:
        shown = ",".join(map(str, p.default)) if isinstance(p.default, tuple) else str(p.default)
        bits.append(f"default {shown}")
    elif p.default_text:
        bits.append(f"default {p.default_text}")
    if p.range:
        lo, hi = p.range
        bits.append(f"range {'' if lo is None else f'{lo:g}'}..{'' if hi is None else f'{hi:g}'}")
    if p.pattern:
        bits.append(f"matching {p.pattern}")
    if p.aliases:
        bits.append("alias " + ", ".join(f"--{a}" for a in p.aliases))
    line = f"{option_name(p)} ({'; '.join(bits)})"
    return f"{line} — {p.help}" if p.help else line


def command_help(spec: CommandSpec, prefix: str, notes: Sequence[str] = ()) -> Reply:
    """The full help of one command."""
    blocks: list[Text | Code | Status] = [Text(f"*{spec.name}* — {spec.summary or '(no summary)'}")]
    blocks.append(Code((usage_line(spec, prefix),)))
    if spec.description:
        blocks.append(Text(spec.description))
    if spec.params:
        blocks.append(
            Text("Parameters:\n" + "\n".join("  " + describe_param(p) for p in spec.params))
        )
    if spec.examples:
        blocks.append(Text("Examples:\n" + "\n".join("  " + e for e in spec.examples)))
    facts = []
    if spec.aliases:
        facts.append("aliases: " + ", ".join(spec.aliases))
    if spec.timeout:
        facts.append(f"timeout: {format_duration(spec.timeout)}")
    if spec.approval:
        facts.append(f"needs approval by: {spec.approval}")
    if spec.dry_run or spec.should_process:
        facts.append("supports --dry-run")
    if spec.owner:
        facts.append(f"owner: {spec.owner}")
    if spec.ps_requires is not None and spec.ps_requires.label:
        facts.append(f"requires: {spec.ps_requires.label}")
    if spec.credentials:
        mapped = ", ".join(f"-{c.name} from secret {c.secret}" for c in spec.credentials)
        facts.append(f"credentials: {mapped}")
    if spec.path:
        facts.append(f"script: {spec.path} ({spec.language.value})")
    if facts:
        blocks.append(Text(" · ".join(facts)))
    blocks.extend(Status(n, "warning") for n in notes)
    return Reply(tuple(blocks))


def _list_lines(specs: Sequence[CommandSpec]) -> list[str]:
    width = max((len(s.name) for s in specs), default=0)
    return [f"{s.name.ljust(width)}  {s.summary}".rstrip() for s in specs]


async def _help(ctx: BuiltinContext, args: list[str]) -> Reply:
    visible = [s for s in ctx.registry if not s.hidden and ctx.can_run(s)]
    if not args:
        catalog = [s for s in visible if s.language is not Language.BUILTIN]
        builtin = [s for s in visible if s.language is Language.BUILTIN]
        blocks: list[Text | Code] = []
        if len(catalog) <= _HELP_LIST_LIMIT:
            blocks.append(Text(f"Commands you can run here ({len(catalog)}):"))
            blocks.append(Code(tuple(_list_lines(catalog))))
        else:
            groups: dict[str, int] = {}
            for s in catalog:
                groups[s.name.split(" ")[0]] = groups.get(s.name.split(" ")[0], 0) + 1
            blocks.append(
                Text(
                    f"{_count(len(catalog), 'command')} in {_count(len(groups), 'group')} — "
                    f"`{ctx.prefix}help <group>` lists one:"
                )
            )
            blocks.append(Code(tuple(f"{g} ({n})" for g, n in sorted(groups.items()))))
        blocks.append(Text("Built-in: " + ", ".join(s.name for s in builtin)))
        blocks.append(
            Text(f"`{ctx.prefix}help <command>` for details, `{ctx.prefix}help <words>` to search.")
        )
        return Reply(tuple(blocks))
    try:
        spec, rest = ctx.registry.lookup(args)
    except UnknownCommand:
        spec, rest = None, args
    if spec is not None and not rest and ctx.can_run(spec):
        return command_help(spec, ctx.prefix, ctx.spec_notes(spec))
    found = [s for s in ctx.registry.search(args) if ctx.can_run(s)]
    words = shorten(" ".join(args), _QUOTED)
    if not found:
        return Reply(
            (Text(f"No command matches “{words}”. Try `{ctx.prefix}help` for the full list."),),
            kind="error",
        )
    return Reply((Text(f"Commands matching “{words}”:"), Code(tuple(_list_lines(found)))))


async def _whoami(ctx: BuiltinContext, args: list[str]) -> Reply:
    lines = [f"You are {ctx.principal} in {ctx.room}."]
    if ctx.roles_configured:
        lines.append("Roles: " + (", ".join(ctx.roles) if ctx.roles else "none"))
    else:
        lines.append("Roles: none are configured — local and web users may run everything.")
    if ctx.groups:
        lines.append("Groups: " + ", ".join(ctx.groups))
    if ctx.is_admin:
        lines.append("You are an opsroom admin.")
    return Reply((Text("\n".join(lines)),))


async def _version(ctx: BuiltinContext, args: list[str]) -> Reply:
    count = ctx.registry.scripts
    commit = f" at {ctx.catalog_commit[:12]}" if ctx.catalog_commit else ""
    return Reply(
        (
            Text(
                f"opsroom {__version__} (Python {platform.python_version()}) — "
                f"{_count(count, 'command')} from {ctx.catalog_root}{commit}"
            ),
        )
    )


async def _jobs(ctx: BuiltinContext, args: list[str]) -> Reply:
    scope = args[0].lower() if args else "all"
    if scope not in ("all", "mine", "running") or len(args) > 1:
        raise ParseError(
            f"scope: {shorten(' '.join(args), _QUOTED)!r} is not one of all, mine, running",
            usage=f"{ctx.prefix}jobs [all|mine|running]",
        )
    jobs = await ctx.jobs.list_jobs(
        limit=20,
        states=[JobState.RUNNING, JobState.QUEUED] if scope == "running" else None,
        requester=ctx.principal if scope == "mine" else None,
    )
    if not jobs:
        return Reply((Text("No jobs yet." if scope == "all" else f"No {scope} jobs."),))
    now = datetime.now(UTC)
    rows = tuple(
        (
            str(j.id),
            j.command,
            j.state.value,
            j.requester,
            _age(j.created_at, now),
            format_duration(j.duration),
        )
        for j in jobs
    )
    return Reply((Table(("job", "command", "state", "requester", "created", "took"), rows),))


async def _find_job(ctx: BuiltinContext, args: list[str], command: str) -> Job:
    usage = f"{ctx.prefix}{command} <id>"
    digits = args[0].lstrip("#") if len(args) == 1 else ""
    if not digits.isdecimal():
        raise ParseError("id: give one job number", usage=usage)
    # A thousand digits name no job (and are more than int() converts).
    job = await ctx.jobs.get_job(int(digits)) if len(digits) <= _MAX_ID_DIGITS else None
    if job is None:
        raise ParseError(f"id: there is no job {shorten(args[0], 20)}", usage=usage)
    return job


async def _job(ctx: BuiltinContext, args: list[str]) -> Reply:
    job = await _find_job(ctx, args, "job")
    lines = await ctx.jobs.output(job.id, tail=_JOB_TAIL)
    params = " ".join(f"--{k} {v}" for k, v in job.params.items())
    head = f"job {job.id}: {job.command} {params}".rstrip()
    facts = [f"state {job.state.value}", f"requested by {job.requester} in {job.room}"]
    if job.exit_code is not None:
        facts.append(f"exit code {job.exit_code}")
    if job.started_at is not None:
        end = job.finished_at or datetime.now(UTC)
        facts.append(f"ran {format_duration((end - job.started_at).total_seconds())}")
    blocks: list[Text | Code | File] = [Text(head), Text(" · ".join(facts))]
    if job.error:
        blocks.append(Text(job.error))
    if lines:
        more = max(0, job.output_lines - len(lines))
        blocks.append(Code(tuple(t for _, t in lines), more=more))
    if job.output_truncated:
        blocks.append(Text("The stored log stopped at the output cap."))
    files = await ctx.jobs.attachments(job.id)
    blocks.extend(File(name, size, job.id, ctype) for _, name, ctype, size in files)
    return Reply(tuple(blocks), job_id=job.id)


async def cancel_target(ctx: BuiltinContext, args: list[str]) -> Job:
    """The job `cancel <id>` names, if the asker may cancel it; UserError else.

    Checked before anything is recorded, so the audit log says refused, with the reason,
    or requested — never requested for a cancel that was not allowed.
    """
    job = await _find_job(ctx, args, "cancel")
    if job.requester != ctx.principal and not ctx.is_admin:
        raise RefusedError(
            f"denied: only {job.requester}, who asked for job {job.id}, or an admin may cancel it"
        )
    return job


def _count(n: int, word: str) -> str:
    """`1 command`, `2 commands`."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _level(job: Job) -> str:
    """How a job's end reads after a cancel: only a real success gets the success mark."""
    return "success" if job.state is JobState.SUCCEEDED else "warning"


async def cancel_job(ctx: BuiltinContext, job: Job) -> Reply:
    """Cancel a job `cancel_target` allowed, and wait briefly to see it end."""
    if job.state.finished:
        return Reply(
            (Text(f"job {job.id} {job.command} already ended: {job.state.value}."),), job_id=job.id
        )
    job = await ctx.jobs.request_cancel(job.id, by=ctx.principal)
    if job.state.finished:
        return Reply(
            # Stopped is not succeeded: never a success mark for a cancelled job.
            (Status(f"job {job.id} {job.command}: cancelled before it started", "warning"),),
            job_id=job.id,
        )
    # Answered the moment its end is recorded (the engine is woken by it, not polling).
    ended = await ctx.jobs.wait_for_end(job.id, ctx.cancel_wait)
    if ended is not None:
        return Reply(
            (Status(f"job {job.id} {job.command}: {ended.state.value}", _level(ended)),),
            job_id=job.id,
        )
    return Reply(
        (
            Status(
                f"cancel of job {job.id} requested; it is still stopping — "
                f"`{ctx.prefix}job {job.id}` to check",
                "warning",
            ),
        ),
        job_id=job.id,
    )


async def _cancel(ctx: BuiltinContext, args: list[str]) -> Reply:
    return await cancel_job(ctx, await cancel_target(ctx, args))


async def _reload(ctx: BuiltinContext, args: list[str]) -> Reply:
    if args:
        raise ParseError("reload takes no arguments", usage=f"{ctx.prefix}reload")
    if ctx.reload is None:
        return Reply((Text("This opsroom cannot reload its catalog (it runs one command)."),))
    return await ctx.reload()


HANDLERS: dict[str, Handler] = {
    Builtin.HELP: _help,
    Builtin.WHOAMI: _whoami,
    Builtin.VERSION: _version,
    Builtin.JOBS: _jobs,
    Builtin.JOB: _job,
    Builtin.CANCEL: _cancel,
    Builtin.RELOAD: _reload,
}
