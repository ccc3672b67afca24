"""Where each chat adapter's connection stands, for the console and the JSON API."""

from __future__ import annotations

from dataclasses import dataclass

from opsroom.web.context import WebContext


@dataclass(frozen=True, slots=True)
class AdapterStatus:
    """One chat adapter: its connection state and the replies waiting to be delivered."""

    name: str
    state: str  # a ConnectionState value: connecting, connected, disconnected, closed
    waiting: int  # replies held in the bridge's outbox until the platform is back

    @property
    def connected(self) -> bool:
        """Whether the adapter can deliver replies now."""
        return self.state == "connected"


def adapter_statuses(ctx: WebContext) -> list[AdapterStatus]:
    """Every running chat adapter, the web chat first, then by name."""
    statuses = [
        AdapterStatus(name, str(bridge.adapter.state.value), bridge.outbox.waiting)
        for name, bridge in ctx.bridges.items()
    ]
    return sorted(statuses, key=lambda s: (s.name != "web", s.name))
