"""Microsoft Teams through the Bot Framework: activities at POST /hooks/teams, replies
through the Bot Connector REST API (a lean client on httpx; see docs/adapters/teams.md).

`plugin` is the entry point (`opsroom.adapters`): `create(table, settings)` builds the
adapter `opsroom serve` starts; the web app mounts `teams_http_endpoint(adapter)` at
`/hooks/teams`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opsroom.adapters.base import AdapterServices, ChatAdapter
from opsroom.adapters.plugin import AdapterPlugin, Hook
from opsroom.adapters.teams.settings import TeamsSettings
from opsroom.config import Settings

if TYPE_CHECKING:
    from opsroom.adapters.teams.adapter import TeamsAdapter
    from opsroom.adapters.teams.http import TeamsHttpEndpoint

__all__ = ["create", "plugin", "teams_http_endpoint"]


def create(
    table: Mapping[str, Any],
    settings: Settings,
    *,
    services: AdapterServices | None = None,
    environ: Mapping[str, str] | None = None,
) -> TeamsAdapter:
    """The Teams adapter for `[adapters.teams]` (repeat deliveries dropped via the store)."""
    from opsroom.adapters.teams.adapter import TeamsAdapter
    from opsroom.adapters.teams.settings import parse

    config = parse(table, environ)
    first = services.first_delivery if services else None
    return TeamsAdapter(config, prefix=settings.bot.prefix, first_delivery=first)


def teams_http_endpoint(adapter: TeamsAdapter) -> TeamsHttpEndpoint:
    """The ASGI app for the Bot Connector's activities (POST /hooks/teams)."""
    from opsroom.adapters.teams.http import TeamsHttpEndpoint

    return TeamsHttpEndpoint(adapter)


def _hooks(adapter: ChatAdapter) -> Sequence[Hook]:
    """The Bot Connector posts every activity; its JWT is checked before the body is read."""
    from opsroom.adapters.teams.adapter import TeamsAdapter

    assert isinstance(adapter, TeamsAdapter)
    return (Hook("/hooks/teams", teams_http_endpoint(adapter)),)


plugin = AdapterPlugin(
    name="teams",
    settings=TeamsSettings,
    create=create,
    requires=("httpx", "joserfc"),
    extra="teams",
    hooks=_hooks,
)
