"""Mattermost: REST v4 and the WebSocket, plus `/ops` and button clicks over HTTP.

`plugin` is the entry point (`opsroom.adapters`): `create(table, settings)` builds the
adapter `opsroom serve` starts; the web app also mounts
`mattermost_hook_endpoint(adapter, "command")` at `/hooks/mattermost/command` and
`mattermost_hook_endpoint(adapter, "actions")` at `/hooks/mattermost/actions`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opsroom.adapters.base import AdapterServices, ChatAdapter
from opsroom.adapters.mattermost.settings import MattermostSettings
from opsroom.adapters.plugin import AdapterPlugin, Hook
from opsroom.config import Settings

if TYPE_CHECKING:
    from opsroom.adapters.mattermost.adapter import MattermostAdapter
    from opsroom.adapters.mattermost.http import MattermostHookEndpoint

__all__ = ["create", "mattermost_hook_endpoint", "plugin"]


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
    first = services.first_delivery if services else None
    return MattermostAdapter(config, prefix=settings.bot.prefix, first_delivery=first)


def mattermost_hook_endpoint(adapter: MattermostAdapter, kind: str) -> MattermostHookEndpoint:
    """The ASGI app for `/ops` ("command") or button clicks ("actions")."""
    from opsroom.adapters.mattermost.http import MattermostHookEndpoint

    return MattermostHookEndpoint(adapter, kind)


def _hooks(adapter: ChatAdapter) -> Sequence[Hook]:
    """`/ops` checks its command token, a click the secret in its button's context."""
    from opsroom.adapters.mattermost.adapter import MattermostAdapter

    assert isinstance(adapter, MattermostAdapter)
    return tuple(
        Hook(f"/hooks/mattermost/{kind}", mattermost_hook_endpoint(adapter, kind))
        for kind in ("command", "actions")
    )


plugin = AdapterPlugin(
    name="mattermost",
    settings=MattermostSettings,
    create=create,
    requires=("aiohttp",),
    extra="mattermost",
    hooks=_hooks,
)
