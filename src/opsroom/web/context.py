"""What the web app works with: the engine, the room hub, metrics, and the tasks it started."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsroom.model.blocks import Reply, Status
from opsroom.model.jobs import Job
from opsroom.model.messages import Inbound
from opsroom.web.hub import Hub
from opsroom.web.metrics import Metrics

if TYPE_CHECKING:
    from opsroom.app import App
    from opsroom.bridge import Bridge
    from opsroom.router.dispatch import Send
    from opsroom.router.outcome import Outcome
    from opsroom.store.web import WebMessage

log = logging.getLogger("opsroom.web")

CONSOLE_ROOM = "web:console"  # the room of actions taken from console pages (cancel, ...)


@dataclass(eq=False)
class WebContext:
    """The serving process as the web app sees it."""

    engine: App
    hub: Hub
    metrics: Metrics = field(default_factory=Metrics)
    heartbeat: float = 15.0  # seconds of quiet before an SSE comment keeps the stream open
    accepting: bool = True  # False once shutdown began: new messages get 503
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    bridges: dict[str, Bridge] = field(default_factory=dict)  # chat adapters by name

    def __post_init__(self) -> None:
        self.metrics.adapter_connected.labels("web").set(1)

    @property
    def store(self) -> Any:
        """The engine's store."""
        return self.engine.store

    def sender_for(self, room: str) -> Send:
        """Where replies for `room` go: its chat adapter, or the web chat's hub."""
        bridge = self.bridges.get(room.partition(":")[0])
        if bridge is not None:
            return bridge.sender(room, None)

        async def send(reply: Reply) -> None:
            await self.hub.publish_reply(room, reply)

        return send

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run `coro` in the background; shutdown waits for (then cancels) these tasks."""
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("background task failed", exc_info=error)

    async def say(
        self, principal: str, room: str, text: str, *, display_name: str = ""
    ) -> tuple[WebMessage, asyncio.Task[Outcome]]:
        """A person's message: echoed to the room, then dispatched in the background."""
        self.metrics.messages.labels(principal.split(":", 1)[0]).inc()
        echo = await self.hub.publish_text(room, author=principal, text=text)
        inbound = Inbound(text=text, principal=principal, room=room, display_name=display_name)
        return echo, self.spawn(self._handle(inbound))

    async def _handle(self, inbound: Inbound) -> Outcome:
        send = self.sender_for(inbound.room)
        for job in await self.engine.interrupted_notices(inbound.principal):
            await send(_interrupted(job))
        outcome = await self.engine.dispatcher.handle(inbound, send)
        await self.observe(outcome)
        return outcome

    async def observe(self, outcome: Outcome) -> None:
        """Count an outcome, and the duration of the job it ended."""
        self.metrics.commands.labels(outcome.outcome).inc()
        if outcome.job_id is None or outcome.state is None or not outcome.state.finished:
            return
        job = await self.engine.store.get_job(outcome.job_id)
        if job is not None and job.duration is not None:
            self.metrics.job_duration.labels(job.state.value).observe(job.duration)


def _interrupted(job: Job) -> Reply:
    """The one-time notice that a job of yours was interrupted (SPEC §5.5)."""
    text = (
        f"job {job.id} {job.command} was interrupted: the opsroom process running it "
        "stopped. It was not re-run; its leftover processes were ended."
    )
    return Reply((Status(text, "warning"),), job_id=job.id, kind="notice")
