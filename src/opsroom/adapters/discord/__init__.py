"""Discord: the gateway (websocket) for events, the REST API for messages.

`plugin` is the entry point (`opsroom.adapters`): `create(table, settings)` builds the
adapter `opsroom serve` starts for `[adapters.discord]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opsroom.adapters.base import AdapterServices
from opsroom.adapters.discord.settings import DiscordSettings
from opsroom.adapters.plugin import AdapterPlugin
from opsroom.config import Settings

if TYPE_CHECKING:
    from opsroom.adapters.discord.adapter import DiscordAdapter

__all__ = ["create", "plugin"]


def create(
    table: Mapping[str, Any],
    settings: Settings,
    *,
    services: AdapterServices | None = None,
    environ: Mapping[str, str] | None = None,
) -> DiscordAdapter:
    """The Discord adapter for `[adapters.discord]`.

    Deliveries are deduplicated through `services.first_delivery` (the store, under
    `opsroom serve`); without it, in this process only.
    """
    from opsroom.adapters.discord.adapter import DiscordAdapter
    from opsroom.adapters.discord.settings import parse

    config = parse(table, environ)
    first = services.first_delivery if services else None
    return DiscordAdapter(config, prefix=settings.bot.prefix, first_delivery=first)


plugin = AdapterPlugin(
    name="discord",
    settings=DiscordSettings,
    create=create,
    requires=("aiohttp",),
    extra="discord",
)
