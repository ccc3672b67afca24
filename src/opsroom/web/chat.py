"""The web chat's bridge: the shared `Bridge`, plus what the web app needs back from it.

People's messages reach the dispatcher through `WebChatAdapter.events()` like any chat
platform's. The web app still wants each message's outcome (`POST /messages?wait=true`,
metrics) and drains the jobs it started on shutdown, so handlers run as the web
context's tracked tasks and resolve the future `WebContext.say` handed out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from opsroom.adapters.base import Event, Interaction
from opsroom.adapters.web import WebChatAdapter
from opsroom.engine.bridge import Bridge
from opsroom.engine.dispatch import Dispatcher
from opsroom.model.blocks import Reply
from opsroom.model.jobs import Job
from opsroom.router.outcome import Outcome

Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]


class WebChatBridge(Bridge):
    """A `Bridge` for the web chat whose handlers report their outcome."""

    def __init__(
        self,
        adapter: WebChatAdapter,
        dispatcher: Dispatcher,
        *,
        spawn: Spawn,
        notices: Callable[[str], Awaitable[list[Job]]],
        notice: Callable[[Job], Reply],
        observe: Callable[[Outcome], Awaitable[None]],
    ) -> None:
        super().__init__(adapter, dispatcher)
        self.web = adapter
        self._spawn = spawn
        self._notices = notices
        self._notice = notice
        self._observe = observe
        # Keyed by the event object itself: two identical messages are still two.
        self._waiting: dict[int, tuple[Event, asyncio.Future[Outcome]]] = {}

    def expect(self, event: Event) -> asyncio.Future[Outcome]:
        """A future for the outcome of `event`, resolved when the bridge handled it."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting[id(event)] = (event, future)
        return future

    async def run(self) -> None:
        """Handle events as tracked tasks of the web app (shutdown drains them)."""
        await self.adapter.connect()
        async for event in self.adapter.events():
            self._spawn(self.handle(event))

    async def handle(self, event: Event) -> Outcome | None:
        """Notices first, then the message; the outcome goes to whoever waits for it."""
        _, future = self._waiting.pop(id(event), (None, None))
        try:
            if not isinstance(event, Interaction):
                send = self.sender(event.room, None)
                for job in await self._notices(event.principal):
                    await send(self._notice(job))
            outcome = await super().handle(event)
        except BaseException as e:
            if future is not None and not future.done():
                if isinstance(e, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(e)
                    future.exception()  # retrieved: nobody may be waiting (wait=false)
            raise
        if outcome is not None:
            await self._observe(outcome)
            if future is not None and not future.done():
                future.set_result(outcome)
        elif future is not None and not future.done():
            future.cancel()
        return outcome
