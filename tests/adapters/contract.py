"""The contract every chat adapter passes, against its real server or a platform fake.

An adapter's test module provides a `harness` fixture (a connected adapter plus a human
user on the same platform) and subclasses `AdapterContract`:

    class TestMatrixContract(AdapterContract):
        pass

The tests only use what the platform shows a person, never the adapter's internals.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from opsroom.adapters.base import ChatAdapter, ConnectionState, Event, Interaction
from opsroom.model.blocks import Actions, Code, Reply, Status, Text
from opsroom.model.messages import Inbound

WAIT = 15.0


@dataclass(frozen=True)
class Seen:
    """A message as a person in the room sees it."""

    id: str
    text: str
    sender: str
    thread_id: str | None = None
    edited: bool = False


class Harness(Protocol):
    """A connected adapter and a person on the same platform."""

    adapter: ChatAdapter
    room: str  # the bot's room, `<adapter>:<channel-id>`
    user: str  # the person's principal, `<adapter>:<stable id>`

    async def say(self, text: str, *, thread_id: str | None = None) -> str:
        """The person posts `text` in the room; returns the platform's message id."""
        ...

    async def seen(self) -> list[Seen]:
        """Every message in the room, oldest first, as the person sees it now."""
        ...

    async def click(self, message_id: str, value: str) -> None:
        """The person clicks the button carrying `value` on a message (if buttons exist)."""
        ...

    async def drop(self) -> None:
        """Cut the adapter's connection the way a network or server failure would."""
        ...

    async def restore(self) -> None:
        """Let the adapter reach the platform again."""
        ...


async def next_event(events: AsyncIterator[Event], timeout: float = WAIT) -> Event:
    """The next event from the adapter, or fail after `timeout`."""
    return await asyncio.wait_for(anext(events), timeout)


async def eventually(harness: Harness, predicate: object, timeout: float = WAIT) -> list[Seen]:
    """Poll what the person sees until `predicate(seen)` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        seen = await harness.seen()
        if predicate(seen):  # type: ignore[operator]
            return seen
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not seen in time; the room shows {[s.text for s in seen]}")
        await asyncio.sleep(0.2)


class AdapterContract:
    """Shared tests; subclass with a module that provides the `harness` fixture."""

    async def test_is_connected(self, harness: Harness) -> None:
        assert harness.adapter.state is ConnectionState.CONNECTED

    async def test_a_message_arrives_with_stable_identity(self, harness: Harness) -> None:
        events = harness.adapter.events()
        await harness.say("!help")
        event = await next_event(events)
        assert isinstance(event, Inbound)
        assert event.text.strip() == "!help"
        assert event.principal == harness.user, "the principal is the stable id, not a nick"
        assert event.room == harness.room

    async def test_sent_reply_is_seen(self, harness: Harness) -> None:
        await harness.adapter.send(harness.room, Reply((Text("contract: hello"),)))
        await eventually(harness, lambda seen: any("contract: hello" in s.text for s in seen))

    async def test_long_reply_fits_the_platform(self, harness: Harness) -> None:
        limit = harness.adapter.capabilities.max_message_length
        lines = tuple(f"line {i:05d} " + "x" * 60 for i in range(400))
        await harness.adapter.send(harness.room, Reply((Code(lines), Status("contract: done"))))
        seen = await eventually(harness, lambda s: any("contract: done" in m.text for m in s))
        assert all(len(m.text) <= limit for m in seen), "every message fits the platform"
        shown = "\n".join(m.text for m in seen)
        assert "line 00399" in shown, "the end of the output is shown"

    async def test_own_messages_are_not_events(self, harness: Harness) -> None:
        events = harness.adapter.events()
        await harness.adapter.send(harness.room, Reply((Text("!help from the bot itself"),)))
        await harness.say("contract: after the bot")
        event = await next_event(events)
        assert isinstance(event, Inbound)
        assert event.text == "contract: after the bot"

    async def test_edit_replaces_the_message(self, harness: Harness) -> None:
        ref = await harness.adapter.send(harness.room, Reply((Text("contract: 10%"),)))
        if not harness.adapter.capabilities.edits:
            # Without edits an adapter either re-sends the new content or refuses plainly.
            refused = ""
            try:
                await harness.adapter.edit(ref, Reply((Text("contract: 100%"),)))
            except NotImplementedError as e:
                refused = str(e)
            if refused:
                assert "no edits" in refused
                before = await eventually(
                    harness, lambda s: any("contract: 10%" in m.text for m in s)
                )
                assert not any("contract: 100%" in m.text for m in before)
            else:
                seen = await eventually(
                    harness, lambda s: any("contract: 100%" in m.text for m in s)
                )
                assert any("contract: 10%" in m.text for m in seen), "the first one stays"
        else:
            await harness.adapter.edit(ref, Reply((Text("contract: 100%"),)))
            seen = await eventually(harness, lambda s: any("contract: 100%" in m.text for m in s))
            assert not any(m.text.strip() == "contract: 10%" and not m.edited for m in seen)

    async def test_reply_in_thread(self, harness: Harness) -> None:
        root = await harness.say("!thread root")
        await harness.adapter.send(
            harness.room, Reply((Text("contract: in thread"),)), thread_id=root
        )
        seen = await eventually(harness, lambda s: any("contract: in thread" in m.text for m in s))
        message = next(m for m in seen if "contract: in thread" in m.text)
        if harness.adapter.capabilities.threads:
            assert message.thread_id == root
        else:
            # No threads: the reply still reaches the room, as an ordinary message.
            assert not message.thread_id

    async def test_button_click_is_an_interaction(self, harness: Harness) -> None:
        events = harness.adapter.events()
        ref = await harness.adapter.send(
            harness.room,
            Reply((Text("contract: approve?"), Actions((("Approve", "approve:7"),)))),
        )
        if not harness.adapter.capabilities.buttons:
            # No buttons: the question still arrives as text (people type `!approve 7`).
            seen = await eventually(
                harness, lambda s: any("contract: approve?" in m.text for m in s)
            )
            assert any("contract: approve?" in m.text for m in seen)
        else:
            await harness.click(ref.id, "approve:7")
            event = await next_event(events)
            assert isinstance(event, Interaction)
            assert event.value == "approve:7"
            assert event.principal == harness.user

    async def test_reconnects_after_a_drop(self, harness: Harness) -> None:
        await harness.drop()
        await harness.restore()
        deadline = asyncio.get_running_loop().time() + WAIT * 2
        while harness.adapter.state is not ConnectionState.CONNECTED:
            assert asyncio.get_running_loop().time() < deadline, "did not reconnect"
            await asyncio.sleep(0.2)
        events = harness.adapter.events()
        await harness.say("contract: back again")
        event = await next_event(events, timeout=WAIT * 2)
        assert isinstance(event, Inbound)
        assert event.text == "contract: back again"
