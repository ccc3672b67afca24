"""Who may run what: a pure decision function returning an explained decision (SPEC §6)."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from opsroom.config import Settings
from opsroom.model.commands import CommandSpec, Language

# Principals that sit at the machine itself; with no roles configured only they may run
# anything (SPEC §6.2).
_TRUSTED_WITHOUT_ROLES = ("local", "web")
_OPEN_BUILTINS = frozenset(
    {"help", "whoami", "version", "jobs", "job", "pending", "approve", "deny", "cancel"}
)


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed or not, and why, in words a person understands."""

    allowed: bool
    reason: str


def _adapter(principal: str) -> str:
    return principal.partition(":")[0]


def decide(principal: str, room: str, spec: CommandSpec, settings: Settings) -> Decision:
    """May `principal` run `spec` in `room`?"""
    if not settings.roles:
        if _adapter(principal) in _TRUSTED_WITHOUT_ROLES:
            return Decision(True, "no roles configured: local and web users may run everything")
        return Decision(
            False,
            "denied: no roles are configured, so only local and web users may run commands — "
            "an administrator must add [[roles]] to opsroom.toml",
        )
    mine = [r for r in settings.roles if _member(principal, r.get("members", []))]
    if not mine:
        return Decision(False, f"denied: {principal} holds no role")
    for role in mine:
        for pattern in role.get("deny", []):
            if fnmatchcase(spec.name, pattern):
                return Decision(False, f"denied: role {role.get('name')} denies {pattern}")
    if spec.language is Language.BUILTIN and spec.name in _OPEN_BUILTINS:
        return Decision(True, "built-in open to every role holder")
    for role in mine:
        if not any(fnmatchcase(spec.name, p) for p in role.get("allow", [])):
            continue
        rooms = role.get("rooms")
        if rooms and not any(fnmatchcase(room, r) for r in rooms):
            continue
        return Decision(True, f"allowed by role {role.get('name')}")
    return Decision(False, f"denied: none of your roles allows {spec.name} in {room}")


def _member(principal: str, members: list[str]) -> bool:
    return any(fnmatchcase(principal, m) for m in members if not m.startswith("group:"))


def is_admin(principal: str, settings: Settings) -> bool:
    """An operator of opsroom itself: a member of an `admin = true` role.

    With no roles configured, the local and web users are the operators.
    """
    if not settings.roles:
        return _adapter(principal) in _TRUSTED_WITHOUT_ROLES
    return any(
        r.get("admin") is True and _member(principal, r.get("members", [])) for r in settings.roles
    )
