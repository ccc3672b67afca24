"""Jobs that run on a worker (SPEC §8): handed to their queue, followed through the store.

The bot never runs such a job itself. It records the job, hands it to the queue (one
Procrastinate task), and then passes on, in order, every reply the worker leaves in the
store for the job's room — the same replies embedded mode would have sent, since the
worker runs the job with the same supervisor and runner. A cancel asked for anywhere
is forwarded as an abort; a job whose worker stops beating is interrupted and its
requester told, once.

What the bot itself would have said as the job starts ("approved; starting") waits for
the job's start as the worker recorded it in the store: until then the room hears that
the job is queued for a worker (or waits for one, when none is alive).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opsroom.config import Settings
from opsroom.errors import RefusedError, StoreError
from opsroom.model.blocks import Reply, Status
from opsroom.model.commands import CommandSpec, Invocation
from opsroom.model.jobs import Job, JobState
from opsroom.model.wire import load_reply
from opsroom.model.workers import DEFAULT_QUEUE
from opsroom.retry import Backoff
from opsroom.router.outcome import Outcome
from opsroom.store.notify import Listening, Topic, Waiter

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from opsroom.store import Store

    Send = Callable[[Reply], Awaitable[None]]
    EndUnstarted = Callable[[Job, str], Awaitable[Job]]

# Looks again while the store is away: soon at first, then every few seconds at most.
STORE_AWAY = Backoff(first=0.2, cap=5.0)
log = logging.getLogger("opsroom.jobs")

FOLLOW_SECONDS = 0.1  # between looks at the store for a worker's replies, without notices
# How often a follower records the last reply it passed on: another bot taking over after
# it died starts there, so at most this much of the room's replies is shown twice.
PASSED_EVERY = 1.0
LAST_WORDS_SECONDS = 10.0  # a job ended: how long its worker's last replies may lag


def queue_for(spec: CommandSpec, settings: Settings) -> str | None:
    """The queue whose workers run `spec`; None when it runs where the bot runs."""
    if spec.runs_on is not None:
        return spec.runs_on
    return None if settings.runner.local else DEFAULT_QUEUE


def check_remote(spec: CommandSpec, invocation: Invocation, store: Store, queue: str) -> None:
    """RefusedError, before a job exists, when no worker could ever run this request."""
    if not store.has_workers:
        why = "its runs_on" if spec.runs_on is not None else "[runner] local = false"
        raise RefusedError(
            f"{spec.name}: no worker serves queue {queue} ({why}): workers need a "
            "PostgreSQL store; nothing was run"
        )
    # What the worker would refuse anyway, said now rather than after a round trip.
    if invocation.dry_run and not (spec.dry_run or spec.should_process):
        raise RefusedError(f"{spec.name} does not support --dry-run; nothing was run")


async def interrupt_lost_workers(store: Store, settings: Settings) -> list[Job]:
    """Interrupt the running jobs of workers that stopped beating (SPEC §8); returns them.

    A job whose worker ran on this host and is gone has its leftover processes ended too
    (only those proven to be the job's); elsewhere its host's next worker start does it.
    """
    from opsroom.runner.tree import end_orphaned_job
    from opsroom.store.owner import owner_alive

    jobs = await store.interrupt_lost_workers(lost_after=settings.workers.lost_after)
    for job in jobs:
        if job.owner and not owner_alive(job.owner):
            await end_orphaned_job(job.process_token, job.pid, grace=settings.runner.kill_grace)
    return jobs


class Remote:
    """Hands jobs to their queue and follows them to their end."""

    def __init__(self, settings: Settings, store: Store, *, owner: str = "") -> None:
        self.settings = settings
        self.store = store
        self.owner = owner  # this process, as `followers` names who passes replies on

    async def execute(
        self,
        job: Job,
        queue: str,
        send: Send,
        *,
        announce: Reply | None = None,
        end_unstarted: EndUnstarted,
    ) -> Outcome:
        """Hand `job` to `queue` (once) and pass on what its worker says until it ends.

        `announce` ("approved; starting") is sent once a worker has recorded the job's
        start, never before; meanwhile the room is told it is queued for a worker.
        `end_unstarted` ends (and audits) a job that could not be handed over at all.
        """
        if await self.store.hand_to_queue(job.id, queue):
            try:
                task_id = await self.store.defer_job(job.id, queue)
            except StoreError as e:
                # Never left queued with no task behind it: it would wait forever.
                why = f"it could not be handed to queue {queue}: {e}"
                ended = await end_unstarted(job, why)
                await send(_status(f"job {job.id} {job.command}: failed — {why}", "error", job.id))
                return Outcome("failed", job_id=job.id, state=ended.state, output=why)
            await self.store.set_task(job.id, task_id)
        lost_after = self.settings.workers.lost_after
        where = (
            f"a worker on queue {queue} — `{self.settings.bot.prefix}cancel {job.id}` to give up"
        )
        if await self.store.live_workers(queue, lost_after=lost_after) == 0:
            await send(
                _status(f"job {job.id} {job.command} is waiting for {where}", "info", job.id)
            )
        elif announce is not None:
            # Said instead of "starting": it is only queued until a worker takes it.
            await send(_status(f"job {job.id} {job.command} is queued for {where}", "info", job.id))
        # Recorded, so that another bot carries on should this process die (from where
        # the one before left off, for a job adopted from a gone bot).
        passed = await self.store.follow_job(job.id, follower=self.owner)
        return await self.follow(job.id, send, after=passed, announce=announce)

    async def follow(
        self, job_id: int, send: Send, *, after: int = 0, announce: Reply | None = None
    ) -> Outcome:
        """Pass on the worker's replies for `job_id` after number `after`, in order; returns
        once the job ended (or another process took over following it).

        `announce` is sent, before the replies that follow it, once the job's start is
        recorded; never for a job that ends without starting.
        """
        loop = asyncio.get_running_loop()
        state = _Following(next_check=loop.time() + self.settings.workers.heartbeat)
        state.seen = state.recorded = after
        state.announce = announce
        listener = self.store.listener
        # Woken by the worker's notices (and a cancel's); the store is looked at anyway
        # every `recheck`, for a notice lost while the listening connection was away.
        recheck = FOLLOW_SECONDS if listener is None else self.settings.workers.recheck
        failures = 0
        with _watch(listener, job_id) as waiter:
            while True:
                waiter.clear()  # before the look: a notice sent after it wakes the wait
                try:
                    outcome = await self._look(job_id, send, state)
                except StoreError as e:
                    # The database is briefly away: the job goes on; follow it once it is back.
                    log.warning("job %d: cannot follow it in the store yet (%s)", job_id, e)
                    await asyncio.sleep(STORE_AWAY.delay(failures))
                    failures += 1
                    continue
                failures = 0
                if outcome is not None:
                    if not state.taken_over:
                        with contextlib.suppress(StoreError):  # its end was told: nobody follows
                            await self.store.unfollow(job_id, follower=self.owner)
                    return outcome
                await waiter.wait(recheck)

    async def _look(self, job_id: int, send: Send, state: _Following) -> Outcome | None:
        """One look at the store: new replies passed on; the outcome once the job ended."""
        loop = asyncio.get_running_loop()
        replies = await self.store.job_replies(job_id, after=state.seen)
        if state.announce is not None:
            # Read after the replies: not started yet, they all came before its start;
            # started, its announcement goes before them (its output, its end).
            started = await self.store.get_job(job_id)
            if started is not None and started.started_at is not None:
                announce, state.announce = state.announce, None
                await send(announce)
        for seq, data in replies:
            state.seen = seq
            if data is None:  # the worker is done: everything it said came before
                return await self._outcome(job_id)
            try:
                reply = load_reply(data)
            except ValueError as e:
                log.warning("job %d: a reply from its worker is unreadable (%s)", job_id, e)
                continue
            await send(reply)
        if not await self._passed_on(job_id, state):
            log.warning("job %d: another opsroom process passes its replies on now", job_id)
            state.taken_over = True
            return Outcome("running", job_id=job_id, state=JobState.RUNNING)
        job = await self.store.get_job(job_id)
        if job is None:
            raise StoreError(f"job {job_id} does not exist")
        if job.cancel_requested_by is not None and not state.aborted:
            state.aborted = True
            await self._abort(job_id)
        if job.state is JobState.INTERRUPTED:
            return await self._interrupted(job, send)
        if job.state is JobState.CANCELLED and job.started_at is None:
            return await self._cancelled_unstarted(job, send)
        if job.state.finished:
            # Its end is recorded; the worker's last replies follow at once, unless it died
            # in between: then the end is said here.
            if state.ended_at is None:
                state.ended_at = loop.time()
            if loop.time() - state.ended_at > LAST_WORDS_SECONDS:
                words = job.state.value.replace("_", " ")
                level = "success" if job.state is JobState.SUCCEEDED else "error"
                await send(_status(f"job {job.id} {job.command}: {words}", level, job.id))
                return await self._outcome(job_id)
        elif job.state is JobState.RUNNING and loop.time() >= state.next_check:
            state.next_check = loop.time() + self.settings.workers.heartbeat
            with contextlib.suppress(StoreError):  # looked at again next time
                await interrupt_lost_workers(self.store, self.settings)
        return None

    async def _passed_on(self, job_id: int, state: _Following) -> bool:
        """Record the last reply passed on (at most every PASSED_EVERY s); False when another
        process took over following the job (this one was found gone meanwhile)."""
        now = asyncio.get_running_loop().time()
        if state.seen == state.recorded or now < state.record_at:
            return True
        if not await self.store.followed_to(job_id, follower=self.owner, passed=state.seen):
            return False
        state.recorded, state.record_at = state.seen, now + PASSED_EVERY
        return True

    async def _abort(self, job_id: int) -> None:
        """Forward a cancel to the job's worker at once (it also polls, as a fallback)."""
        remote = await self.store.remote_job(job_id)
        if remote is None or remote[1] is None:
            return
        try:
            await self.store.abort_task(remote[1])
        except StoreError as e:
            log.warning("job %d: could not forward the cancel to its worker (%s)", job_id, e)

    async def _interrupted(self, job: Job, send: Send) -> Outcome:
        """The job's worker was lost: tell the requester here, unless told already."""
        if job.id in await self.store.mark_notified([job.id]):
            why = f": {job.error}" if job.error else ""
            await send(
                _status(f"job {job.id} {job.command} was interrupted{why}", "warning", job.id)
            )
        return Outcome(
            "failed", job_id=job.id, state=job.state, exit_code=None, output=job.error or ""
        )

    async def _cancelled_unstarted(self, job: Job, send: Send) -> Outcome:
        """Cancelled before any worker took it: take it off the queue too."""
        await self._abort(job.id)
        await send(
            _status(f"job {job.id} {job.command} was cancelled before it started", "error", job.id)
        )
        return Outcome("failed", job_id=job.id, state=job.state, exit_code=None)

    async def _outcome(self, job_id: int) -> Outcome:
        job = await self.store.get_job(job_id)
        if job is None:
            raise StoreError(f"job {job_id} does not exist")
        lines = await self.store.output(job_id)
        return Outcome(
            "succeeded" if job.state is JobState.SUCCEEDED else "failed",
            job_id=job.id,
            state=job.state,
            exit_code=job.exit_code,
            output="\n".join(t for _, t in lines),
        )


def _watch(listener: Listening | None, job_id: int) -> AbstractContextManager[Waiter]:
    """A waiter for the job's replies and cancels (one nobody wakes without a listener)."""
    if listener is None:
        return contextlib.nullcontext(Waiter())
    return listener.watch(job_id, Topic.REPLIES, Topic.CANCEL)


@dataclass(slots=True)
class _Following:
    """Where following one job has got to."""

    next_check: float  # when to look for lost workers next (loop time)
    seen: int = 0  # the last reply passed on
    aborted: bool = False  # a cancel was forwarded
    ended_at: float | None = None  # when its end was first seen (loop time)
    recorded: int = 0  # the last reply recorded as passed on
    record_at: float = 0.0  # when to record that again at the earliest (loop time)
    taken_over: bool = False  # another process follows the job now
    announce: Reply | None = None  # to be said once the job's start is recorded


def _status(text: str, level: str, job_id: int | None) -> Reply:
    return Reply((Status(text, level),), job_id=job_id, kind="job")


__all__ = ["Remote", "check_remote", "interrupt_lost_workers", "queue_for"]
