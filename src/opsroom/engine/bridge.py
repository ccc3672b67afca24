"""The bridge between one chat adapter and the dispatcher (SPEC §4.4, §5.2): the event pump.

For every inbound message it calls the dispatcher with a `send` that knows the room and
thread, and it shapes job replies for the platform: where messages can be edited, one
status message per job is edited in place (what it shows and when it may be edited are
`render.stream`'s pure decisions); where they cannot, replies arrive as separate messages
and live progress is thinned out. Everything goes out through the adapter's `Outbox`,
which keeps replies while the platform is unreachable. Like `app.py`, this module wires
rooms together (hubot's robot holds its adapter rather than being one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from opsroom.adapters.base import ChatAdapter, Event, Interaction, MessageRef
from opsroom.engine.dispatch import Dispatcher
from opsroom.engine.outbox import REDELIVER_EVERY, KeptReplies, Outbox
from opsroom.model.blocks import Reply
from opsroom.model.messages import Inbound
from opsroom.render.stream import LIVE_KINDS, LiveView, edit_delay, progress_due
from opsroom.router.outcome import Outcome

__all__ = ["Bridge", "Send"]

log = logging.getLogger("opsroom.bridge")

Send = Callable[[Reply], Awaitable[None]]
T = TypeVar("T")


@dataclass(slots=True)
class _Live:
    """One job's status message: what it shows, where it is, and its edit timing."""

    view: LiveView = field(default_factory=LiveView)
    ref: MessageRef | None = None
    last_edit: float = 0.0
    pending: asyncio.Future[None] | None = None  # an edit waiting for the platform's rate
    last_progress: float | None = None  # without edits: when progress was last posted


class Bridge:
    """Connects one adapter to the dispatcher."""

    def __init__(
        self,
        adapter: ChatAdapter,
        dispatcher: Dispatcher,
        *,
        outbox: KeptReplies | None = None,
        redeliver_every: float = REDELIVER_EVERY,
    ) -> None:
        self.adapter = adapter
        self.dispatcher = dispatcher
        self.prefix = dispatcher.ctx.settings.bot.prefix
        self.outbox = Outbox(adapter, kept=outbox, redeliver_every=redeliver_every)
        self._tasks: set[asyncio.Future[Any]] = set()
        self._redelivery: asyncio.Future[Any] | None = None  # runs for as long as the bridge

    async def run(self) -> None:
        """Connect and handle events until cancelled; deliver what waits once connected."""
        await self.outbox.recount()  # what an earlier run kept is delivered too
        self._redelivery = self._track(self.outbox.redeliver_forever())
        await self.adapter.connect()
        async for event in self.adapter.events():
            self._track(self.handle(event))

    def _track(self, work: Awaitable[T]) -> asyncio.Future[T]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def settle(self) -> None:
        """Wait until the bridge is idle: no message being handled, no held-back edit due.

        An edit held back for the platform's edit rate is waited for until it is made (tests,
        shutdown); the outbox's redelivery loop is not, it runs for as long as the bridge.
        """
        while busy := [t for t in self._tasks if t is not self._redelivery]:
            await asyncio.wait(busy)  # not gather: a caller giving up cancels none of them

    async def close(self) -> None:
        """Stop: cancel handlers and wait for them, then close the adapter."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.adapter.close()

    async def handle(self, event: Event) -> Outcome | None:
        """One inbound message or interaction, all the way to its last reply."""
        if isinstance(event, Interaction):
            return await self._interaction(event)
        thread = event.thread_id or event.message_id if self.adapter.capabilities.threads else None
        return await self.dispatcher.handle(event, self.sender(event.room, thread))

    async def _interaction(self, event: Interaction) -> Outcome | None:
        thread = event.thread_id if self.adapter.capabilities.threads else None
        send = self.sender(event.room, thread)
        kind, _, rest = event.value.partition(":")
        inbound = Inbound(
            text="",
            principal=event.principal,
            room=event.room,
            direct=True,
            display_name=event.display_name,
            thread_id=event.thread_id,
        )
        if kind in ("approve", "deny") and rest.isdigit():
            text = f"{self.prefix}{kind} {rest}"
            return await self.dispatcher.handle(
                Inbound(
                    text=text,
                    principal=event.principal,
                    room=event.room,
                    direct=True,
                    display_name=event.display_name,
                    thread_id=event.thread_id,
                ),
                send,
            )
        if kind == "menu":
            menu_id, _, index = rest.rpartition(":")
            if index.isdigit():
                return await self.dispatcher.choose(inbound, menu_id, int(index), send)
        log.warning("ignored an interaction with an unknown value", extra={"value": event.value})
        return None

    def sender(self, room: str, thread_id: str | None) -> Send:
        """A `send` for one conversation: live job messages, the outbox when disconnected."""
        lives: dict[int, _Live] = {}
        caps = self.adapter.capabilities

        async def send(reply: Reply) -> None:
            if reply.job_id is None or reply.kind not in LIVE_KINDS:
                await self.outbox.post(room, thread_id, reply)
                return
            live = lives.setdefault(reply.job_id, _Live())
            if caps.edits:
                final = live.view.absorb(reply)
                await self._show(
                    room, thread_id, reply.job_id, live, force=final or live.ref is None
                )
                return
            # No edits: job messages go out as they come, live progress thinned out.
            if reply.kind == "progress":
                now = time.monotonic()
                if not progress_due(
                    now=now, last_shown=live.last_progress, every=caps.progress_every
                ):
                    return
                live.last_progress = now
            await self.outbox.post(room, thread_id, reply, live=reply.kind == "progress")

        return send

    async def _show(
        self, room: str, thread_id: str | None, job_id: int, live: _Live, *, force: bool
    ) -> None:
        """Create or edit the job's status message, at most at the platform's edit rate."""
        if live.ref is None:
            live.ref = await self.outbox.post(room, thread_id, live.view.view(job_id), live=True)
            live.last_edit = time.monotonic()
            return
        wait = edit_delay(
            now=time.monotonic(),
            last_edit=live.last_edit,
            edits_per_second=self.adapter.capabilities.edits_per_second,
            force=force,
        )
        if not wait:
            if live.pending is not None:
                live.pending.cancel()  # still asleep: this edit shows the newer view
                live.pending = None
            await self.outbox.edit(live.ref, live.view.view(job_id), live=True)
            live.last_edit = time.monotonic()
        elif live.pending is None:
            # A task, not a timer: `settle` sees an edit that is due but not yet made.
            live.pending = self._track(self._show_later(wait, room, thread_id, job_id, live))

    async def _show_later(
        self, wait: float, room: str, thread_id: str | None, job_id: int, live: _Live
    ) -> None:
        """The held-back edit: once the platform's edit rate allows, show the newest view."""
        await asyncio.sleep(wait)
        live.pending = None  # from here on no newer edit cancels this one mid-request
        await self._show(room, thread_id, job_id, live, force=True)
