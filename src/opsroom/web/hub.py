"""Rooms of the web chat: in-process publish/subscribe with a persisted history.

Every event is stored first (its `seq` is the row id), then handed to the room's live
subscribers, so a reload or an SSE reconnect with `Last-Event-ID` misses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opsroom.model.blocks import Reply
from opsroom.render.text import reply_to_dict

if TYPE_CHECKING:
    from opsroom.store import Store
    from opsroom.store.messages import WebMessage

HISTORY = 200  # events a page load or a first connect shows
_QUEUE = 1000  # live events a slow subscriber may lag behind before it is dropped
BOT = "bot"


def event_dict(message: WebMessage) -> dict[str, Any]:
    """The JSON form of one room event: reply_to_dict (or author and text) plus seq, room, at."""
    return {
        **message.payload,
        "seq": message.seq,
        "room": message.room,
        "at": message.created_at.isoformat(),
        "author": message.author,
        "kind": message.kind,
    }


class Subscription:
    """Live events of one room for one listener; `None` in the queue means the hub closed."""

    def __init__(self, room: str) -> None:
        self.room = room
        self.queue: asyncio.Queue[WebMessage | None] = asyncio.Queue(maxsize=_QUEUE)

    async def get(self, timeout: float) -> WebMessage | None:
        """The next event; TimeoutError after `timeout`; None when the hub closed."""
        return await asyncio.wait_for(self.queue.get(), timeout)


class Hub:
    """Per-room pub/sub for the web chat, backed by the store's `messages` table."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._subs: dict[str, set[Subscription]] = {}
        # One publisher at a time: subscribers see events in `seq` order.
        self._lock = asyncio.Lock()
        self.closed = False

    async def publish(
        self, room: str, payload: Mapping[str, Any], *, author: str, kind: str
    ) -> WebMessage:
        """Store an event in `room`'s history and hand it to the room's listeners."""
        async with self._lock:
            message = await self.store.add_web_message(
                room=room, author=author, kind=kind, payload=payload
            )
            for sub in list(self._subs.get(room, ())):
                try:
                    sub.queue.put_nowait(message)
                except asyncio.QueueFull:
                    # Too slow: drop it; its client reconnects with Last-Event-ID.
                    self._drop(sub)
        return message

    async def publish_reply(self, room: str, reply: Reply) -> WebMessage:
        """A bot reply, in the JSON form of `render.text.reply_to_dict`."""
        return await self.publish(room, reply_to_dict(reply), author=BOT, kind=reply.kind)

    async def publish_text(self, room: str, *, author: str, text: str) -> WebMessage:
        """Echo what a person said in the room."""
        return await self.publish(room, {"text": text}, author=author, kind="message")

    async def history(self, room: str, *, after: int = 0, limit: int = HISTORY) -> list[WebMessage]:
        """Stored events after `after`, oldest first (the newest `limit` when after=0)."""
        return await self.store.web_messages(room, after=after, limit=limit)

    @contextlib.contextmanager
    def subscribe(self, room: str) -> Iterator[Subscription]:
        """Listen to `room` while the block runs."""
        sub = Subscription(room)
        if self.closed:
            sub.queue.put_nowait(None)
        self._subs.setdefault(room, set()).add(sub)
        try:
            yield sub
        finally:
            self._subs.get(room, set()).discard(sub)
            if not self._subs.get(room):
                self._subs.pop(room, None)

    async def follow(
        self, room: str, *, after: int | None, heartbeat: float
    ) -> AsyncIterator[WebMessage | None]:
        """Stored events after `after`, then live ones; `None` every `heartbeat` s of quiet.

        With after=None only live events come. Ends when the hub closes.
        """
        with self.subscribe(room) as sub:
            last = after if after is not None else 0
            if after is not None:
                while True:
                    page = await self.history(room, after=last, limit=HISTORY)
                    for message in page:
                        last = message.seq
                        yield message
                    if len(page) < HISTORY:
                        break
            while True:
                try:
                    live = await sub.get(heartbeat)
                except TimeoutError:
                    yield None
                    continue
                if live is None:
                    return
                if live.seq > last:
                    last = live.seq
                    yield live

    def listeners(self, room: str) -> int:
        """How many live subscribers `room` has."""
        return len(self._subs.get(room, ()))

    def close(self) -> None:
        """End every subscription (shutdown)."""
        self.closed = True
        for subs in list(self._subs.values()):
            for sub in list(subs):
                self._drop(sub)

    def _drop(self, sub: Subscription) -> None:
        self._subs.get(sub.room, set()).discard(sub)
        while True:
            try:
                sub.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                sub.queue.get_nowait()
