"""One writer for the output of every running job: a transaction per interval, not per line.

With hundreds of jobs printing at once, a write per job per batch would queue on the
database's single write lock. Lines are gathered here and kept in one transaction every
half second (or sooner when many are waiting), in the order they arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from opsroom.errors import StoreError
from opsroom.retry import Backoff

if TYPE_CHECKING:
    from opsroom.store import Store

FLUSH_SECONDS = 0.5
MAX_PENDING = 20_000  # lines waiting before a producer writes them itself (bounded memory)
RETRY_MAX_SECONDS = 5.0  # between attempts while the store refuses writes
_STORE_RETRY = Backoff(first=2 * FLUSH_SECONDS, cap=RETRY_MAX_SECONDS, jitter=0)

log = logging.getLogger("opsroom.jobs")


class OutputWriter:
    """Buffers (stream, text) lines per job and keeps them in the store in batches."""

    def __init__(self, store: Store, *, cap_bytes: int) -> None:
        self.store = store
        self.cap_bytes = cap_bytes
        self._pending: dict[int, list[tuple[str, str]]] = {}
        self._count = 0
        self._full: set[int] = set()  # jobs whose kept output reached the cap
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._inflight: asyncio.Future[set[int]] | None = None

    def keeping(self, job_id: int) -> bool:
        """False once the job's stored output reached the cap."""
        return job_id not in self._full

    async def add(self, job_id: int, stream: str, text: str) -> None:
        """Queue one line of a job for the store."""
        self._pending.setdefault(job_id, []).append((stream, text))
        self._count += 1
        if self._count >= MAX_PENDING and self._count % MAX_PENDING == 0:
            # Written by the producer itself: a flood waits for the store instead of growing
            # memory. While the store refuses, lines stay queued and are retried below.
            with contextlib.suppress(StoreError):
                await self.flush()
        if self._pending and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._later())

    async def flush(self) -> None:
        """Keep everything queued so far, in one transaction, in arrival order."""
        async with self._lock:
            if self._inflight is not None:
                # A write whose caller was cancelled is still going: let it land first.
                await asyncio.shield(self._inflight)
            if not self._pending:
                return
            batches, self._pending, self._count = self._pending, {}, 0
            # Shielded: a caller cancelled mid-write must not lose lines already taken.
            self._inflight = asyncio.ensure_future(
                self.store.record_outputs(batches, cap_bytes=self.cap_bytes)
            )
            self._inflight.add_done_callback(self._landed)
            try:
                await asyncio.shield(self._inflight)
            except StoreError:
                self._requeue(batches)
                raise

    def _requeue(self, batches: dict[int, list[tuple[str, str]]]) -> None:
        """Put lines the store refused back in front of those that arrived meanwhile."""
        for job_id, lines in batches.items():
            self._pending[job_id] = lines + self._pending.get(job_id, [])
        self._count = sum(len(lines) for lines in self._pending.values())

    def _landed(self, task: asyncio.Future[set[int]]) -> None:
        if task is self._inflight:
            self._inflight = None
        if not task.cancelled() and task.exception() is None:
            self._full |= task.result()

    def forget(self, job_id: int) -> None:
        """The job has ended and its lines were flushed."""
        self._full.discard(job_id)

    async def close(self) -> None:
        """Write what is left and stop the timer."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _later(self) -> None:
        await asyncio.sleep(FLUSH_SECONDS)
        for wait in _STORE_RETRY.delays():
            try:
                await self.flush()
                return
            except StoreError as e:
                # Kept queued (see flush); tried again, less often, until the store is back.
                log.warning("could not keep job output yet (%s); retrying", e)
            await asyncio.sleep(wait)
