"""Replies wait here while a chat platform is unreachable, and go out once it is back.

Every reply the bridge posts or edits goes through one adapter's `Outbox`. When the adapter
raises `AdapterUnavailable` the reply is kept — in the store when one is given (it then
survives a restart of opsroom and is delivered by whichever process serves next), else in
memory — and a job's live view replaces the older views of the same job, so a platform
that comes back after an hour gets the job's last state, not every progress step. Kept
replies are delivered oldest first before anything new, each exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from opsroom.adapters.base import AdapterUnavailable, ChatAdapter, ConnectionState, MessageRef
from opsroom.errors import StoreError
from opsroom.model.blocks import Reply
from opsroom.model.wire import dump_reply, load_reply
from opsroom.tasks import raise_if_cancelled

if TYPE_CHECKING:
    from opsroom.store.outbox import KeptReply

__all__ = ["OUTBOX_LIMIT", "REDELIVER_EVERY", "KeptReplies", "Outbox"]

log = logging.getLogger("opsroom.bridge")

OUTBOX_LIMIT = 500  # replies held in memory per adapter; the oldest go first beyond it
REDELIVER_EVERY = 2.0  # seconds between checks for a reconnect while replies wait
FLUSH_BATCH = 50


class KeptReplies(Protocol):
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


@dataclass(frozen=True, slots=True)
class _Queued:
    room: str
    thread_id: str | None
    reply: Reply
    live: bool


class Outbox:
    """One adapter's way out: post and edit now, or keep the reply until the platform is back."""

    def __init__(
        self,
        adapter: ChatAdapter,
        *,
        kept: KeptReplies | None = None,
        redeliver_every: float = REDELIVER_EVERY,
    ) -> None:
        self.adapter = adapter
        self._memory: deque[_Queued] = deque()  # without a store, or when it fails
        self._kept = kept
        self._kept_count = 0  # replies waiting in `kept`, as last counted
        self._redeliver_every = redeliver_every
        self._flushing = False

    @property
    def waiting(self) -> int:
        """Replies held (in memory and in the store)."""
        return len(self._memory) + self._kept_count

    async def post(
        self, room: str, thread_id: str | None, reply: Reply, *, live: bool = False
    ) -> MessageRef | None:
        """Send after what waits; None when the reply was kept for later instead."""
        try:
            await self.flush()
            return await self.adapter.send(room, reply, thread_id=thread_id)
        except AdapterUnavailable:
            await self._keep(room, thread_id, reply, live=live)
            return None

    async def edit(self, ref: MessageRef, reply: Reply, *, live: bool = False) -> None:
        """Edit a message in place, or keep the new content to be sent once back."""
        try:
            await self.adapter.edit(ref, reply)
        except AdapterUnavailable:
            await self._keep(ref.room, ref.thread_id, reply, live=live)

    async def flush(self) -> None:
        """Deliver what waited while the platform was unreachable, oldest first."""
        if self._flushing or not self.waiting:
            return
        self._flushing = True
        try:
            while self._memory:
                queued = self._memory[0]
                await self.adapter.send(queued.room, queued.reply, thread_id=queued.thread_id)
                self._memory.popleft()
            if self._kept is not None:
                await self._flush_kept(self._kept)
        finally:
            self._flushing = False
            await self.recount()

    async def recount(self) -> None:
        """Count what the store holds for this adapter (an earlier run's replies too)."""
        if self._kept is None:
            return
        try:
            self._kept_count = await self._kept.outbox_count(self.adapter.name)
        except StoreError:
            log.exception("could not count the replies kept in the store")

    async def redeliver_forever(self) -> None:
        """Deliver kept replies soon after the platform is reachable again (run as a task)."""
        while True:
            await asyncio.sleep(self._redeliver_every)
            if self.adapter.state is not ConnectionState.CONNECTED or not self.waiting:
                continue
            try:
                await self.flush()
            except AdapterUnavailable:
                pass  # gone again; the next round retries
            except Exception:
                raise_if_cancelled()
                log.exception("could not deliver the kept replies")

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
                await self.recount()
                return
            except StoreError:
                log.exception("could not keep a reply in the store; holding it in memory")
        if live and reply.job_id is not None:
            for queued in list(self._memory):
                if queued.live and queued.room == room and queued.reply.job_id == reply.job_id:
                    self._memory.remove(queued)
        self._memory.append(_Queued(room, thread_id, reply, live))
        while len(self._memory) > OUTBOX_LIMIT:
            self._memory.popleft()

    async def _flush_kept(self, kept: KeptReplies) -> None:
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
