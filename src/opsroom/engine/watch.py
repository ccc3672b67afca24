"""What `opsroom serve` looks after beside chat when several processes share the store (SPEC
§8): its own heartbeat as a bot, and what bots and workers that are gone left behind.

Every `[workers] heartbeat` a serving bot records that it is alive, then looks at the others:

- a bot silent for `[workers] lost_after` (or, on this host, whose process is gone) is lost;
- the jobs a gone process ran itself are marked `interrupted` (each with its audit entry,
  exactly once however many bots look) and their requesters told once in the job's room;
  what they left running on this host is ended;
- the jobs it had queued are released for a live bot to adopt (`serve` adopts them);
- the jobs it followed on workers are followed by this bot from the last reply it passed
  on, so their end is still told in the room;
- workers silent for `lost_after` are lost and their running jobs interrupted, even when no
  bot follows one of them (a worker on this host too: its jobs are judged by its heartbeats
  alone, and told as a lost worker's).

A bot found lost while it still runs (its database was out of reach longer than
`lost_after`) stops the jobs it runs itself — the others marked them interrupted — and
registers again.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsroom import __version__
from opsroom.engine.remote import interrupt_lost_workers
from opsroom.errors import StoreError
from opsroom.model.blocks import Reply, Status
from opsroom.model.jobs import Job, JobState
from opsroom.tasks import raise_if_cancelled

if TYPE_CHECKING:
    from opsroom.engine.dispatch import Dispatcher
    from opsroom.store.bots import Follow

log = logging.getLogger("opsroom.bots")

Send = Callable[[Reply], Awaitable[None]]
Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]


@dataclass(frozen=True, slots=True)
class Round:
    """What one look found and did."""

    gone: frozenset[str] = frozenset()  # owners of bots that are gone
    interrupted: tuple[Job, ...] = ()  # jobs of gone processes, interrupted by this look
    told: tuple[int, ...] = ()  # of those, the ones whose requester this bot told
    lost_worker_jobs: tuple[Job, ...] = ()  # running jobs of lost workers, interrupted
    adopted: tuple[int, ...] = ()  # worker jobs this bot follows now for a gone bot
    released: tuple[int, ...] = ()  # queued jobs of gone processes, left for adoption


@dataclass(eq=False)
class Watch:
    """This bot's heartbeat, and the jobs of bots and workers that are gone."""

    dispatcher: Dispatcher
    send_for: Callable[[str], Send]  # where replies for a room go
    can_tell: Callable[[str], bool]  # whether a room can be told anything from here
    spawn: Spawn  # runs a follow in the background, tracked like a chat request
    owner_alive: Callable[[str], bool] | None = None  # default: store.owner.owner_alive
    host: str = field(default_factory=socket.gethostname)
    bot_id: int | None = None

    @property
    def owner(self) -> str:
        """This process, as job owners name it."""
        return self.dispatcher.ctx.owner

    async def start(self) -> None:
        """Register this bot (the first heartbeat)."""
        store = self.dispatcher.ctx.store
        self.bot_id = await store.register_bot(
            owner=self.owner, host=self.host, version=__version__
        )

    async def run(self) -> None:
        """Look every `[workers] heartbeat` seconds until cancelled."""
        every = self.dispatcher.ctx.settings.workers.heartbeat
        while True:
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except StoreError as e:
                raise_if_cancelled()
                log.warning("could not look after the other bots and workers yet (%s)", e)
            except Exception:
                raise_if_cancelled()
                log.exception("looking after the other bots and workers failed")
            await asyncio.sleep(every)

    async def stop(self) -> None:
        """Record that this bot stopped cleanly (what it followed is taken over at once)."""
        if self.bot_id is not None:
            await self.dispatcher.ctx.store.stop_bot(self.bot_id)

    async def round(self) -> Round:
        """Beat, then find what gone bots and workers left and take care of it."""
        ctx = self.dispatcher.ctx
        store, settings = ctx.store, ctx.settings
        alive_here = self._owner_alive()
        await self._beat()
        # Bots of this host whose process is gone need not be waited for.
        dead = [
            b.owner
            for b in await store.list_bots()
            if not b.gone and b.host == self.host and b.owner != self.owner
            if not alive_here(b.owner)
        ]
        gone = await store.lose_bots(lost_after=settings.workers.lost_after, dead=dead)
        gone.discard(self.owner)
        # A worker's jobs are judged by its heartbeats (below), wherever it runs, so that
        # they are told as a lost worker's.
        workers = {w.owner for w in await store.list_workers()}

        def alive(owner: str) -> bool:
            if owner == self.owner or owner in workers:
                return True
            return owner not in gone and alive_here(owner)

        def why(owner: str) -> str:
            host, pid = _host_of(owner) or "?", _pid_of(owner)
            what = "stopped sending heartbeats" if owner in gone and owner not in dead else "ended"
            return (
                f"the opsroom process running it (pid {pid} on {host}) {what} before the job "
                "did; it was not re-run"
            )

        interrupted = await store.reconcile(is_owner_alive=alive, reason=why)
        told = []
        for job in interrupted:
            if job.owner is not None and _host_of(job.owner) == self.host:
                await _end_leftovers(job, settings.runner.kill_grace)
            if await self._tell(job):
                told.append(job.id)
        released = await store.release_orphaned_queue(is_owner_alive=alive)
        lost_jobs = await interrupt_lost_workers(store, settings)
        adopted = [f.job_id for f in await store.follows_of(gone) if await self._adopt(f)]
        return Round(
            gone=frozenset(gone),
            interrupted=tuple(interrupted),
            told=tuple(told),
            lost_worker_jobs=tuple(lost_jobs),
            adopted=tuple(adopted),
            released=tuple(j.id for j in released),
        )

    def _owner_alive(self) -> Callable[[str], bool]:
        if self.owner_alive is not None:
            return self.owner_alive
        from opsroom.store.owner import owner_alive

        return owner_alive

    async def _beat(self) -> None:
        store = self.dispatcher.ctx.store
        if self.bot_id is None:
            await self.start()
            return
        if await store.bot_beat(self.bot_id):
            return
        # The others found this bot lost and interrupted what it ran: end those for real.
        log.error("this bot was found lost (no heartbeat in time); stopping its jobs")
        for job in await store.find_jobs(states=[JobState.INTERRUPTED], limit=10_000):
            if job.owner == self.owner:
                self.dispatcher.supervisor.stop(job.id, by="opsroom (this bot was found lost)")
        await self.start()

    async def _tell(self, job: Job) -> bool:
        """Tell the requester once, in the job's room, when that room can be told from here.

        Rooms no bot serves (a terminal's `local:` room) hear it from the next `opsroom`
        command their requester runs instead.
        """
        store = self.dispatcher.ctx.store
        if not self.can_tell(job.room) or job.id not in await store.mark_notified([job.id]):
            return False
        text = f"job {job.id} {job.command} was interrupted: {job.error or 'its process stopped'}"
        await self.send_for(job.room)(Reply((Status(text, "warning"),), job_id=job.id, kind="job"))
        return True

    async def _adopt(self, follow: Follow) -> bool:
        """Follow a job on a worker whose follower is gone; False when another bot was first.

        A job no worker took yet is left to the adoption of queued jobs, which checks it
        against the catalog and the policy again and follows it then.
        """
        store = self.dispatcher.ctx.store
        job = await store.get_job(follow.job_id)
        if job is None or job.state is JobState.QUEUED or not self.can_tell(job.room):
            return False
        if not await store.take_follow(follow, follower=self.owner):
            return False
        log.info("following job %d for a bot that is gone", job.id, extra={"job_id": job.id})
        send = self.send_for(job.room)
        remote = self.dispatcher.supervisor.remote
        self.spawn(remote.follow(job.id, send, after=follow.passed))
        return True


async def _end_leftovers(job: Job, grace: float) -> None:
    """End what the job left running on this host (only processes proven to be the job's)."""
    from opsroom.runner.tree import end_orphaned_job

    await end_orphaned_job(job.process_token, job.pid, grace=grace)


def _host_of(owner: str) -> str:
    """The host of an owner id ("hostname:pid:boot-id:start-time")."""
    parts = owner.rsplit(":", 3)
    return parts[0] if len(parts) == 4 else ""


def _pid_of(owner: str) -> str:
    parts = owner.rsplit(":", 3)
    return parts[1] if len(parts) == 4 else "?"


__all__ = ["Round", "Watch"]
