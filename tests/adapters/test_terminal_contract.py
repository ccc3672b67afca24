"""The adapter contract for the terminal (`opsroom shell`), over real OS pipes.

The person types into one pipe and reads the other, as a terminal would show it: each
printed line is one thing seen. A terminal cannot be cut off from itself, so `drop` and
`restore` change nothing and the adapter stays connected; the test then checks that it
still hears the person.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import IO

import pytest

from adapters.contract import AdapterContract, Seen
from opsroom.adapters.terminal import TerminalAdapter
from opsroom.model.blocks import Reply, Status, Table
from opsroom.model.messages import Inbound
from opsroom.render.text import render_reply


@dataclass
class TerminalHarness:
    adapter: TerminalAdapter
    keyboard: IO[str]  # what the person types
    screen: int  # the fd the person reads
    room: str = "local:shell"
    user: str = "local:alice"
    shown: str = ""
    typed: int = field(default=0)

    async def say(self, text: str, *, thread_id: str | None = None) -> str:
        self.keyboard.write(text + "\n")
        self.keyboard.flush()
        self.typed += 1
        return str(self.typed)

    async def seen(self) -> list[Seen]:
        while True:
            try:
                chunk = os.read(self.screen, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.shown += chunk.decode()
        return [
            Seen(id=str(i), text=line, sender="opsroom")
            for i, line in enumerate(self.shown.splitlines())
        ]

    async def click(self, message_id: str, value: str) -> None:
        raise AssertionError("a terminal has no buttons")

    async def drop(self) -> None:
        """Nothing to cut: the terminal is local (the adapter stays connected)."""

    async def restore(self) -> None:
        """Nothing to restore."""


@pytest.fixture
async def harness() -> AsyncIterator[TerminalHarness]:
    keys_r, keys_w = os.pipe()
    screen_r, screen_w = os.pipe()
    os.set_blocking(screen_r, False)
    stdin = os.fdopen(keys_r, "r")
    stdout = os.fdopen(screen_w, "w")
    keyboard = os.fdopen(keys_w, "w")
    adapter = TerminalAdapter(principal="local:alice", input=stdin, output=stdout)
    await adapter.connect()
    yield TerminalHarness(adapter, keyboard, screen_r)
    await adapter.close()
    for stream in (keyboard, stdin, stdout):
        stream.close()
    os.close(screen_r)


class TestTerminalContract(AdapterContract):
    """The shared contract."""


async def test_every_line_is_a_direct_message_and_blank_lines_are_skipped(
    harness: TerminalHarness,
) -> None:
    events = harness.adapter.events()
    await harness.say("   ")
    await harness.say("  store status 42  ")
    event = await asyncio.wait_for(anext(events), 5)
    assert isinstance(event, Inbound)
    assert (event.text, event.direct) == ("store status 42", True)


async def test_replies_are_printed_as_the_text_renderer_shows_them(
    harness: TerminalHarness,
) -> None:
    table = Table(("system", "host"), (("till 1", "pos01"),))
    reply = Reply((table, Status("done", "success")))
    await harness.adapter.send(harness.room, reply)
    await harness.seen()  # written before send returned
    assert harness.shown == render_reply(reply) + "\n"
    assert "till 1" in harness.shown


async def test_the_end_of_the_input_ends_the_events(harness: TerminalHarness) -> None:
    events = harness.adapter.events()
    await harness.say("last words")
    harness.keyboard.close()
    assert isinstance(await asyncio.wait_for(anext(events), 5), Inbound)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(events), 5)
