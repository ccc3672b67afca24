"""The adapter contract: what every chat platform offers opsroom, and nothing more.

An adapter owns one connection to one platform. It turns the platform's events into
`Inbound` messages and `Interaction`s (button clicks) and turns neutral `Reply` blocks
into the platform's messages. It knows nothing of commands, jobs or policy: the bridge
(`opsroom.bridge`) holds adapters and feeds the dispatcher, like hubot's robot holds its
adapter rather than being one.

Every adapter passes the shared contract suite (`tests/adapters/contract.py`) against its
real server or a fake built from the platform's documented payloads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from opsroom.model.blocks import Reply
from opsroom.model.messages import Inbound


class ConnectionState(StrEnum):
    """Where an adapter's connection stands (shown in /metrics and the console)."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a platform can do; the bridge and renderers adapt to it."""

    threads: bool = False
    edits: bool = False
    buttons: bool = False
    reactions: bool = False
    uploads: bool = False
    max_message_length: int = 4000  # characters of one message, after rendering
    markdown: str = "plain"  # plain | commonmark | slack-mrkdwn | html | irc
    messages_per_second: float = 1.0  # sustained rate the platform tolerates per room
    edits_per_second: float = 1.0  # how often one message may be edited


@dataclass(frozen=True, slots=True)
class MessageRef:
    """A message the bot sent, for editing or reacting to it later."""

    room: str
    id: str
    thread_id: str | None = None


@dataclass(frozen=True, slots=True)
class Interaction:
    """A button click or menu choice: `value` is what the button carried.

    Values opsroom puts on buttons: `approve:<job>`, `deny:<job>`, `menu:<menu id>:<index>`.
    """

    principal: str
    room: str
    value: str
    display_name: str = ""
    message_id: str | None = None
    thread_id: str | None = None


Event = Inbound | Interaction


class AdapterUnavailable(Exception):
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

    async def react(self, ref: MessageRef, emoji: str) -> None:
        """Add a reaction to a message (only with `capabilities.reactions`)."""
        ...

    async def upload(
        self, room: str, name: str, data: bytes, *, thread_id: str | None = None
    ) -> MessageRef:
        """Share a file in a room (only with `capabilities.uploads`)."""
        ...

    async def close(self) -> None:
        """Disconnect for good."""
        ...
