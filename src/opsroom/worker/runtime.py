"""`opsroom worker --queue NAME`: takes the jobs of one queue and runs them here (SPEC §8).

A worker is an opsroom engine of its own — the same store, its own copy of the catalog, the
same supervisor and runner as embedded mode — fed by Procrastinate instead of chat. For
each job it takes it checks that its catalog is the job's (a worker never runs a script
other than the one the bot checked and recorded), then runs it: secrets are resolved and
masked here, limits are claimed in the shared store, output and events are kept there, and
every reply the job's room would see is left in the store for the bot to pass on.

It registers itself and beats every `[workers] heartbeat`; whoever sees a worker silent for
`[workers] lost_after` marks its running jobs `interrupted` (never re-run). The first
SIGTERM or Ctrl-C stops taking jobs and lets the running ones finish; a second one cancels
them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsroom import __version__
from opsroom.engine.remote import interrupt_lost_workers
from opsroom.engine.supervisor import JobRequest
from opsroom.errors import StoreError
from opsroom.model.blocks import Reply, Status
from opsroom.model.commands import Invocation, Language
from opsroom.model.jobs import Job, JobState
from opsroom.model.wire import dump_reply
from opsroom.model.workers import DEFAULT_QUEUE, Worker
from opsroom.router.deployment import Deployment
from opsroom.runner.tree import end_orphaned_job
from opsroom.store.owner import owner_alive, owner_id
from opsroom.store.tasks import TASK_NAME
from opsroom.tasks import raise_if_cancelled
from opsroom.worker.replies import ReplyWriter

if TYPE_CHECKING:
    from opsroom.app import App

log = logging.getLogger("opsroom.worker")


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """What `opsroom worker` was asked to do."""

    queue: str
    concurrency: int = 1
    name: str = ""  # "" : <host>-<pid>


def default_name() -> str:
    """A worker's name when none is given: this host and process."""
    import os

    return f"{socket.gethostname()}-{os.getpid()}"


def host_os() -> str:
    """This host's operating system as `opsroom workers` shows it, e.g. "Linux 6.1"."""
    return f"{platform.system()} {platform.release()}".strip()


class WorkerRuntime:
    """One worker process: registration, heartbeats, and the jobs its queue hands it."""

    def __init__(self, app: App, options: WorkerOptions) -> None:
        self.app = app
        self.store = app.store
        self.settings = app.settings
        self.queue = options.queue
        self.concurrency = options.concurrency
        self.name = options.name or default_name()
        self.supervisor = app.dispatcher.supervisor
        # Every job it is handed runs here: that is what a worker is for.
        self.supervisor.worker_queue = self.queue
        self.worker: Worker | None = None
        self.lost = False
        self._jobs: set[int] = set()  # the jobs this worker is running now
        self._replies = ReplyWriter(self.store)  # what they say, kept in batches

    async def run(self, stop: asyncio.Event, *, echo: Callable[[str], None]) -> int:
        """Serve the queue until `stop` is set (or this worker is found lost); the exit code."""
        # A SQLite store is refused here, with a StoreError naming it.
        tasks_app = await self.store.task_app(connections=self.concurrency + 3)
        tasks_app.task(name=TASK_NAME, pass_context=True, queue=self.queue)(self._task)
        deployer = self.app.deployer
        # A worker announces nothing and claims no announcement: that is the bot's part.
        deployer.store = None
        await deployer.attach(_quiet)
        await self._end_leftovers()
        self.worker = await self.store.register_worker(
            name=self.name,
            queue=self.queue,
            host=socket.gethostname(),
            os=host_os(),
            version=__version__,
            catalog_commit=deployer.live.current.commit,
            owner=owner_id(),
        )
        workers = self.settings.workers
        serving = asyncio.create_task(
            tasks_app.run_worker_async(
                queues=[self.queue],
                name=self.name,
                concurrency=self.concurrency,
                install_signal_handlers=False,  # ours: the first signal drains, the second cancels
                listen_notify=True,
                delete_jobs="always",  # the store keeps the record; a task is only transport
                update_heartbeat_interval=workers.heartbeat,
                stalled_worker_timeout=workers.lost_after,
                # New jobs and aborts arrive by notification; polling only catches one
                # lost while Procrastinate's listening connection was away.
                fetch_job_polling_interval=workers.recheck,
                abort_job_polling_interval=workers.recheck,
            )
        )
        side = [asyncio.create_task(self._beat(stop))]
        if deployer.polls:
            side.append(asyncio.create_task(deployer.poll_forever()))
        if deployer.watches:
            side.append(asyncio.create_task(deployer.watch_forever()))
        commit = deployer.live.current.commit
        echo(
            f"opsroom worker {self.name} serves queue {self.queue} "
            f"(concurrency {self.concurrency}, catalog {deployer.label}"
            f"{' at ' + commit[:12] if commit else ''})"
        )
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not serving.done():
                echo(f"opsroom worker {self.name}: stopping; running jobs finish first")
                serving.cancel()  # Procrastinate stops taking jobs and waits for those running
            try:
                await serving
            except asyncio.CancelledError:
                pass
            except Exception as e:
                # The job queue gave up (its database is gone for good): exit, so the
                # service manager starts a fresh worker; running jobs are found lost.
                log.error("the job queue stopped: %s", e)
                echo(f"opsroom: worker {self.name}: the job queue stopped: {e}")
                return 1
        finally:
            stopping.cancel()
            for task in side:
                task.cancel()
            await asyncio.gather(stopping, *side, return_exceptions=True)
            await self._replies.close()
            with contextlib.suppress(StoreError):
                await self.store.stop_worker(self.worker.id)
        return 1 if self.lost else 0

    async def _end_leftovers(self) -> None:
        """End what jobs of this host's lost workers left running (their worker died)."""
        host = socket.gethostname()
        for job in await self.store.jobs_of_lost_workers(host):
            if job.owner and not owner_alive(job.owner):
                grace = self.settings.runner.kill_grace
                await end_orphaned_job(job.process_token, job.pid, grace=grace)

    def cancel_running(self, why: str) -> None:
        """End every job this worker runs now, as cancelled by `why`."""
        for job_id in list(self._jobs):
            self.supervisor.stop(job_id, by=why)

    # -- heartbeats ----------------------------------------------------------------------

    async def _beat(self, stop: asyncio.Event) -> None:
        """Beat every `[workers] heartbeat`, and look for workers that stopped beating."""
        assert self.worker is not None
        workers = self.settings.workers
        while True:
            await asyncio.sleep(workers.heartbeat)
            try:
                me = await self.store.worker_beat(
                    self.worker.id, catalog_commit=self.app.deployer.live.current.commit
                )
            except StoreError as e:
                raise_if_cancelled()
                log.warning("could not record a heartbeat (%s); trying again", e)
                continue
            if me.lost is not None:
                # Its jobs were interrupted (and will never be re-run): carrying on would run
                # them to an end nobody records. Stop, and let the service manager restart it.
                log.error("worker %s was found lost (no heartbeat in time); stopping", self.name)
                self.lost = True
                self.cancel_running(f"opsroom worker {self.name} (found lost)")
                stop.set()
                return
            with contextlib.suppress(StoreError):  # looked at again at the next beat
                await interrupt_lost_workers(self.store, self.settings)

    # -- one job ------------------------------------------------------------------------------

    async def _task(self, context: Any, job_id: int) -> None:
        """The Procrastinate task: run job `job_id`; an abort (a cancel) ends it honestly."""
        run = asyncio.ensure_future(self._take(job_id))
        try:
            await asyncio.shield(run)
        except asyncio.CancelledError:
            # Aborted: a cancel from chat, forwarded by the bot, or this worker stopping.
            by = await self._canceller(job_id)
            self.supervisor.stop(job_id, by=by)
            with contextlib.suppress(StoreError):
                await self.store.request_cancel(job_id, by=by)  # also a job still waiting
            # Its end is recorded as any cancel's; the task itself ended as it should.
            await run
            log.info("job %d: cancelled by %s", job_id, by)

    async def _canceller(self, job_id: int) -> str:
        with contextlib.suppress(StoreError):
            job = await self.store.get_job(job_id)
            if job is not None and job.cancel_requested_by:
                return job.cancel_requested_by
        return f"opsroom worker {self.name} (stopping)"

    async def _take(self, job_id: int) -> None:
        job = await self.store.get_job(job_id)
        if job is None or job.state is not JobState.QUEUED:
            # Cancelled while it waited, or ended otherwise: a job never runs twice.
            log.info("job %d is %s; nothing to run", job_id, job.state.value if job else "gone")
            return
        self._jobs.add(job_id)
        send = self._sender(job_id)
        try:
            dep = await self._deployment_for(job)
            with self.app.deployer.live.hold(dep):
                why = self._refusal(job, dep)
                spec = dep.registry.get(job.command)
                if why or spec is None:
                    ended = await self.supervisor.end_unstarted(job, why)
                    await send(
                        Reply(
                            (Status(f"job {job.id} {job.command}: not run — {why}", "error"),),
                            job_id=job.id,
                            kind="job",
                        )
                    )
                    log.warning("job %d refused: %s (%s)", job.id, why, ended.state.value)
                    return
                params = {k: tuple(v) if isinstance(v, list) else v for k, v in job.params.items()}
                invocation = Invocation(command=spec.name, params=params, dry_run=job.dry_run)
                request = JobRequest(spec, invocation, job.requester, job.room, deployment=dep)
                await self.supervisor.execute(job, request, send)
        finally:
            self._jobs.discard(job_id)
            # Everything it said is in the store before this: the bot stops following here.
            await self._replies.send(job_id, None)

    async def _deployment_for(self, job: Job) -> Deployment:
        """The catalog version to run `job` on: fetched first when the job names a newer one."""
        deployer = self.app.deployer
        current = deployer.live.current
        behind = job.catalog_commit is not None and current.commit != job.catalog_commit
        if behind and deployer.git is not None:
            with contextlib.suppress(Exception):  # a failed fetch is said by the refusal
                await deployer.update(f"job {job.id}")
        return deployer.live.current

    def _refusal(self, job: Job, dep: Deployment) -> str:
        """Why this worker must not run `job` ("" when it may)."""
        spec = dep.registry.get(job.command)
        if spec is None or spec.language is Language.BUILTIN:
            return f"{job.command} is not in the catalog of worker {self.name}"
        if job.catalog_commit is not None and dep.commit != job.catalog_commit:
            has = dep.commit[:12] if dep.commit else "a folder outside git"
            return (
                f"worker {self.name} does not have catalog commit {job.catalog_commit[:12]} "
                f"(it has {has}); update its catalog and ask again"
            )
        if job.script_hash and spec.script_hash and job.script_hash != spec.script_hash:
            return (
                f"worker {self.name} has a different copy of {spec.path} than the bot checked; "
                "bring its catalog in step and ask again"
            )
        expected = spec.runs_on or DEFAULT_QUEUE
        if expected != self.queue:
            return f"{job.command} runs on queue {expected}, not {self.queue}"
        return ""

    def _sender(self, job_id: int) -> Callable[[Reply], Any]:
        """Where the job's replies go: the store, for the bot to pass on in order."""

        async def send(reply: Reply) -> None:
            await self._replies.send(job_id, dump_reply(reply))

        return send


async def _quiet(room: str, reply: Reply) -> None:
    """A worker's catalog announcements go nowhere: the bot makes them."""
