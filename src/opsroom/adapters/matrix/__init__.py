"""The Matrix adapter: a matrix-nio client that syncs, joins rooms and answers in threads.

`plugin` is the entry point (`opsroom.adapters`); nothing here imports matrix-nio.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from opsroom.adapters.base import AdapterServices, ChatAdapter
from opsroom.adapters.matrix.settings import MatrixSettings, load_settings
from opsroom.adapters.plugin import AdapterPlugin
from opsroom.config import Settings, resolve_reference
from opsroom.errors import ConfigError

__all__ = ["MatrixSettings", "create", "holds_a_role", "load_settings", "plugin"]


def _static_groups(principal: str, table: Mapping[str, Sequence[str]]) -> set[str]:
    """Casefolded `[groups]` holding `principal`, nested `group:<name>` members followed."""
    held = {
        name.casefold()
        for name, members in table.items()
        if any(not m.startswith("group:") and fnmatchcase(principal, m) for m in members)
    }
    grew = True
    while grew:
        grew = False
        for name, members in table.items():
            if name.casefold() not in held and any(
                m.startswith("group:") and m[len("group:") :].casefold() in held for m in members
            ):
                held.add(name.casefold())
                grew = True
    return held


def holds_a_role(settings: Settings) -> Callable[[str], bool]:
    """`principal → bool`: is it a member of any `[[roles]]` table (directly or by static group)?

    Directory (LDAP) groups are not consulted here: whose invites the bot accepts is
    decided without a network round-trip. List such rooms in `rooms` instead.
    """

    def check(principal: str) -> bool:
        groups = _static_groups(principal, settings.groups)
        for role in settings.roles:
            for member in role.members:
                if member.startswith("group:"):
                    if member[len("group:") :].casefold() in groups:
                        return True
                elif fnmatchcase(principal, member):
                    return True
        return False

    return check


def _secret(key: str, reference: str | None) -> str | None:
    if reference is None:
        return None
    try:
        return resolve_reference(reference)
    except ConfigError as error:
        raise ConfigError(f"adapters.matrix.{key}: {error}") from None


def create(
    table: Mapping[str, Any], settings: Settings, *, services: AdapterServices | None = None
) -> ChatAdapter:
    """The adapter for `[adapters.matrix]`; ConfigError naming the key when it is invalid.

    Invitations are judged from the configuration alone (`holds_a_role`), without a
    directory round-trip, so `services` is not needed here.
    """
    from opsroom.adapters.matrix.transport import MatrixAdapter

    matrix = load_settings(table)
    password = _secret("password", matrix.password)
    token = _secret("access_token", matrix.access_token)
    return MatrixAdapter(
        matrix, password=password, access_token=token, may_invite=holds_a_role(settings)
    )


plugin = AdapterPlugin(
    name="matrix",
    settings=MatrixSettings,
    create=create,
    requires=("nio",),
    extra="matrix",
)
