"""Who may run what: a pure decision function returning an explained decision (SPEC §6).

Rules, in order:

0. Someone the chat platform cannot vouch for — a principal whose id begins with `~`, like
   `irc:~guest`, an IRC nick with no services account (`~` begins no account name) — may
   ask for `help` and nothing else: anyone could be typing under that name.
1. A command with a `rooms` directive (SPEC §3.5) runs only in a room matching one of its
   globs, whoever asks and whatever the roles say: `help` in another room does not list it.
2. No `[[roles]]` at all (SPEC §6.2): only `local:` and `web:` principals may run anything.
3. The requester's roles are those whose `members` match the principal (a glob) or name a
   group the principal is in (`group:<name>`; static `[groups]` are resolved here, directory
   groups are resolved beforehand and passed in). Holding none → denied.
4. Deny wins: any held role whose `deny` matches the command refuses it, whatever the room.
5. The open built-ins are allowed to every role holder.
6. Otherwise one held role must allow the command (`allow`), in this room (`rooms`, when the
   role has them) and with these values (`where`). Every denial names the rule that applied.

`where` limits: each listed parameter's value must match one of the allowed values (globs
allowed, case-sensitive). Array values must match element by element. A parameter that was
not given takes the script's default, which must itself be allowed; a parameter with no
declared default (or one the script computes, e.g. `(Get-Date)`) must then be given
explicitly — we cannot know what the script will pick. A `where` on a parameter the command
does not have does not restrict it. Without `params` (listing what someone may run, or the
check before the arguments are bound) `where` is not evaluated; the decision is marked
`provisional` and must be re-checked with the bound parameters before anything runs.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from opsroom.config import RoleSettings, Settings, scalar_text
from opsroom.model.commands import Builtin, CommandSpec, Language
from opsroom.policy.groups import static_groups_of

# Principals that sit at the machine itself; with no roles configured only they may run
# anything (SPEC §6.2).
_TRUSTED_WITHOUT_ROLES = ("local", "web")
# Built-ins open to every role holder (SPEC §6.1); `schedule` and `reload` follow `allow`.
OPEN_BUILTINS = frozenset(
    {
        Builtin.HELP,
        Builtin.WHOAMI,
        Builtin.VERSION,
        Builtin.JOBS,
        Builtin.JOB,
        Builtin.PENDING,
        Builtin.APPROVE,
        Builtin.DENY,
        Builtin.CANCEL,
    }
)
UNVERIFIED_DENIAL = (
    "denied: only `help` works without an account — log in to the network's services "
    "(NickServ) and ask again"
)
NO_ROLES_DENIAL = (
    "denied: no roles are configured, so only local and web users may run commands — "
    "an administrator must add [[roles]] to opsroom.toml"
)


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed or not, and why, in words a person understands."""

    allowed: bool
    reason: str
    role: str | None = None  # the role that allowed it
    # Allowed by a role with `where` limits that could not be checked (no params given).
    provisional: bool = False


def _adapter(principal: str) -> str:
    return principal.partition(":")[0]


def is_unverified(principal: str) -> bool:
    """Is this someone the platform could not vouch for (no account behind the name)?"""
    return principal.partition(":")[2].startswith("~")


def _held_groups(principal: str, settings: Settings, groups: Collection[str]) -> frozenset[str]:
    return frozenset(g.casefold() for g in groups) | static_groups_of(principal, settings.groups)


def _holds(principal: str, role: RoleSettings, held: frozenset[str]) -> bool:
    for member in role.members:
        if member.startswith("group:"):
            if member[len("group:") :].casefold() in held:
                return True
        elif fnmatchcase(principal, member):
            return True
    return False


def _my_roles(principal: str, settings: Settings, groups: Collection[str]) -> list[RoleSettings]:
    held = _held_groups(principal, settings, groups)
    return [r for r in settings.roles if _holds(principal, r, held)]


def roles_of(
    principal: str, settings: Settings, *, groups: Collection[str] = ()
) -> tuple[str, ...]:
    """Names of the roles `principal` holds, in configuration order (for `whoami`)."""
    return tuple(r.name for r in _my_roles(principal, settings, groups))


def may_invite(principal: str, settings: Settings, *, groups: Collection[str] = ()) -> bool:
    """May `principal` bring the bot into a room (accept their invitation)?

    Only someone holding a role (directly or through a group): an invitation from anyone
    else would seat the bot where nobody may ask it for anything. A principal the platform
    cannot vouch for never may.
    """
    if is_unverified(principal):
        return False
    return bool(_my_roles(principal, settings, groups))


def decide(
    principal: str,
    room: str,
    spec: CommandSpec,
    settings: Settings,
    *,
    groups: Collection[str] = (),
    params: Mapping[str, Any] | None = None,
) -> Decision:
    """May `principal` run `spec` in `room` (with `params`, when known)?"""
    mine = _my_roles(principal, settings, groups) if settings.roles else []
    return _decide(principal, room, spec, settings, mine, params)


def decide_each(
    principal: str,
    room: str,
    specs: Iterable[CommandSpec],
    settings: Settings,
    *,
    groups: Collection[str] = (),
) -> list[Decision]:
    """`decide` for many commands (a catalog listing), the asker's roles looked up once."""
    mine = _my_roles(principal, settings, groups) if settings.roles else []
    return [_decide(principal, room, spec, settings, mine, None) for spec in specs]


def _decide(
    principal: str,
    room: str,
    spec: CommandSpec,
    settings: Settings,
    mine: list[RoleSettings],
    params: Mapping[str, Any] | None,
) -> Decision:
    if is_unverified(principal) and not (
        spec.language is Language.BUILTIN and spec.name == Builtin.HELP
    ):
        return Decision(False, UNVERIFIED_DENIAL)
    if spec.rooms and not _in_rooms(room, spec.rooms):
        return Decision(False, f"denied: {spec.name} may run only in {', '.join(spec.rooms)}")
    if not settings.roles:
        if _adapter(principal) in _TRUSTED_WITHOUT_ROLES:
            return Decision(True, "no roles configured: local and web users may run everything")
        return Decision(False, NO_ROLES_DENIAL)
    if not mine:
        return Decision(False, f"denied: {principal} holds no role")
    for role in mine:
        if (pattern := _denying(role, spec)) is not None:
            return Decision(False, f"denied: role {role.name} denies {pattern}")
    if _open_builtin(spec):
        return Decision(True, "built-in open to every role holder", role=mine[0].name)
    first_miss: str | None = None
    for role in mine:
        granted = _allowing(role, spec)
        if granted is None:
            continue
        if role.rooms is not None and not _in_rooms(room, role.rooms):
            first_miss = first_miss or (
                f"denied: role {role.name} may run {granted} only in {', '.join(role.rooms)}"
            )
            continue
        limits = _where_limits(role, spec)
        if limits and params is None:
            return Decision(True, f"allowed by role {role.name}", role.name, provisional=True)
        miss = _where_miss(role, spec, limits, params or {})
        if miss is not None:
            first_miss = first_miss or miss
            continue
        return Decision(True, f"allowed by role {role.name}", role.name)
    if first_miss is not None:
        return Decision(False, first_miss)
    names = ", ".join(r.name for r in mine)
    plural = "role" if len(mine) == 1 else "roles"
    return Decision(False, f"denied: no rule allows {spec.name} (your {plural}: {names})")


@dataclass(frozen=True, slots=True)
class Grant:
    """A role whose members may run a command: in which rooms, with which values only."""

    role: str
    members: tuple[str, ...]
    rooms: tuple[str, ...] | None  # the role's own `rooms`; None: wherever the command runs
    where: tuple[tuple[str, tuple[str, ...]], ...]  # a parameter, and the values allowed


@dataclass(frozen=True, slots=True)
class WhoMayRun:
    """Everyone's answer for one command, by the rules `decide` applies to each person.

    A person may run it in a room when they hold a `grants` role whose rooms match, hold
    none of the `denials` roles, and the room matches the command's own `rooms`.
    """

    roles_configured: bool  # False: local and web users may run it, nobody else (SPEC §6.2)
    rooms: tuple[str, ...]  # the command's own `rooms` directive: nowhere else, whoever asks
    grants: tuple[Grant, ...]
    denials: tuple[tuple[str, str], ...]  # (role, pattern): holding it refuses the command


def who_may_run(spec: CommandSpec, settings: Settings) -> WhoMayRun:
    """Which roles let their members run `spec` and which refuse it (the catalog page)."""
    denials = tuple(
        (role.name, pattern)
        for role in settings.roles
        if (pattern := _denying(role, spec)) is not None
    )
    grants = tuple(
        Grant(
            role.name,
            tuple(role.members),
            None if _open_builtin(spec) or role.rooms is None else tuple(role.rooms),
            () if _open_builtin(spec) else tuple(_where_limits(role, spec)),
        )
        for role in settings.roles
        if _denying(role, spec) is None and (_open_builtin(spec) or _allowing(role, spec))
    )
    return WhoMayRun(bool(settings.roles), tuple(spec.rooms), grants, denials)


def _allowing(role: RoleSettings, spec: CommandSpec) -> str | None:
    """The first of the role's `allow` patterns naming the command, if any."""
    return next((p for p in role.allow if fnmatchcase(spec.name, p)), None)


def _denying(role: RoleSettings, spec: CommandSpec) -> str | None:
    """The first of the role's `deny` patterns naming the command, if any."""
    return next((p for p in role.deny if fnmatchcase(spec.name, p)), None)


def _open_builtin(spec: CommandSpec) -> bool:
    return spec.language is Language.BUILTIN and spec.name in OPEN_BUILTINS


def _in_rooms(room: str, rooms: Collection[str]) -> bool:
    return any(fnmatchcase(room, r) for r in rooms)


def _where_limits(role: RoleSettings, spec: CommandSpec) -> list[tuple[str, tuple[str, ...]]]:
    """The role's `where` limits on parameters this command has, by the spec's own name."""
    by_name = {p.name.casefold(): p.name for p in spec.params}
    return [
        (by_name[name.casefold()], allowed)
        for name, allowed in role.where.items()
        if name.casefold() in by_name
    ]


def _where_miss(
    role: RoleSettings,
    spec: CommandSpec,
    limits: list[tuple[str, tuple[str, ...]]],
    params: Mapping[str, Any],
) -> str | None:
    given = {k.casefold(): v for k, v in params.items()}
    for name, allowed in limits:
        head = f"denied: role {role.name} allows {name} {', '.join(allowed)}"
        value = given.get(name.casefold())
        if value is None or value == () or value == []:
            param = spec.param(name)
            default = param.default if param is not None else None
            if default is None:
                return f"{head} — {name} must be given explicitly"
            if _bad_values(default, allowed):
                return f"{head} — not the default {_show(default)}"
            continue
        bad = _bad_values(value, allowed)
        if bad:
            return f"{head} — not {', '.join(bad)}"
    return None


def _bad_values(value: object, allowed: tuple[str, ...]) -> list[str]:
    values = value if isinstance(value, list | tuple) else (value,)
    texts = [scalar_text(v) for v in values]
    return [t for t in texts if not any(fnmatchcase(t, a) for a in allowed)]


def _show(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(scalar_text(v) for v in value)
    return scalar_text(value)


def is_admin(principal: str, settings: Settings, *, groups: Collection[str] = ()) -> bool:
    """An operator of opsroom itself: a member of an `admin = true` role.

    With no roles configured, the local and web users are the operators.
    """
    if not settings.roles:
        return _adapter(principal) in _TRUSTED_WITHOUT_ROLES
    return any(r.admin for r in _my_roles(principal, settings, groups))
