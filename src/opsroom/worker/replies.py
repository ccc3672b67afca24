"""What a worker's jobs say in their rooms, kept in the store in batches (SPEC §8).

Every job a worker runs sends its replies (live output, progress, its end) here. They are
written to the store in the order they were sent, many jobs' at a time: while one batch is
being written the next gathers, so a quiet worker writes each reply at once and a busy one
writes one transaction for many. The transaction tells the bots (one notice per job), so
they pass the replies on as soon as they are kept.

A reply is queued the moment it is sent: a sender cancelled while it waits (a job's ticker
stopped as the job ends) loses nothing, and nothing overtakes it. A store that refuses is
retried with backoff until it takes the batch; only closing the worker gives up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsroom.errors import StoreError
from opsroom.retry import Backoff

if TYPE_CHECKING:
    from opsroom.store import Store

log = logging.getLogger("opsroom.worker")

BATCH_LIMIT = 500  # replies in one transaction at most
_RETRY = Backoff(first=0.1, cap=5.0, jitter=0)


@dataclass(frozen=True, slots=True)
class _Queued:
    job_id: int
    reply: Mapping[str, Any] | None  # None: the job's worker is done with it
    kept: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class ReplyWriter:
    """Keeps the replies of every job of one worker, in order, in batches."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: list[_Queued] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # transactions written (for the benchmark's curiosity)

    async def send(self, job_id: int, reply: Mapping[str, Any] | None) -> None:
        """Keep one reply of `job_id` (None: the worker is done); returns once it is kept."""
        queued = _Queued(job_id, reply)
        self._queue.append(queued)  # queued before the first await: a cancel loses nothing
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())
        await asyncio.shield(queued.kept)

    async def close(self) -> None:
        """Write what is queued (while the store takes it), then stop."""
        if self._writer is not None and not self._writer.done():
            await self._writer

    async def _write(self) -> None:
        """Write batches until the queue is empty."""
        while self._queue:
            batch, self._queue = self._queue[:BATCH_LIMIT], self._queue[BATCH_LIMIT:]
            rows = [(q.job_id, q.reply) for q in batch]
            for delay in _RETRY.delays():
                try:
                    await self.store.add_job_replies(rows)
                    break
                except StoreError as e:
                    log.warning("could not keep %d replies yet (%s); retrying", len(rows), e)
                    await asyncio.sleep(delay)
            self.batches += 1
            for queued in batch:
                if not queued.kept.done():
                    queued.kept.set_result(None)
