"""One writer for the output of every running job: a transaction per interval, not per line.

With hundreds of jobs printing at once, a write per job per batch would queue on the
database's single write lock. Lines are gathered here and kept in one transaction every
half second (or sooner when many are waiting), in the order they arrived. The pids of jobs
started meanwhile ride along (informational: a job is found by its token). A pid is written
without lines only once its job has run FLUSH_SECONDS; a job that ends sooner records it
with its end — so a short job's pid never costs a transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from opsroom.errors import StoreError
from opsroom.retry import Backoff
from opsroom.tasks import stop_task

if TYPE_CHECKING:
    from opsroom.store import Store

FLUSH_SECONDS = 0.5
MAX_PENDING = 20_000  # lines waiting before a producer writes them itself (bounded memory)
RETRY_MAX_SECONDS = 5.0  # between attempts while the store refuses writes
_STORE_RETRY = Backoff(first=2 * FLUSH_SECONDS, cap=RETRY_MAX_SECONDS, jitter=0)

log = logging.getLogger("opsroom.jobs")
T = TypeVar("T")


class OutputWriter:
    """Buffers (stream, text) lines per job and keeps them in the store in batches."""

    def __init__(self, store: Store, *, cap_bytes: int) -> None:
        self.store = store
        self.cap_bytes = cap_bytes
        self._pending: dict[int, list[tuple[str, str]]] = {}
        # job id: (its process, when it started), not yet recorded
        self._pids: dict[int, tuple[int, float]] = {}
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
        self._schedule()

    def note_pid(self, job_id: int, pid: int) -> None:
        """Record a started job's process with the next batch (or with the job's end)."""
        self._pids[job_id] = (pid, time.monotonic())
        self._schedule()

    def _schedule(self) -> None:
        if (self._pending or self._pids) and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._later())

    async def flush(self, *, all_pids: bool = True) -> None:
        """Keep everything queued so far, in one transaction, in arrival order.

        Without `all_pids`, pids of jobs younger than FLUSH_SECONDS are kept only when
        lines are written anyway: such a job may still end first and take its pid along.
        """
        async with self._lock:
            if self._inflight is not None:
                # A write whose caller was cancelled is still going: let it land first.
                await asyncio.shield(self._inflight)
            pids = self._pids if all_pids or self._pending else self._due_pids()
            if not self._pending and not pids:
                return
            batches, self._pending, self._count = self._pending, {}, 0
            self._pids = {i: noted for i, noted in self._pids.items() if i not in pids}
            kept = {i: pid for i, (pid, _) in pids.items()}
            # Shielded: a caller cancelled mid-write must not lose lines already taken.
            self._inflight = asyncio.ensure_future(
                self.store.record_outputs(batches, cap_bytes=self.cap_bytes, pids=kept)
            )
            self._inflight.add_done_callback(self._landed)
            try:
                await asyncio.shield(self._inflight)
            except StoreError:
                self._requeue(batches, pids)
                raise

    async def end(
        self, job_id: int, write: Callable[[list[tuple[str, str]], int | None], Awaitable[T]]
    ) -> T:
        """Run `write` with the ended job's lines not yet kept (and its pid, when not
        recorded yet: else None), for its own transaction.

        So a job's last lines cost no write of their own: they are kept with its end. A
        write already carrying earlier lines of the job lands first (order). Lines `write`
        did not keep go back to the queue, where the next `end` (or `flush`) takes them.
        Shielded as `flush` is: a caller cancelled meanwhile loses nothing.
        """
        async with self._lock:
            if self._inflight is not None:
                await asyncio.shield(self._inflight)
            lines = self._pending.pop(job_id, [])
            self._count -= len(lines)
            noted = self._pids.pop(job_id, None)
        pid = None if noted is None else noted[0]
        attempt = asyncio.ensure_future(write(lines, pid))

        def landed(done: asyncio.Future[T]) -> None:
            # Runs before the caller resumes: a retry finds the lines (and pid) queued again.
            if (lines or noted is not None) and (done.cancelled() or done.exception() is not None):
                self._requeue(
                    {job_id: lines} if lines else {}, {} if noted is None else {job_id: noted}
                )

        attempt.add_done_callback(landed)
        return await asyncio.shield(attempt)

    def _requeue(
        self, batches: dict[int, list[tuple[str, str]]], pids: dict[int, tuple[int, float]]
    ) -> None:
        """Put lines the store refused back in front of those that arrived meanwhile."""
        for job_id, lines in batches.items():
            self._pending[job_id] = lines + self._pending.get(job_id, [])
        self._count = sum(len(lines) for lines in self._pending.values())
        self._pids = {**pids, **self._pids}

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
        await stop_task(self._task)
        await self.flush()

    def _due_pids(self) -> dict[int, tuple[int, float]]:
        """The pids of jobs that have run FLUSH_SECONDS or more."""
        due = time.monotonic() - FLUSH_SECONDS
        return {i: noted for i, noted in self._pids.items() if noted[1] <= due}

    async def _later(self) -> None:
        delay = FLUSH_SECONDS
        while True:
            await asyncio.sleep(delay)
            for wait in _STORE_RETRY.delays():
                try:
                    await self.flush(all_pids=False)
                    break
                except StoreError as e:
                    # Kept queued (see flush); tried again, less often, until the store is back.
                    log.warning("could not keep job output yet (%s); retrying", e)
                await asyncio.sleep(wait)
            if self._pending:  # arrived while the batch was written
                delay = FLUSH_SECONDS
            elif self._pids:  # jobs still young: looked at again once the first is due
                oldest = min(noted for _, noted in self._pids.values())
                delay = max(oldest + FLUSH_SECONDS - time.monotonic(), 0.0)
            else:
                return
