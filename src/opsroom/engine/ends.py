"""Waiting for a job's end (for `cancel`): woken by the end itself, not by a fixed poll.

A job this process runs ends through its supervisor, which wakes whoever waits the moment
its end is stored (`Supervisor.wait_for_end`). A job run elsewhere — by a worker, another
bot, another `opsroom run` — is watched in the store: on PostgreSQL its end's notice
(`Topic.END`) wakes the wait, with a look every `[workers] recheck` for a notice missed;
SQLite has no notices, so there the store is looked at soon and then less often.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opsroom.errors import StoreError
from opsroom.model.jobs import Job, JobState
from opsroom.retry import Backoff
from opsroom.store.notify import Topic, Waiter

if TYPE_CHECKING:
    from opsroom.engine.supervisor import Supervisor
    from opsroom.store import Store

# Without notices (a SQLite store without its doorbell): a job that ends at once is seen
# within 10 ms; one that takes its time costs 4 looks a second at most (its owner looks for
# the request every 0.5 s).
LOOK_AGAIN = Backoff(first=0.01, cap=0.25, jitter=0)


async def watch_end(store: Store, job_id: int, timeout: float, *, recheck: float) -> Job | None:
    """The job once the store has its end, or None when it has not ended within `timeout` s.

    `recheck`: between looks where the end's notice wakes the wait earlier (PostgreSQL's, or
    a SQLite store's doorbell). A store that is briefly away is looked at again, until the
    time is up.
    """
    listener = store.listener
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    watching: contextlib.AbstractContextManager[Waiter] = (
        contextlib.nullcontext(Waiter()) if listener is None else listener.watch(job_id, Topic.END)
    )
    delays = LOOK_AGAIN.delays()
    with watching as waiter:
        while True:
            waiter.clear()  # before the look: an end stored after it wakes the wait
            with contextlib.suppress(StoreError):  # away a moment: the next look tries again
                job = await store.get_job(job_id)
                if job is not None and job.state.finished:
                    return job
            left = deadline - loop.time()
            if left <= 0:
                return None
            await waiter.wait(min(left, next(delays) if listener is None else recheck))


@dataclass(frozen=True, slots=True)
class BuiltinJobs:
    """The jobs as the built-ins see them (`router.builtins.JobReader`): the store, and this
    process's supervisor for the jobs it runs itself."""

    store: Store
    supervisor: Supervisor

    async def list_jobs(
        self,
        *,
        limit: int = 50,
        states: Sequence[JobState] | None = None,
        requester: str | None = None,
    ) -> list[Job]:
        """Jobs, newest first."""
        return await self.store.list_jobs(limit=limit, states=states, requester=requester)

    async def get_job(self, job_id: int) -> Job | None:
        """One job or None."""
        return await self.store.get_job(job_id)

    async def output(self, job_id: int, *, tail: int | None = None) -> list[tuple[str, str]]:
        """(stream, text) lines of a job."""
        return await self.store.output(job_id, tail=tail)

    async def attachments(self, job_id: int) -> list[tuple[int, str, str, int]]:
        """(id, name, content type, size) of a job's files."""
        return await self.store.attachments(job_id)

    async def request_cancel(self, job_id: int, *, by: str) -> Job:
        """Record the cancel request; a job running in this process is stopped at once.

        Other processes act on the stored request (woken by its notice, or at their next
        look); this one need not wait for its own look at the store.
        """
        job = await self.store.request_cancel(job_id, by=by)
        if job.state is JobState.RUNNING:
            # The first asker stands, as the store keeps it.
            self.supervisor.stop(job_id, by=job.cancel_requested_by or by)
        elif job.state is JobState.CANCELLED:
            self.supervisor.dequeue(job_id)  # if it waits in this process's line
        return job

    async def wait_for_end(self, job_id: int, timeout: float) -> Job | None:
        """The job once it has ended, or None when it has not within `timeout` seconds."""
        return await self.supervisor.wait_for_end(job_id, timeout)
