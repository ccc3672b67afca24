"""The bridge between chat adapters and the dispatcher (SPEC §4.4, §5.2).

For every inbound message it calls the dispatcher with a `send` that knows the room and
thread, and it shapes job replies for the platform: where messages can be edited, one
status message per job is edited in place (throttled to the platform's edit rate); where
they cannot, replies arrive as separate messages and live progress is thinned out. While
the platform is unreachable, replies wait in an outbox and are delivered — intermediate
progress summarised away — once the adapter reconnects. Given an outbox service (the
store), what waits is kept there and survives a restart of opsroom. Like `app.py`, this
module wires rooms together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from opsroom.adapters.base import (
    AdapterServices,
    AdapterUnavailable,
    ChatAdapter,
    ConnectionState,
    Event,
    Interaction,
    MessageRef,
)
from opsroom.config import Settings
from opsroom.engine.dispatch import Dispatcher
from opsroom.errors import ConfigError, StoreError
from opsroom.model.blocks import Block, Code, Progress, Reply, Status
from opsroom.model.messages import Inbound
from opsroom.model.wire import dump_reply, load_reply
from opsroom.router.outcome import Outcome

if TYPE_CHECKING:
    from opsroom.store.outbox import KeptReply

log = logging.getLogger("opsroom.bridge")

Send = Callable[[Reply], Awaitable[None]]
LIVE_KINDS = frozenset({"job", "progress", "output"})
LIVE_TAIL = 15  # output lines kept in a live status message
OUTBOX_LIMIT = 500
REDELIVER_EVERY = 2.0  # seconds between checks for a reconnect while replies wait
FLUSH_BATCH = 50


class Outbox(Protocol):
    """Where replies wait while a platform is unreachable (the store satisfies it)."""

    async def outbox_put(
        self,
        adapter: str,
        room: str,
        thread_id: str | None,
        reply: Mapping[str, Any],
        *,
        job_id: int | None = None,
        live: bool = False,
    ) -> int:
        """Keep a reply; a live view replaces the older views of its job in the room."""
        ...

    async def outbox_pending(self, adapter: str, *, limit: int = 100) -> Sequence[KeptReply]:
        """Replies waiting for `adapter`, oldest first."""
        ...

    async def outbox_count(self, adapter: str) -> int:
        """How many replies wait for `adapter`."""
        ...

    async def outbox_done(self, ids: Collection[int]) -> None:
        """Forget delivered replies."""
        ...


@dataclass(slots=True)
class _Live:
    """One job's status message, edited in place as the job runs."""

    ref: MessageRef | None = None
    status: list[Block] = field(default_factory=list)
    progress: Progress | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=LIVE_TAIL))
    seen: int = 0  # output lines the job printed so far, shown or left out
    link: str | None = None  # where its full log is
    final: Reply | None = None
    last_edit: float = 0.0
    pending: asyncio.TimerHandle | None = None
    last_plain_progress: float = 0.0

    def view(self, job_id: int) -> Reply:
        """What the status message shows now."""
        if self.final is not None:
            return self.final
        blocks: list[Block] = list(self.status)
        if self.progress is not None:
            blocks.append(self.progress)
        if self.tail:
            blocks.append(self.code())
        return Reply(tuple(blocks), job_id=job_id, kind="job")

    def code(self) -> Code:
        """The last lines, and how many more the full log holds."""
        return Code(tuple(self.tail), more=max(0, self.seen - len(self.tail)), link=self.link)

    def add_output(self, block: Code) -> None:
        """Lines of a live batch or of the final reply, and the count left out before them."""
        self.tail.extend(block.lines)
        self.seen += block.more + len(block.lines)
        self.link = block.link or self.link


@dataclass(frozen=True, slots=True)
class _Queued:
    room: str
    thread_id: str | None
    reply: Reply
    live: bool


class Bridge:
    """Connects one adapter to the dispatcher."""

    def __init__(
        self,
        adapter: ChatAdapter,
        dispatcher: Dispatcher,
        *,
        outbox: Outbox | None = None,
        redeliver_every: float = REDELIVER_EVERY,
    ) -> None:
        self.adapter = adapter
        self.dispatcher = dispatcher
        self.prefix = dispatcher.ctx.settings.bot.prefix
        self._tasks: set[asyncio.Future[Outcome | None] | asyncio.Future[None]] = set()
        self._outbox: deque[_Queued] = deque()  # in memory: without a store, or when it fails
        self._kept = outbox
        self._kept_count = 0  # replies waiting in `outbox`, as last counted
        self._redeliver_every = redeliver_every
        self._flushing = False

    async def run(self) -> None:
        """Connect and handle events until cancelled; deliver what waits once connected."""
        await self._recount()  # what an earlier run kept is delivered too
        watcher = asyncio.create_task(self._redeliver())
        self._tasks.add(watcher)
        watcher.add_done_callback(self._tasks.discard)
        await self.adapter.connect()
        async for event in self.adapter.events():
            task = asyncio.create_task(self.handle(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop: wait briefly for handlers, then close the adapter."""
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
                await self._post(room, thread_id, reply)
                return
            live = lives.setdefault(reply.job_id, _Live())
            final = _is_final(reply)
            if caps.edits:
                _absorb(live, reply, final)
                await self._show(
                    room, thread_id, reply.job_id, live, force=final or live.ref is None
                )
                return
            # No edits: job messages go out as they come, live progress thinned out.
            if reply.kind == "progress":
                now = time.monotonic()
                if now - live.last_plain_progress < caps.progress_every:
                    return
                live.last_plain_progress = now
            await self._post(room, thread_id, reply, live=reply.kind == "progress")

        return send

    async def _show(
        self, room: str, thread_id: str | None, job_id: int, live: _Live, *, force: bool
    ) -> None:
        """Create or edit the job's status message, at most at the platform's edit rate."""
        if live.ref is None:
            live.ref = await self._post(room, thread_id, live.view(job_id), live=True)
            live.last_edit = time.monotonic()
            return
        gap = 1.0 / max(self.adapter.capabilities.edits_per_second, 0.01)
        wait = live.last_edit + gap - time.monotonic()
        if force or wait <= 0:
            if live.pending is not None:
                live.pending.cancel()
                live.pending = None
            await self._edit(live.ref, live.view(job_id), live=True)
            live.last_edit = time.monotonic()
        elif live.pending is None:
            loop = asyncio.get_running_loop()

            def later() -> None:
                live.pending = None
                task = asyncio.ensure_future(self._show(room, thread_id, job_id, live, force=True))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

            live.pending = loop.call_later(wait, later)

    async def _post(
        self, room: str, thread_id: str | None, reply: Reply, *, live: bool = False
    ) -> MessageRef | None:
        try:
            await self.flush_outbox()
            return await self.adapter.send(room, reply, thread_id=thread_id)
        except AdapterUnavailable:
            await self._keep(room, thread_id, reply, live=live)
            return None

    async def _edit(self, ref: MessageRef, reply: Reply, *, live: bool = False) -> None:
        try:
            await self.adapter.edit(ref, reply)
        except AdapterUnavailable:
            await self._keep(ref.room, ref.thread_id, reply, live=live)

    async def _keep(self, room: str, thread_id: str | None, reply: Reply, *, live: bool) -> None:
        """Hold a reply until the platform is back; a job's live view replaces older ones."""
        if self._kept is not None:
            try:
                await self._kept.outbox_put(
                    self.adapter.name,
                    room,
                    thread_id,
                    dump_reply(reply),
                    job_id=reply.job_id,
                    live=live,
                )
                await self._recount()
                return
            except StoreError:
                log.exception("could not keep a reply in the store; holding it in memory")
        if live and reply.job_id is not None:
            for queued in list(self._outbox):
                if queued.live and queued.room == room and queued.reply.job_id == reply.job_id:
                    self._outbox.remove(queued)
        self._outbox.append(_Queued(room, thread_id, reply, live))
        while len(self._outbox) > OUTBOX_LIMIT:
            self._outbox.popleft()

    async def flush_outbox(self) -> None:
        """Deliver what waited while the platform was unreachable, oldest first."""
        if self._flushing or not self.waiting:
            return
        self._flushing = True
        try:
            while self._outbox:
                queued = self._outbox[0]
                await self.adapter.send(queued.room, queued.reply, thread_id=queued.thread_id)
                self._outbox.popleft()
            if self._kept is not None:
                await self._flush_kept(self._kept)
        finally:
            self._flushing = False
            await self._recount()

    async def _flush_kept(self, kept: Outbox) -> None:
        while batch := await kept.outbox_pending(self.adapter.name, limit=FLUSH_BATCH):
            for row in batch:
                try:
                    reply = load_reply(row.reply)
                except ValueError:
                    log.exception(
                        "dropped a kept reply that could not be read", extra={"id": row.id}
                    )
                else:
                    await self.adapter.send(row.room, reply, thread_id=row.thread_id)
                # One by one: a reply delivered is never delivered again, even if the
                # next send finds the platform gone.
                await kept.outbox_done([row.id])

    async def _recount(self) -> None:
        if self._kept is None:
            return
        try:
            self._kept_count = await self._kept.outbox_count(self.adapter.name)
        except StoreError:
            log.exception("could not count the replies kept in the store")

    async def _redeliver(self) -> None:
        """Deliver kept replies soon after the platform is reachable again."""
        while True:
            await asyncio.sleep(self._redeliver_every)
            if self.adapter.state is not ConnectionState.CONNECTED or not self.waiting:
                continue
            try:
                await self.flush_outbox()
            except AdapterUnavailable:
                pass  # gone again; the next round retries
            except Exception:
                log.exception("could not deliver the kept replies")

    @property
    def waiting(self) -> int:
        """Replies held in the outbox (in memory and in the store)."""
        return len(self._outbox) + self._kept_count


def _is_final(reply: Reply) -> bool:
    """The job's last reply ends with its outcome (a success or error status)."""
    return (
        reply.kind == "job"
        and bool(reply.blocks)
        and isinstance(reply.blocks[-1], Status)
        and reply.blocks[-1].level in ("success", "error")
    )


def _absorb(live: _Live, reply: Reply, final: bool) -> None:
    if final:
        # The last lines shown live stay; the outcome, tables and files join them, and
        # "N more lines" counts every line the message no longer shows.
        for block in reply.blocks:
            if isinstance(block, Code):
                live.add_output(block)
        rest = tuple(b for b in reply.blocks if not isinstance(b, Code))
        code = (live.code(),) if live.tail else ()
        live.final = Reply((*code, *rest), job_id=reply.job_id, kind="job")
        return
    for block in reply.blocks:
        if isinstance(block, Progress):
            live.progress = block
        elif isinstance(block, Code):
            live.add_output(block)
        elif isinstance(block, Status):
            live.status = [block]


ADAPTER_MODULES = {
    "slack": "opsroom.adapters.slack",
    "matrix": "opsroom.adapters.matrix",
    "irc": "opsroom.adapters.irc",
    "teams": "opsroom.adapters.teams",
    "mattermost": "opsroom.adapters.mattermost",
    "discord": "opsroom.adapters.discord",
}


def create_adapters(settings: Settings, services: AdapterServices) -> list[ChatAdapter]:
    """One adapter per `[adapters.<name>]` table; ConfigError for an unknown platform."""
    import importlib

    adapters = []
    for name, table in settings.adapters.items():
        module_name = ADAPTER_MODULES.get(name)
        if module_name is None:
            known = ", ".join(sorted(ADAPTER_MODULES))
            raise ConfigError(f"adapters.{name}: unknown chat platform (known: {known})")
        module = importlib.import_module(module_name)
        adapters.append(module.create(table, settings, services=services))
    return adapters


def engine_services(dispatcher: Dispatcher) -> AdapterServices:
    """The store and policy services an adapter may use, from the serving engine."""
    from opsroom.policy.rbac import roles_of

    settings = dispatcher.ctx.settings

    async def may_invite(principal: str) -> bool:
        groups = await dispatcher.groups.groups_of(principal)
        return bool(roles_of(principal, settings, groups=groups))

    return AdapterServices(
        first_delivery=dispatcher.ctx.store.first_delivery, may_invite=may_invite
    )
