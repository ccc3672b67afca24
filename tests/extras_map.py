"""Which optional extra each part of opsroom needs: the one table the packaging tests share.

`tests/unit/test_declared_dependencies.py` checks every import against it and pyproject.toml;
`tests/install/test_fresh_install.py` checks it against real installs with and without extras.
"""

from __future__ import annotations

EXTRAS = (
    "slack",
    "matrix",
    "irc",
    "teams",
    "discord",
    "mattermost",
    "ldap",
    "vault",
    "sso",
    "postgres",
)
"""Every optional feature's extra; `all` is exactly these together."""

ADAPTER_EXTRAS = ("slack", "matrix", "irc", "teams", "discord", "mattermost")
"""A chat adapter's extra is named after it (even when it adds nothing to the core)."""

EXTRA_AREAS: dict[str, str] = {f"adapters/{name}/": name for name in ADAPTER_EXTRAS}
"""Modules (path prefixes below src/opsroom) loaded only when their feature is configured:
they may import their extra's packages at module level."""

LAZY_EXTRAS: dict[str, str] = {
    "policy/ldap.py": "ldap",
    "policy/secrets.py": "vault",
    "web/oidc.py": "sso",
    "store/tasks.py": "postgres",  # the workers' job queue (Procrastinate)
    "store/notify.py": "postgres",  # LISTEN/NOTIFY, on a PostgreSQL store only
}
"""Core modules (imported on every start) that use an extra's packages only inside
functions, after start-up checked that the extra is installed."""

HOSTED: dict[str, str] = {"testing/plugin.py": "pytest"}
"""Modules that only another program loads, which brings the package named: the pytest
plugin (the `pytest11` entry point) runs inside pytest, so it may import pytest."""


def area_extra(rel: str) -> str | None:
    """The extra whose feature module `rel` (a path below src/opsroom) belongs to, if any."""
    for prefix, extra in EXTRA_AREAS.items():
        if rel.startswith(prefix):
            return extra
    return None


def lazy_extra(rel: str) -> str | None:
    """The extra a core module `rel` may import lazily (inside functions), if any."""
    return LAZY_EXTRAS.get(rel)
