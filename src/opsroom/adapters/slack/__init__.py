"""Slack: Socket Mode or the Events API (POST /hooks/slack), through slack_bolt.

`create(table, settings)` builds the adapter `opsroom serve` starts; in HTTP mode the web
app also mounts `slack_http_endpoint(adapter)` at `/hooks/slack`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opsroom.adapters.base import AdapterServices
from opsroom.config import Settings

if TYPE_CHECKING:
    from opsroom.adapters.slack.adapter import SlackAdapter
    from opsroom.adapters.slack.http import SlackHttpEndpoint

__all__ = ["create", "slack_http_endpoint"]


def create(
    table: Mapping[str, Any],
    settings: Settings,
    *,
    services: AdapterServices | None = None,
    environ: Mapping[str, str] | None = None,
) -> SlackAdapter:
    """The Slack adapter for `[adapters.slack]`.

    Deliveries are deduplicated through `services.first_delivery` (the store, under
    `opsroom serve`); without it, in this process only.
    """
    from opsroom.adapters.slack.adapter import SlackAdapter
    from opsroom.adapters.slack.settings import parse

    config = parse(table, environ)
    first = services.first_delivery if services and services.first_delivery else _InMemory().first
    return SlackAdapter(config, prefix=settings.bot.prefix, first_delivery=first)


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


def slack_http_endpoint(adapter: SlackAdapter) -> SlackHttpEndpoint:
    """The ASGI app for Slack's Events API, slash commands and clicks (POST /hooks/slack)."""
    from opsroom.adapters.slack.http import SlackHttpEndpoint

    return SlackHttpEndpoint(adapter)
