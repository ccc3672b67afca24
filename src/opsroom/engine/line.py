"""The line of this process's queued jobs (SPEC §5.5): each starts as soon as its turn comes.

A queued job used to claim itself again every half second. 2,000 queued jobs made 4,000
claims a second, each counting the running jobs under the audit trail's lock: a burst of
3,000 jobs ran 31 a second (bench/README.md), and a job waited up to half a second after
its turn had come. Now one task tries the line, first in line first, when a turn may have
come: a job of this process ended (`kick`); another process's job ended or a cancel was
asked for (their notices: PostgreSQL's, or SQLite's doorbell, store/bell.py); and at a look
every `[workers] recheck` for a notice missed (every LOOK_SECONDS on a SQLite store whose
doorbell could not be had, where nothing tells of another process's end or cancel).

A round stops at the first job the overall limit holds, and once a requester's (or a
command's) job is held by its own limit it skips that requester's (command's) others: a
round costs a claim per job it starts and one per limit found full, not one per job in
line. Jobs cancelled while in line are found by one look at their states at each timed
round and each cancel notice; a cancel asked in this process ends the wait at once (`drop`).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opsroom.errors import StoreError
from opsroom.model.jobs import Job, JobState
from opsroom.store.notify import Topic, Waiter
from opsroom.tasks import stop_task

if TYPE_CHECKING:
    from opsroom.store import Claim, Limits, Store
    from opsroom.store.queue import Start

log = logging.getLogger("opsroom.jobs")

LOOK_SECONDS = 0.5  # without notices: between looks for what this process cannot see


@dataclass(frozen=True, slots=True)
class _Waiting:
    job: Job
    limits: Limits
    start: Start
    turn: asyncio.Future[Job | None]  # the claimed job, or None: it ended without starting


class _Cancels(Waiter):
    """Woken by a cancel's notice: the line looks at its jobs' states in its next round."""

    def __init__(self, line: Line) -> None:
        super().__init__()
        self._line = line

    def wake(self) -> None:
        """Ask the line to look (see `Line.look`)."""
        self._line.look()


class Line:
    """This process's queued jobs, each claimed in turn when a turn may have come."""

    def __init__(
        self,
        store: Store,
        owner: str,
        *,
        recheck: float,
        lost: Callable[[Job], Awaitable[object]],
    ) -> None:
        self._store = store
        self._owner = owner
        self._recheck = recheck
        # A job claimed for a wait given up meanwhile (its request cancelled): `lost` ends it.
        self._lost = lost
        self._waiting: dict[int, _Waiting] = {}
        self._order: list[int] = []  # job ids, first in line first (ids follow queue order)
        self._bell = Waiter()
        self._look = False
        self._task: asyncio.Task[None] | None = None
        self._ending: set[asyncio.Task[object]] = set()

    async def wait(self, claim: Claim, limits: Limits, start: Start) -> Job | None:
        """The job of `claim` (not claimed: held by a limit) once a round has claimed it, or
        None when it ended without starting (cancelled) while it waited."""
        job = claim.job
        turn: asyncio.Future[Job | None] = asyncio.get_running_loop().create_future()
        self._waiting[job.id] = _Waiting(job, limits, start, turn)
        bisect.insort(self._order, job.id)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        try:
            return await turn
        except asyncio.CancelledError:
            claimed = turn.result() if turn.done() and not turn.cancelled() else None
            if claimed is not None:
                self._end_lost(claimed)  # claimed as the wait was given up
            raise
        finally:
            del self._waiting[job.id]
            self._order.remove(job.id)

    def kick(self) -> None:
        """A turn may have come (a job of this process ended): a round, soon."""
        # Rung even with nobody in line: a job whose claim failed just before this end
        # and that is about to join the line finds the bell rung.
        self._bell.wake()

    def look(self) -> None:
        """A cancel was asked for somewhere: look at the states of the jobs in line."""
        self._look = True
        self._bell.wake()

    def drop(self, job_id: int) -> None:
        """A job in line was cancelled in this process: its wait ends now."""
        waiting = self._waiting.get(job_id)
        if waiting is not None and not waiting.turn.done():
            waiting.turn.set_result(None)

    async def close(self) -> None:
        """Stop trying the line (the waits stay; the process is going)."""
        task, self._task = self._task, None
        await stop_task(task)

    async def _run(self) -> None:
        listener = self._store.listener
        every = LOOK_SECONDS if listener is None else self._recheck
        with contextlib.ExitStack() as watching:
            if listener is not None:
                watching.enter_context(listener.watch(None, Topic.END, waiter=self._bell))
                watching.enter_context(listener.watch(None, Topic.CANCEL, waiter=_Cancels(self)))
            while self._waiting:
                if not await self._bell.wait(every):
                    self._look = True  # a timed round looks at the states too
                self._bell.clear()  # before the round: a kick during it makes another
                try:
                    await self._round()
                except StoreError as e:
                    log.warning("could not start queued jobs now (%s); trying again", e)
                except Exception as e:  # a fault, not the store away: the waits fail with it
                    log.exception("starting queued jobs failed")
                    for waiting in self._waiting.values():
                        if not waiting.turn.done():
                            waiting.turn.set_exception(e)

    async def _round(self) -> None:
        """Claim the jobs in line, first first, until the overall limit is full."""
        if self._look:
            self._look = False
            await self._drop_ended()
        full_users: set[str] = set()
        full_commands: set[str] = set()
        for job_id in list(self._order):
            waiting = self._waiting.get(job_id)
            if waiting is None or waiting.turn.done():
                continue
            job = waiting.job
            if job.requester in full_users or job.command in full_commands:
                continue
            claim = await self._store.claim_job(
                job.id, owner=self._owner, limits=waiting.limits, start=waiting.start
            )
            if claim.claimed:
                self._settle(waiting, claim.job)
            elif claim.job.state is not JobState.QUEUED:
                self._settle(waiting, None)  # cancelled meanwhile
            elif claim.held == "per_user":
                full_users.add(job.requester)
            elif claim.held == "per_command":
                full_commands.add(job.command)
            else:  # the overall limit: nobody behind it starts either
                return

    async def _drop_ended(self) -> None:
        """End the waits of jobs no longer queued (cancelled by someone, somewhere)."""
        ids = [i for i, w in self._waiting.items() if not w.turn.done()]
        if not ids:
            return
        queued = await self._store.still_queued(ids)
        for job_id in ids:
            waiting = self._waiting.get(job_id)
            if job_id not in queued and waiting is not None:
                self._settle(waiting, None)

    def _settle(self, waiting: _Waiting, job: Job | None) -> None:
        if not waiting.turn.done():
            waiting.turn.set_result(job)
        elif job is not None:
            self._end_lost(job)  # claimed as its wait was given up

    def _end_lost(self, job: Job) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(self._lost(job))
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)
