"""Slack: Socket Mode or the Events API (POST /hooks/slack), through slack_bolt.

`plugin` is the entry point (`opsroom.adapters`): `create(table, settings)` builds the
adapter `opsroom serve` starts; in HTTP mode the web app also mounts
`slack_http_endpoint(adapter)` at `/hooks/slack`. Nothing here imports slack_bolt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opsroom.adapters.base import AdapterServices, ChatAdapter
from opsroom.adapters.plugin import AdapterPlugin, Hook
from opsroom.adapters.slack.settings import SlackSettings
from opsroom.config import Settings

if TYPE_CHECKING:
    from opsroom.adapters.slack.adapter import SlackAdapter
    from opsroom.adapters.slack.http import SlackHttpEndpoint

__all__ = ["create", "plugin", "slack_http_endpoint"]


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
    first = services.first_delivery if services else None
    return SlackAdapter(config, prefix=settings.bot.prefix, first_delivery=first)


def slack_http_endpoint(adapter: SlackAdapter) -> SlackHttpEndpoint:
    """The ASGI app for Slack's Events API, slash commands and clicks (POST /hooks/slack)."""
    from opsroom.adapters.slack.http import SlackHttpEndpoint

    return SlackHttpEndpoint(adapter)


def _hooks(adapter: ChatAdapter) -> Sequence[Hook]:
    """In HTTP mode Slack posts events to us; in Socket Mode nothing is mounted."""
    from opsroom.adapters.slack.adapter import SlackAdapter

    assert isinstance(adapter, SlackAdapter)
    if adapter.config.mode != "http":
        return ()
    # Slack signs every request; the endpoint verifies it.
    return (Hook("/hooks/slack", slack_http_endpoint(adapter)),)


plugin = AdapterPlugin(
    name="slack",
    settings=SlackSettings,
    create=create,
    requires=("slack_bolt", "slack_sdk", "aiohttp"),
    extra="slack",
    hooks=_hooks,
)
