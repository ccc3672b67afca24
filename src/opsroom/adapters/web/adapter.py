"""`WebChatAdapter`: the browser chat behind the same contract as Slack, Matrix and IRC.

Every reply is one stored room event (its `seq` is the message id). An edit is a new
event whose payload says `replaces: <seq>`: the history stays append-only (so a reload or
an SSE resume replays it exactly) and the page swaps the earlier message for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from opsroom.adapters.base import (
    AdapterUnavailable,
    Capabilities,
    ConnectionState,
    Event,
    Interaction,
    MessageRef,
)
from opsroom.model.blocks import Reply
from opsroom.model.messages import Inbound
from opsroom.render.text import reply_to_dict

BOT = "bot"  # the author of the bot's events in a room's history
CAPABILITIES = Capabilities(
    threads=False,
    edits=True,
    buttons=True,
    max_message_length=1_000_000,
    edits_per_second=5.0,  # a progress bar that visibly moves, without flooding the history
)


class Published(Protocol):
    """A stored room event: its `seq` orders the room."""

    @property
    def seq(self) -> int:
        """The event's position in its room."""
        ...


class Publisher(Protocol):
    """Where room events go (the web app's hub satisfies it)."""

    async def publish(
        self, room: str, payload: Mapping[str, Any], *, author: str, kind: str
    ) -> Published:
        """Store an event in `room`'s history and hand it to the room's listeners."""
        ...


class WebChatAdapter:
    """The web chat: people post over HTTP, replies become room events."""

    name = "web"
    capabilities = CAPABILITIES

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._state = ConnectionState.CONNECTED

    @property
    def state(self) -> ConnectionState:
        """Connected from the start: the web chat lives in the serving process."""
        return self._state

    async def connect(self) -> None:
        """Nothing to connect: the hub is in-process."""
        if self._state is not ConnectionState.CLOSED:
            self._state = ConnectionState.CONNECTED

    async def post(
        self, principal: str, room: str, text: str, *, display_name: str = ""
    ) -> tuple[Published, Inbound]:
        """A person's message: shown in the room, then queued as an inbound event."""
        echo = await self.publisher.publish(room, {"text": text}, author=principal, kind="message")
        inbound = Inbound(
            text=text,
            principal=principal,
            room=room,
            display_name=display_name,
            message_id=str(echo.seq),
        )
        self._queue.put_nowait(inbound)
        return echo, inbound

    def click(
        self, principal: str, room: str, value: str, *, message_id: str | None = None
    ) -> Interaction:
        """A person clicked a button carrying `value`: queued as an interaction."""
        interaction = Interaction(
            principal=principal, room=room, value=value, message_id=message_id
        )
        self._queue.put_nowait(interaction)
        return interaction

    async def events(self) -> AsyncIterator[Event]:
        """Messages and clicks in arrival order; ends when the adapter closes."""
        while True:
            event = await self._queue.get()
            if event is None:
                self._queue.put_nowait(None)  # every other reader ends too
                return
            yield event

    async def send(self, room: str, reply: Reply, *, thread_id: str | None = None) -> MessageRef:
        """Publish a reply as one room event; its seq is the message id."""
        self._check()
        event = await self.publisher.publish(
            room, reply_to_dict(reply), author=BOT, kind=reply.kind
        )
        return MessageRef(room=room, id=str(event.seq))

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        """Publish an event that replaces the message `ref` on every page."""
        self._check()
        payload = {**reply_to_dict(reply), "replaces": int(ref.id)}
        await self.publisher.publish(ref.room, payload, author=BOT, kind=reply.kind)

    async def close(self) -> None:
        """Stop: `events()` ends, sends fail."""
        self._state = ConnectionState.CLOSED
        self._queue.put_nowait(None)

    def _check(self) -> None:
        if self._state is ConnectionState.CLOSED:
            raise AdapterUnavailable("the web chat is closed")
