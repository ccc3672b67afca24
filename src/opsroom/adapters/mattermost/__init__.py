"""Mattermost: REST v4 and the WebSocket, plus `/ops` and button clicks over HTTP.

`create(table, settings)` builds the adapter `opsroom serve` starts; the web app also
mounts `mattermost_hook_endpoint(adapter, "command")` at `/hooks/mattermost/command` and
`mattermost_hook_endpoint(adapter, "actions")` at `/hooks/mattermost/actions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opsroom.adapters.base import AdapterServices
from opsroom.config import Settings

if TYPE_CHECKING:
    from opsroom.adapters.mattermost.adapter import MattermostAdapter
    from opsroom.adapters.mattermost.http import MattermostHookEndpoint

__all__ = ["create", "mattermost_hook_endpoint"]


def create(
    table: Mapping[str, Any],
    settings: Settings,
    *,
    services: AdapterServices | None = None,
    environ: Mapping[str, str] | None = None,
) -> MattermostAdapter:
    """The Mattermost adapter for `[adapters.mattermost]`.

    Deliveries are deduplicated through `services.first_delivery` (the store, under
    `opsroom serve`); without it, in this process only.
    """
    from opsroom.adapters.mattermost.adapter import MattermostAdapter
    from opsroom.adapters.mattermost.settings import parse

    config = parse(table, environ, base_url=settings.web.base_url)
    first = services.first_delivery if services and services.first_delivery else _InMemory().first
    return MattermostAdapter(config, prefix=settings.bot.prefix, first_delivery=first)


class _InMemory:
    """Delivery keys seen by this process (bounded)."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self.seen: dict[str, None] = {}

    async def first(self, key: str) -> bool:
        """True the first time `key` is seen."""
        if key in self.seen:
            return False
        self.seen[key] = None
        while len(self.seen) > self.limit:
            del self.seen[next(iter(self.seen))]
        return True


def mattermost_hook_endpoint(adapter: MattermostAdapter, kind: str) -> MattermostHookEndpoint:
    """The ASGI app for `/ops` ("command") or button clicks ("actions")."""
    from opsroom.adapters.mattermost.http import MattermostHookEndpoint

    return MattermostHookEndpoint(adapter, kind)
