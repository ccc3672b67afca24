"""`TerminalAdapter`: lines typed on an input stream in, rendered replies out.

The person is whoever runs the shell (`local:$USER`, given), the room is `local:shell`,
and every line is a direct message, so the command prefix is optional. A terminal has
no threads, edits or buttons: the bridge prints job replies as they come.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import IO

from opsroom.adapters.base import (
    AdapterUnavailable,
    Capabilities,
    ConnectionState,
    Event,
    MessageRef,
)
from opsroom.model.blocks import Reply
from opsroom.model.messages import Inbound
from opsroom.render.text import TextRenderer, for_terminal
from opsroom.tasks import stop_task

ROOM = "local:shell"
CAPABILITIES = Capabilities(
    threads=False,
    edits=False,
    buttons=False,
    max_message_length=10_000_000,  # a terminal scrolls: nothing needs cutting
    edits_per_second=1.0,
    progress_every=1.0,  # a progress line a second is what a terminal user wants to see
)


class TerminalAdapter:
    """A terminal chat over two text streams."""

    name = "local"
    capabilities = CAPABILITIES
    renderer = TextRenderer()

    def __init__(
        self, *, principal: str, output: IO[str], input: IO[str] | None = None, room: str = ROOM
    ) -> None:
        self.principal = principal
        self.room = room
        self.input = input
        self.output = output
        self._state = ConnectionState.DISCONNECTED
        self._ids = itertools.count(1)
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None
        self._transport: asyncio.ReadTransport | None = None

    @property
    def state(self) -> ConnectionState:
        """Connected until closed: a terminal does not drop."""
        return self._state

    async def connect(self) -> None:
        """Ready to read and write."""
        if self._state is not ConnectionState.CLOSED:
            self._state = ConnectionState.CONNECTED

    def receive(self, line: str) -> Inbound | None:
        """A typed line as a direct message from the person; None for a blank line."""
        text = line.strip()
        if not text:
            return None
        return Inbound(
            text=text,
            principal=self.principal,
            room=self.room,
            direct=True,
            message_id=str(next(self._ids)),
        )

    async def events(self) -> AsyncIterator[Event]:
        """Every non-blank line of the input stream; ends at its end or on close."""
        if self._pump is None and self.input is not None:
            self._pump = asyncio.create_task(self._read(self.input))
        while True:
            event = await self._queue.get()
            if event is None:
                self._queue.put_nowait(None)  # every other reader ends too
                return
            yield event

    async def _read(self, stream: IO[str]) -> None:
        """Read the input without blocking the event loop (a pipe or a terminal)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        self._transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), stream
        )
        try:
            while line := await reader.readline():
                inbound = self.receive(line.decode(errors="replace"))
                if inbound is not None:
                    self._queue.put_nowait(inbound)
        finally:
            self._queue.put_nowait(None)

    async def send(self, room: str, reply: Reply, *, thread_id: str | None = None) -> MessageRef:
        """Print the reply as text, without any control sequence a script printed."""
        if self._state is ConnectionState.CLOSED:
            raise AdapterUnavailable("the terminal is closed")
        for text in self.renderer.render(reply):
            self.output.write(for_terminal(text) + "\n")
        self.output.flush()
        return MessageRef(room=room, id=str(next(self._ids)))

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        """A terminal cannot change what it printed."""
        raise NotImplementedError("a terminal has no edits")

    async def close(self) -> None:
        """Stop reading; `events()` ends."""
        self._state = ConnectionState.CLOSED
        if self._transport is not None:
            self._transport.close()
        await stop_task(self._pump)
        self._queue.put_nowait(None)
