"""What the web app works with: the engine, the room hub, metrics, and the tasks it started."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsroom.adapters.web import Published, WebChatAdapter
from opsroom.model.blocks import Reply, Status
from opsroom.model.jobs import Job
from opsroom.web.hub import Hub
from opsroom.web.metrics import Metrics

if TYPE_CHECKING:
    from opsroom.app import App
    from opsroom.engine.bridge import Bridge
    from opsroom.engine.dispatch import Send
    from opsroom.router.outcome import Outcome
    from opsroom.web.chat import WebChatBridge

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
    chat: WebChatAdapter = field(init=False)  # the web chat, fed by `say`

    def __post_init__(self) -> None:
        self.chat = WebChatAdapter(self.hub)
        self.metrics.adapter_connected.labels("web").set(1)

    def start_chat(self) -> WebChatBridge:
        """The web chat's bridge (run it as a task): messages said here reach the engine."""
        from opsroom.web.chat import WebChatBridge

        bridge = WebChatBridge(
            self.chat,
            self.engine.dispatcher,
            spawn=self.spawn,
            notices=self.engine.interrupted_notices,
            notice=_interrupted,
            observe=self.observe,
        )
        self.bridges[self.chat.name] = bridge
        return bridge

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
    ) -> tuple[Published, asyncio.Future[Outcome]]:
        """A person's message: echoed to the room, then handled by the web chat's bridge.

        The future resolves with the outcome; without a running bridge (`start_chat`,
        done by `opsroom serve`) the message only waits in the adapter.
        """
        self.metrics.messages.labels(principal.split(":", 1)[0]).inc()
        echo, inbound = await self.chat.post(principal, room, text, display_name=display_name)
        from opsroom.web.chat import WebChatBridge

        bridge = self.bridges.get(self.chat.name)
        if not isinstance(bridge, WebChatBridge):
            return echo, asyncio.get_running_loop().create_future()
        return echo, bridge.expect(inbound)

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
