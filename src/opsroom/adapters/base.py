"""The adapter contract: what every chat platform offers opsroom, and nothing more.

An adapter owns one connection to one platform. It turns the platform's events into
`Inbound` messages and `Interaction`s (button clicks) and turns neutral `Reply` blocks
into the platform's messages. It knows nothing of commands, jobs or policy: the bridge
(`opsroom.engine.bridge`) holds adapters and feeds the dispatcher, like hubot's robot
holds its adapter rather than being one. Each platform is found through its
`AdapterPlugin` entry point (`opsroom.adapters.plugin`).

Every adapter passes the shared contract suite (`tests/adapters/contract.py`) against its
real server or a fake built from the platform's documented payloads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from opsroom.errors import AdapterError
from opsroom.model.blocks import Reply
from opsroom.model.chat import (
    Capabilities,
    ConnectionState,
    Event,
    Interaction,
    MessageRef,
)

__all__ = [
    "AdapterServices",
    "AdapterUnavailable",
    "Capabilities",
    "ChatAdapter",
    "ConnectionState",
    "Event",
    "Interaction",
    "MessageRef",
]


@dataclass(frozen=True, slots=True)
class AdapterServices:
    """What the engine lends an adapter: adapters never open the store or the policy.

    `first_delivery(key)` is True only the first time a delivery key is seen in this
    installation (platform retries run once, across restarts and processes).
    `may_invite(principal)` is policy's answer to whether that person may bring the bot
    into a room (a platform where the bot accepts invitations asks it for each one).
    """

    first_delivery: Callable[[str], Awaitable[bool]] | None = None
    may_invite: Callable[[str], Awaitable[bool]] | None = None


class AdapterUnavailable(AdapterError):
    """The platform cannot be reached right now; the bridge keeps the message for later."""


@runtime_checkable
class ChatAdapter(Protocol):
    """One chat platform connection."""

    name: str  # the principal/room prefix: slack, matrix, irc, web, ...
    capabilities: Capabilities

    @property
    def state(self) -> ConnectionState:
        """The connection's state right now."""
        ...

    async def connect(self) -> None:
        """Connect (and keep reconnecting with backoff until `close`)."""
        ...

    def events(self) -> AsyncIterator[Event]:
        """Inbound messages and interactions, in arrival order, from all rooms."""
        ...

    async def send(self, room: str, reply: Reply, *, thread_id: str | None = None) -> MessageRef:
        """Post a reply (split or truncated to fit); AdapterUnavailable when disconnected."""
        ...

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        """Replace the content of a message the bot sent (only with `capabilities.edits`)."""
        ...

    async def close(self) -> None:
        """Disconnect for good."""
        ...
