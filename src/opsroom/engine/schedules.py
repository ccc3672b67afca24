"""The `schedule` built-in (SPEC §5.7): add, list, rm, pause and resume, checked and audited.

A schedule keeps its command line as typed. It is checked when it is made — the command
exists, the values are valid, and the creator may run it in that room — and again at
every firing (`check`, called by `scheduler.py`), as its creator, so a role taken away
since stops it. Every change is stored together with its audit entry. Like `dispatch.py`,
this module wires rooms together.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opsroom.config import Settings
from opsroom.engine.supervisor import local_secrets
from opsroom.errors import ParseError, RefusedError, StoreError, UnknownCommand, UserError
from opsroom.model.audit import AuditEvent
from opsroom.model.blocks import Reply, Status, Table, Text
from opsroom.model.commands import CommandSpec, Language
from opsroom.model.messages import Inbound
from opsroom.model.schedules import Schedule
from opsroom.policy.groups import GroupResolver
from opsroom.policy.masking import Masker
from opsroom.policy.rbac import decide, is_admin
from opsroom.router.bounded import bounded_params, shorten
from opsroom.router.parser import bind_arguments, normalize, tokenize
from opsroom.router.registry import Registry

if TYPE_CHECKING:
    from opsroom.router.cron import Cron
    from opsroom.store import Store

log = logging.getLogger("opsroom.schedules")

Send = Callable[[Reply], Awaitable[None]]
MAX_PER_CREATOR = 100  # schedules one principal may have; each one costs every process a look
_MAX_ID_DIGITS = 9
_SHOWN = 60  # characters of a command line in a list
_CHANGES = {
    "rm": "remove",
    "remove": "remove",
    "delete": "remove",
    "pause": "pause",
    "resume": "resume",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class ScheduleDesk:
    """Everything schedule-related the dispatcher delegates, and the check at each firing."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        registry: Callable[[], Registry],
        groups: GroupResolver,
        catalog_commit: Callable[[], str | None],
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.store = store
        self._registry = registry  # read at each use: a reload may swap the catalog
        self._commit = catalog_commit
        self.groups = groups
        self.now = now
        self.prefix = settings.bot.prefix
        # Set by a serving process: how to tell a schedule's room about a change made
        # elsewhere (the console, a direct message).
        self.tell: Callable[[str], Send] | None = None
        # Set when a schedule is added or resumed here: the firing loop looks again at once.
        self.changed = asyncio.Event()

    @property
    def usage(self) -> str:
        """The built-in's forms, one line."""
        p = self.prefix
        return (
            f'{p}schedule add "<cron>" <command...> [--tz ZONE] · {p}schedule list [all] · '
            f"{p}schedule rm|pause|resume <id>"
        )

    async def command(self, inbound: Inbound, rest: list[str], groups: frozenset[str]) -> Reply:
        """`schedule add|list|rm|pause|resume ...` said by `inbound.principal`."""
        verb = rest[0].lower() if rest else ""
        args = rest[1:]
        if verb == "add":
            return await self._add(inbound, args, groups)
        if verb in ("list", "ls"):
            return await self._list(inbound, args, groups)
        if verb in _CHANGES:
            return await self._change(inbound, _CHANGES[verb], args)
        shown = f" (not {shorten(rest[0], 40)!r})" if rest else ""
        raise ParseError(f"schedule: say add, list, rm, pause or resume{shown}", usage=self.usage)

    # -- the check, when made and at every firing ------------------------------------------

    async def check(
        self, principal: str, room: str, text: str, groups: frozenset[str] | None = None
    ) -> CommandSpec:
        """The command `text` names, if `principal` may run it in `room` now; UserError else."""
        tokens = tokenize(normalize(text))
        if not tokens:
            raise ParseError("give the command to run after the cron expression")
        spec, rest = self._registry().lookup(tokens)
        if spec.name == "schedule":
            raise RefusedError("a schedule cannot make or change schedules")
        if groups is None:
            groups = await self.groups.groups_of(principal)
        decision = decide(principal, room, spec, self.settings, groups=groups)
        if not decision.allowed:
            raise RefusedError(decision.reason)
        if spec.language is Language.BUILTIN:
            return spec
        invocation = bind_arguments(spec, rest, text=text, prefix=self.prefix, now=self.now())
        decision = decide(
            principal, room, spec, self.settings, groups=groups, params=invocation.params
        )
        if not decision.allowed:
            raise RefusedError(decision.reason)
        return spec

    def cron_of(self, schedule: Schedule) -> Cron:
        """A stored schedule's cron (ParseError if this opsroom can no longer read it)."""
        from opsroom.router.cron import parse_cron  # croniter: only once schedules are used

        return parse_cron(schedule.cron, schedule.tz)

    def command_name(self, text: str) -> str:
        """The catalog name of the command in `text`, or its first word."""
        tokens = tokenize(normalize(text))
        try:
            return self._registry().lookup(tokens)[0].name
        except UserError:
            return tokens[0] if tokens else ""

    async def masked(self, text: str) -> str:
        """`text` with the values of the secrets readable here masked."""
        return Masker(await local_secrets(self.settings)).mask(text)

    def event(
        self,
        action: str,
        schedule: Schedule,
        *,
        principal: str | None = None,
        room: str | None = None,
        text: str | None = None,
        outcome: str = "",
        reason: str = "",
        **extra: Any,
    ) -> AuditEvent:
        """An audit entry about `schedule` (by its creator in its room unless told otherwise)."""
        params: dict[str, Any] = {
            "schedule": schedule.id,
            "cron": schedule.cron,
            "tz": schedule.tz,
            "text": text if text is not None else schedule.command,
        }
        if room is not None and room != schedule.room:
            params["schedule_room"] = schedule.room
        params.update(extra)
        return AuditEvent(
            action=action,
            principal=principal or schedule.creator,
            room=room or schedule.room,
            command=self.command_name(schedule.command),
            params=bounded_params(params),
            outcome=outcome,
            reason=shorten(reason),
            catalog_commit=self._commit(),
        )

    # -- add ---------------------------------------------------------------------------------

    async def _add(self, inbound: Inbound, args: list[str], groups: frozenset[str]) -> Reply:
        tz, args = _leading_tz(args)
        if not args:
            raise ParseError(
                "give the cron expression in quotes, then the command", usage=self.usage
            )
        expr, words = args[0], args[1:]
        after_cron, words = _leading_tz(words)  # `add "<cron>" --tz ZONE <command>`
        if after_cron is not None:
            if tz is not None:
                raise ParseError("tz: give --tz once", usage=self.usage)
            tz = after_cron
        if not words:
            raise ParseError("give the command to run after the cron expression", usage=self.usage)
        words, tz = self._trailing_tz(words, tz)
        from opsroom.router.cron import parse_cron

        cron = parse_cron(expr, tz or self.settings.bot.timezone)
        text = shlex.join(words)
        await self.check(inbound.principal, inbound.room, text, groups)
        now = self.now()
        upcoming = cron.upcoming(now, 3)
        if not upcoming:
            raise ParseError(f"cron: {expr!r} never falls due (e.g. 30 February)")
        masked = await self.masked(text)
        if masked != text:
            raise RefusedError(
                "that command holds the value of a configured secret; schedules are stored, "
                "so they cannot hold one — nothing was scheduled"
            )
        if await self.store.count_schedules(creator=inbound.principal) >= MAX_PER_CREATOR:
            raise RefusedError(
                f"you have {MAX_PER_CREATOR} schedules, the most one person may have; "
                f"remove one first (`{self.prefix}schedule list`)"
            )
        try:
            schedule = await self.store.add_schedule(
                cron=cron.expr,
                tz=cron.tz,
                command=text,
                room=inbound.room,
                creator=inbound.principal,
                now=now,
                audit=lambda s: self.event("schedule.create", s, outcome="created"),
            )
        except StoreError as e:
            raise RefusedError(
                f"the audit log cannot be written ({e}); nothing was scheduled"
            ) from None
        self.changed.set()
        times = "\n".join(f"  {cron.show(at)}" for at in upcoming)
        return Reply(
            (
                Status(
                    f"schedule {schedule.id} added: `{self.prefix}{text}` at `{cron.expr}` "
                    f"({cron.tz}), posting in this room",
                    "success",
                ),
                Text(f"Next runs:\n{times}"),
            )
        )

    def _trailing_tz(self, words: list[str], tz: str | None) -> tuple[list[str], str | None]:
        """`... --tz ZONE` at the end is the schedule's, unless the command has a `tz…` option."""
        found, rest = _tz_at_end(words)
        if found is None:
            return words, tz
        try:
            spec, _ = self._registry().lookup(rest)
        except UnknownCommand:
            spec = None
        if spec is not None and any(_option_key(p.name).startswith("tz") for p in spec.params):
            return words, tz  # the command's own option (options match by prefix)
        if tz is not None:
            raise ParseError("tz: give --tz once", usage=self.usage)
        return rest, found

    # -- list --------------------------------------------------------------------------------

    async def _list(self, inbound: Inbound, args: list[str], groups: frozenset[str]) -> Reply:
        every = bool(args) and args[0].lower() == "all"
        if len(args) > 1 or (args and not every):
            raise ParseError("schedule list takes nothing, or `all`", usage=self.usage)
        if every and not is_admin(inbound.principal, self.settings, groups=groups):
            raise RefusedError("denied: only an admin may list the schedules of every room")
        found = await self.store.schedules(room=None if every else inbound.room)
        if not found:
            return Reply((Text("No schedules." if every else "No schedules in this room."),))
        now = self.now()
        columns: tuple[str, ...] = ("id", "cron", "tz", "command", "by", "next", "last")
        if every:
            columns = (*columns[:4], "room", *columns[4:])
        rows = []
        for s in found:
            row = [
                str(s.id),
                s.cron,
                s.tz,
                shorten(f"{self.prefix}{s.command}", _SHOWN),
                s.creator,
                self._next_text(s, now),
                s.last_result,
            ]
            if every:
                row.insert(4, s.room)
            rows.append(tuple(row))
        return Reply((Table(columns, tuple(rows)),))

    def _next_text(self, schedule: Schedule, now: datetime) -> str:
        if schedule.paused:
            return "paused"
        try:
            cron = self.cron_of(schedule)
        except ParseError:
            return "unreadable cron"
        upcoming = cron.upcoming(max(now, schedule.cursor), 1)
        return cron.show(upcoming[0]) if upcoming else "never"

    # -- rm, pause, resume -------------------------------------------------------------------

    async def _change(self, inbound: Inbound, verb: str, args: list[str]) -> Reply:
        schedule = await self._find(args, verb)
        groups = await self.groups.groups_of(inbound.principal)
        if schedule.creator != inbound.principal and not is_admin(
            inbound.principal, self.settings, groups=groups
        ):
            raise RefusedError(
                f"denied: only {schedule.creator}, who made schedule {schedule.id}, "
                f"or an admin may {verb} it"
            )
        event = self.event(
            f"schedule.{verb}",
            schedule,
            principal=inbound.principal,
            room=inbound.room,
            outcome=f"{verb}d",  # removed, paused, resumed
        )
        what = f"schedule {schedule.id} (`{self.prefix}{schedule.command}` at `{schedule.cron}`)"
        try:
            if verb == "remove":
                if not await self.store.remove_schedule(schedule.id, audit=event):
                    raise ParseError(f"there is no schedule {schedule.id}", usage=self.usage)
                text = f"{what} removed"
            else:
                changed = await self.store.pause_schedule(
                    schedule.id, paused=verb == "pause", now=self.now(), audit=event
                )
                if changed is None:
                    state = "paused" if verb == "pause" else "active"
                    return Reply((Text(f"schedule {schedule.id} is already {state}."),))
                text = f"{what} {verb}d"
                if verb == "resume":
                    self.changed.set()
                    text += self._resumed_next(changed)
        except StoreError as e:
            raise RefusedError(
                f"the audit log cannot be written ({e}); schedule {schedule.id} is unchanged"
            ) from None
        if inbound.room != schedule.room:
            await self._tell(schedule.room, f"{text} by {inbound.principal}")
        return Reply((Status(text, "success"),))

    def _resumed_next(self, schedule: Schedule) -> str:
        upcoming = self._next_text(schedule, self.now())
        return f"; next run {upcoming}" if upcoming not in ("never", "paused") else ""

    async def _find(self, args: list[str], verb: str) -> Schedule:
        usage = f"{self.prefix}schedule {'rm' if verb == 'remove' else verb} <id>"
        digits = args[0].lstrip("#") if len(args) == 1 else ""
        if not digits.isdecimal():
            raise ParseError("id: give one schedule number", usage=usage)
        found = await self.store.schedule(int(digits)) if len(digits) <= _MAX_ID_DIGITS else None
        if found is None:
            raise ParseError(f"id: there is no schedule {shorten(args[0], 20)}", usage=usage)
        return found

    async def _tell(self, room: str, text: str) -> None:
        """Say a change in the schedule's own room, when this process can reach it."""
        if self.tell is None:
            return
        try:
            await self.tell(room)(Reply((Status(text, "info"),), kind="notice"))
        except Exception:
            # The change is made and answered; a room that cannot be told is only logged.
            log.exception("could not tell a schedule's room", extra={"room": room})


def _leading_tz(args: list[str]) -> tuple[str | None, list[str]]:
    """`--tz ZONE` or `--tz=ZONE` right after `add`."""
    if not args or not args[0].startswith("--"):
        return None, args
    if _option_key(args[0]) == "tz" and len(args) > 1:
        return args[1], args[2:]
    if _option_key(args[0]).startswith("tz="):
        return args[0].partition("=")[2], args[1:]
    return None, args


def _tz_at_end(words: list[str]) -> tuple[str | None, list[str]]:
    if len(words) >= 3 and words[-2].startswith("--") and _option_key(words[-2]) == "tz":
        return words[-1], words[:-2]
    if len(words) >= 2 and words[-1].startswith("--") and _option_key(words[-1]).startswith("tz="):
        return words[-1].partition("=")[2], words[:-1]
    return None, words


def _option_key(word: str) -> str:
    """`--TZ` → `tz`, `--tz=x` → `tz=x`, `tz_name` → `tzname`: how options compare."""
    if word.startswith("--"):
        word = word[2:]
    return word.casefold().replace("-", "").replace("_", "")
