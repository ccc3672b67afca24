"""Which groups a principal is in: static `[groups]` plus an LDAP / Active Directory directory.

Group names compare case-insensitively (directories do) and are returned casefolded. A
static group may name another group as a member (`group:<name>`, static or directory); that
nesting is followed to any depth. Directory answers are cached per principal for
`[ldap] cache_ttl`: a change in the directory shows up within that time. When the directory
fails, the principal gets the static groups only — never more — and the failure is cached
briefly so a dead server does not slow every request by its timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from opsroom.config import Settings
from opsroom.policy.ldap import DirectoryError, LdapDirectory

_log = logging.getLogger(__name__)
_FAILURE_TTL = 10.0  # seconds a directory failure is remembered before the next try


def static_groups_of(
    principal: str, table: Mapping[str, Sequence[str]], *, seed: Collection[str] = ()
) -> frozenset[str]:
    """Casefolded names of the `[groups]` `principal` is in, plus `seed` (groups known already)."""
    held = {g.casefold() for g in seed}
    for name, members in table.items():
        if any(not m.startswith("group:") and fnmatchcase(principal, m) for m in members):
            held.add(name.casefold())
    grew = True
    while grew:  # follow group:<name> members to a fixed point; cycles end it too
        grew = False
        for name, members in table.items():
            key = name.casefold()
            if key not in held and any(
                m.startswith("group:") and m[len("group:") :].casefold() in held for m in members
            ):
                held.add(key)
                grew = True
    return frozenset(held)


@dataclass(frozen=True, slots=True)
class Membership:
    """The groups of one principal, and why directory groups are missing, if they are."""

    groups: frozenset[str]
    error: DirectoryError | None = None  # the directory failed: these are static groups only
    cached: bool = False


class GroupResolver:
    """Resolves a principal's groups: static `[groups]`, then the directory (cached)."""

    def __init__(
        self,
        settings: Settings,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table = settings.groups
        self._directory = LdapDirectory(settings.ldap, environ) if settings.ldap else None
        self._ttl = settings.ldap.cache_ttl if settings.ldap else 0.0
        self._clock = clock
        self._cache: dict[str, tuple[float, Membership]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def groups_of(self, principal: str) -> frozenset[str]:
        """Casefolded names of every group `principal` is in."""
        return (await self.membership(principal)).groups

    async def membership(self, principal: str) -> Membership:
        """The groups of `principal`, with the directory's error when it could not answer."""
        directory = self._directory
        username = directory.username_for(principal) if directory else None
        if directory is None or username is None:
            return Membership(static_groups_of(principal, self._table))
        if (hit := self._fresh(principal)) is not None:
            return hit
        lock = self._locks.setdefault(principal, asyncio.Lock())
        async with lock:  # one directory lookup per principal at a time
            if (hit := self._fresh(principal)) is not None:
                return hit
            try:
                found = await asyncio.to_thread(directory.groups_for_user, username)
            except DirectoryError as e:
                _log.warning("%s — %s gets static [groups] only", e, principal)
                result = Membership(static_groups_of(principal, self._table), error=e)
                self._cache[principal] = (self._clock() + min(self._ttl, _FAILURE_TTL), result)
                return result
            result = Membership(static_groups_of(principal, self._table, seed=found))
            self._cache[principal] = (self._clock() + self._ttl, result)
            return result

    def forget(self, principal: str | None = None) -> None:
        """Drop cached answers (one principal's, or all), e.g. after a config reload."""
        if principal is None:
            self._cache.clear()
        else:
            self._cache.pop(principal, None)

    def _fresh(self, principal: str) -> Membership | None:
        entry = self._cache.get(principal)
        if entry is None or entry[0] <= self._clock():
            return None
        return Membership(entry[1].groups, entry[1].error, cached=True)
