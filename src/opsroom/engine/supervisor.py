"""The job supervisor: takes a job from the store through the runner and back.

It waits for capacity (global, per command, per user — across every opsroom process that
shares the store), fetches the command's secrets fresh, starts the script, masks and stores
its output within the cap, acts on cancel requests that arrive through the store, and
records how the job ended. Like `dispatch.py` it wires rooms together.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from opsroom.config import Settings
from opsroom.engine.collector import Collector
from opsroom.engine.ends import watch_end
from opsroom.engine.line import Line
from opsroom.engine.output import OutputWriter
from opsroom.engine.remote import Remote, queue_for
from opsroom.errors import RefusedError, StoreError
from opsroom.model.audit import AuditEvent
from opsroom.model.blocks import Reply, Status
from opsroom.model.commands import CommandSpec, Invocation
from opsroom.model.jobs import ExitEvent, Job, JobState
from opsroom.model.languages import own_environment
from opsroom.policy.masking import Masker
from opsroom.policy.secrets import fetch_secrets, parse_source
from opsroom.retry import Backoff
from opsroom.router.bounded import bounded_params
from opsroom.router.deployment import Deployment, Live
from opsroom.router.outcome import Outcome
from opsroom.runner.argv import build_launch
from opsroom.runner.cgroup import log_move_wait
from opsroom.runner.limits import Limits as JobLimits
from opsroom.runner.pool import PythonPool
from opsroom.runner.tree import (
    new_token,
    remove_empty_workdir,
    remove_full_workdir,
    workdir_prefix,
)
from opsroom.store import Claim, Limits
from opsroom.store.jobs import End
from opsroom.store.notify import Topic, Waiter
from opsroom.store.queue import ORPHANED, Start
from opsroom.tasks import stop_task

log = logging.getLogger("opsroom.jobs")
T = TypeVar("T")
STORE_RETRY_MAX = 5.0  # seconds between attempts to keep a job's end, at most
_STORE_RETRY = Backoff(first=0.1, cap=STORE_RETRY_MAX, jitter=0)

if TYPE_CHECKING:
    from opsroom.store import Store

Send = Callable[[Reply], Awaitable[None]]

TICK_SECONDS = 1.0  # how often a running job's collector stores and shows its output
TICKS_AT_ONCE = 16  # collector ticks started in one turn of the loop
CANCEL_POLL_SECONDS = 0.5  # without notices (no doorbell): between looks for cancel requests
# Jobs being started at once, the rest waiting their turn: a job's start (its transaction's
# statements, its cgroup, its spawn) is work on the event loop, and 500 started together
# made turns of the loop of tens of milliseconds, in which no room was answered. More at
# once would not start them sooner: the loop is the one doing it (bench/README.md).
STARTS_AT_ONCE = 16


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A validated request to run one catalog command."""

    spec: CommandSpec
    invocation: Invocation
    requester: str
    room: str
    # The catalog version `spec` came from: the job runs its files and records its commit.
    deployment: Deployment | None = None


@dataclass(frozen=True, slots=True)
class Announce:
    """What a job's room is told once its start, or its place in the queue, is on disk."""

    starting: Reply  # it starts at once
    # It waits for its turn first; the queue's own line ("queued behind job N") follows.
    # None: that line alone says it.
    waiting: Reply | None = None


@dataclass(slots=True)
class _Running:
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled_by: str | None = None
    # The job as its end was stored: what a waiting `cancel` answers from (`wait_for_end`).
    ended: asyncio.Future[Job] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Supervisor:
    """Runs jobs of this process and answers cancel requests from any process."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        live: Live,
        owner: str,
        workdir_root: Path | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.live = live
        self.owner = owner
        self.workdir_root = workdir_root
        self._running: dict[int, _Running] = {}
        # Jobs between their claim and their process's start (all of it work on the event
        # loop), at once: see STARTS_AT_ONCE.
        self._starting = asyncio.Semaphore(STARTS_AT_ONCE)
        self._poller: asyncio.Task[None] | None = None
        # One ticker for every running job's collector, not a timer task per job.
        self._collectors: dict[int, Collector] = {}
        self._ticking: dict[int, asyncio.Task[None]] = {}
        self._ticker: asyncio.Task[None] | None = None
        # Set in a worker (`opsroom worker --queue NAME`): it runs here every job its queue
        # hands it. Elsewhere jobs whose command names a queue go to that queue's workers.
        self.worker_queue: str | None = None
        self.remote = Remote(settings, store, owner=owner)
        # Jobs held by a limit, each claimed when its turn comes (engine/line.py).
        self.line = Line(
            store,
            owner,
            recheck=settings.workers.recheck,
            lost=lambda job: self.end_unstarted(job, "its request was given up before it started"),
        )
        self.output = OutputWriter(store, cap_bytes=settings.runner.output_cap)
        # Python jobs forked from a warm interpreter ([runner] python_pool; 0: none), the
        # others started by the spawner ([runner] spawner).
        self.python_pool = PythonPool(settings.runner.python_pool, spawner=settings.runner.spawner)
        # Once per process: whether a job's start waits for the kernel here, and the fix.
        log_move_wait(JobLimits.from_settings(settings.runner), spawner=settings.runner.spawner)

    # -- lifecycle -------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop polling for cancel requests; keep the output still buffered; stop the pool."""
        await self.output.close()
        await self.python_pool.close()
        await self.line.close()
        await stop_task(self._ticker)
        self._ticker = None
        await stop_task(self._poller)
        self._poller = None

    # -- submitting and running -----------------------------------------------------------

    async def submit(
        self,
        req: JobRequest,
        params: dict[str, Any],
        *,
        state: JobState = JobState.QUEUED,
        detached: bool = False,
    ) -> Job:
        """Record a job for `req`: queued, or awaiting approval.

        A detached job has no waiting process: a serving process adopts and runs it.
        """
        return await self.store.create_job(
            command=req.spec.name,
            params=params,
            requester=req.requester,
            room=req.room,
            state=state,
            catalog_commit=self._deployment(req).commit,
            script_hash=req.spec.script_hash or None,
            dry_run=req.invocation.dry_run,
            owner=ORPHANED if detached else self.owner,
        )

    def queue_of(self, spec: CommandSpec) -> str | None:
        """The queue whose workers run `spec`; None: this process runs it."""
        return None if self.worker_queue is not None else queue_for(spec, self.settings)

    def dequeue(self, job_id: int) -> None:
        """A job of this process's line was cancelled: its requester hears so now."""
        self.line.drop(job_id)

    def stop(self, job_id: int, *, by: str) -> bool:
        """End a job this process runs, as a cancel by `by` would; False if it runs none."""
        running = self._running.get(job_id)
        if running is None:
            return False
        running.cancelled_by = running.cancelled_by or by
        running.cancel.set()
        return True

    async def wait_for_end(self, job_id: int, timeout: float) -> Job | None:
        """The job once its end is stored, or None when it has not ended within `timeout` s.

        A job running here wakes the wait the moment `_execute` has stored its end; any
        other job (another process's, or one whose end is being stored) is watched in the
        store (`ends.watch_end`).
        """
        running = self._running.get(job_id)
        if running is None:
            return await watch_end(
                self.store, job_id, timeout, recheck=self.settings.workers.recheck
            )
        try:
            async with asyncio.timeout(timeout):
                # Shielded: a waiter given up on never cancels the end the others await.
                return await asyncio.shield(running.ended)
        except TimeoutError:
            return None

    def _deployment(self, req: JobRequest) -> Deployment:
        return req.deployment or self.live.current

    async def execute(
        self, job: Job, req: JobRequest, send: Send, *, announce: Announce | None = None
    ) -> Outcome:
        """Wait for capacity, run the job, and report; returns when it has ended.

        A job whose command runs on a queue's workers (SPEC §8) is handed to that queue
        and followed there; it never runs in this process. `announce` ("approved;
        starting", or without "starting" when the job must wait its turn) is sent once the
        job's start (or its place in the queue) is on disk — for a worker's job, once the
        worker has recorded its start.
        """
        queue = self.queue_of(req.spec)
        if queue is not None:
            # Its start is the worker's: `announce` waits for the worker's start record.
            return await self.remote.execute(
                job,
                queue,
                send,
                announce=announce.starting if announce is not None else None,
                end_unstarted=self.end_unstarted,
            )
        # Its catalog version's files stay as they are until the job has ended.
        with self.live.hold(self._deployment(req)):
            return await self._execute(job, req, send, announce=announce)

    async def run(
        self,
        req: JobRequest,
        params: dict[str, Any],
        send: Send,
        *,
        entry: AuditEvent | None = None,
    ) -> Outcome:
        """Record a job for `req` and run it, as `submit` then `execute` (waiting for it).

        `entry` is the request's audit entry, written before the job exists (RefusedError
        and nothing run when it cannot be). Run here, the entry, the job, its claim and
        its `job.start` entry are one transaction.
        """
        if self.queue_of(req.spec) is not None:
            await append_request(self.store, entry)
            return await self.execute(await self.submit(req, params), req, send)
        with self.live.hold(self._deployment(req)):
            return await self._execute(None, req, send, params=params, entry=entry)

    async def _execute(
        self,
        job: Job | None,
        req: JobRequest,
        send: Send,
        *,
        params: dict[str, Any] | None = None,
        announce: Announce | None = None,
        entry: AuditEvent | None = None,
    ) -> Outcome:
        prefix = self.settings.bot.prefix
        started = await self._start(job, req, send, params, announce, entry)
        if isinstance(started, Outcome):
            return started
        job, secrets, token = started
        masker = Masker(secrets)
        collector = Collector(
            self.store,
            job,
            send,
            writer=self.output,
            masker=masker,
            output_cap=self.settings.runner.output_cap,
            attachment_cap=self.settings.runner.attachment_cap,
            prefix=prefix,
            base_url=self.settings.web.base_url,
        )
        exit_event = await self._run(job, req, send, secrets, collector, token)
        # The script has ended: its end is kept whatever the store does meanwhile. A store
        # that is locked or briefly gone is waited for, never left with a `running` job.
        await until_stored(collector.flush_events, f"the events of job {job.id}")
        running = self._running.pop(job.id, None)
        state = exit_event.state
        if running is not None and running.cancelled_by and state is JobState.CANCELLED:
            exit_event = ExitEvent(
                exit_event.exit_code, state, f"cancelled by {running.cancelled_by}"
            )
        ended, ended_id = exit_event, job.id
        reason = masker.mask(ended.message)
        local = Masker(await local_secrets(self.settings))

        def end_entry(finished: Job) -> AuditEvent:
            return self._event(
                "job.end",
                finished,
                req,
                outcome=finished.state.value,
                reason=reason,
                masker=masker,
                local=local,
            )

        def end(lines: list[tuple[str, str]], pid: int | None) -> Awaitable[Job]:
            return self.store.end_job(
                ended_id,
                End(
                    ended.state,
                    ended.exit_code,
                    error=reason or None,
                    output=lines,
                    cap_bytes=self.output.cap_bytes,
                    audit=end_entry,
                    pid=pid,
                ),
            )

        # Its end, its last lines and its `job.end` entry are one durable commit, and the
        # room hears of the end only once that is on disk: a told end is never lost.
        job = await until_stored(
            lambda: self.output.end(ended_id, end), f"the end of job {ended_id}"
        )
        if running is not None and not running.ended.done():
            running.ended.set_result(job)  # a waiting `cancel` answers now, not at a next look
        self.line.kick()  # its place is free: the next in line starts now
        await send(collector.final_reply(job, exit_event))
        self.output.forget(job.id)
        output = collector.output()
        if output is None:  # more than the collector holds: as the store kept it
            output = "\n".join(t for _, t in await self.store.output(job.id))
        return Outcome(
            "succeeded" if job.state is JobState.SUCCEEDED else "failed",
            job_id=job.id,
            state=job.state,
            exit_code=job.exit_code,
            output=output,
        )

    async def _start(
        self,
        job: Job | None,
        req: JobRequest,
        send: Send,
        params: dict[str, Any] | None,
        announce: Announce | None,
        entry: AuditEvent | None = None,
    ) -> tuple[Job, dict[str, str], str] | Outcome:
        """Claim the job (recording it first when `job` is None) and audit its start.

        The claim, the process token and the `job.start` entry are one durable
        transaction, so a job is never told started before its start is on disk. Its
        secrets are fetched first (they mask the entry). A job that must wait for its turn
        is claimed when that comes, and fetches its secrets afresh then. Returns the
        running job, its secrets and its token, or the outcome of a job that never ran.
        `entry`, the request's audit entry, goes first: with the job's creation when that
        is here, else on its own.
        """
        token = new_token()
        limits = self._limits(req)
        catalog = self._catalog_change(job, req)
        try:
            secrets = await fetch_secrets(req.spec.secrets, self.settings)
        except RefusedError as e:
            # It fails once its turn comes, as a job whose secret went missing while queued.
            await append_request(self.store, entry)
            if job is None:
                assert params is not None
                job = await self.submit(req, params)
            claim = await self.store.claim_job(
                job.id, owner=self.owner, limits=limits, start=Start(token=token, catalog=catalog)
            )
            await self._announce(announce, claim.claimed, send)
            claimed = await self._wait_for_capacity(job, send, limits, token, catalog, claim)
            if claimed is None:
                return await self._never_started(job, send)
            return await self._fail_before_start(claimed, req, send, str(e))
        local = Masker(await local_secrets(self.settings))
        masker = Masker(secrets)

        def start_entry(started: Job) -> AuditEvent:
            return self._event("job.start", started, req, masker=masker, local=local)

        start = Start(token=token, catalog=catalog, audit=start_entry)
        if job is None:
            assert params is not None
            try:
                async with self._starting:
                    claim = await self._create_and_claim(req, params, limits, start, entry)
            except StoreError as e:
                if entry is None:
                    raise
                raise unaudited(e) from None  # nothing was kept: no entry, no job
        else:
            await append_request(self.store, entry)
            claim = await self.store.claim_job(job.id, owner=self.owner, limits=limits, start=start)
        await self._announce(announce, claim.claimed, send)
        if claim.claimed:
            return claim.job, secrets, token
        # Not now: it waits for its turn, and starts with its secrets as they are then.
        job = claim.job
        claimed = await self._wait_for_capacity(job, send, limits, token, catalog, claim)
        if claimed is None:
            return await self._never_started(job, send)
        try:
            secrets = await fetch_secrets(req.spec.secrets, self.settings)
        except RefusedError as e:
            return await self._fail_before_start(claimed, req, send, str(e))
        await self._audit("job.start", claimed, req, masker=Masker(secrets))
        return claimed, secrets, token

    async def _create_and_claim(
        self,
        req: JobRequest,
        params: dict[str, Any],
        limits: Limits,
        start: Start,
        entry: AuditEvent | None,
    ) -> Claim:
        """Record the job with its request entry and claim it, in one durable transaction."""
        return await self.store.create_and_claim(
            command=req.spec.name,
            params=params,
            requester=req.requester,
            room=req.room,
            owner=self.owner,
            limits=limits,
            start=replace(start, request=entry),
            catalog_commit=self._deployment(req).commit,
            script_hash=req.spec.script_hash or None,
            dry_run=req.invocation.dry_run,
        )

    def _limits(self, req: JobRequest) -> Limits:
        runner = self.settings.runner
        return Limits(
            total=runner.concurrency, per_command=req.spec.concurrency, per_user=runner.per_user
        )

    def _catalog_change(
        self, job: Job | None, req: JobRequest
    ) -> tuple[str | None, str | None] | None:
        """The catalog version a job runs, when it is not the one it was queued with.

        Approved after a new catalog version went live, it runs (and records) that one.
        """
        now = (self._deployment(req).commit, req.spec.script_hash or None)
        if job is None or now == (job.catalog_commit, job.script_hash):
            return None
        return now

    async def _never_started(self, job: Job, send: Send) -> Outcome:
        gone = await self.store.get_job(job.id) or job
        await send(
            _status(f"job {job.id} {job.command} was cancelled before it started", "error", job.id)
        )
        return Outcome("failed", job_id=job.id, state=gone.state, exit_code=None)

    async def _wait_for_capacity(
        self,
        job: Job,
        send: Send,
        limits: Limits,
        token: str,
        catalog: tuple[str | None, str | None] | None,
        claim: Claim,
    ) -> Job | None:
        """The claimed (running) job, or None when it was cancelled while it waited.

        `claim` is the first attempt's outcome; held by a limit, the job joins the line of
        this process's queued jobs (engine/line.py) and starts when its turn comes.
        """
        if claim.claimed:
            return claim.job
        if claim.job.state is not JobState.QUEUED:
            return None
        behind = f" behind job {claim.blocked_by}" if claim.blocked_by else ""
        await send(
            _status(
                f"job {job.id} is queued{behind}: {claim.reason} — "
                f"`{self.settings.bot.prefix}cancel {job.id}` to give up",
                "info",
                job.id,
            )
        )
        # An end meanwhile has rung the line's bell: its first round sees that turn.
        return await self.line.wait(claim, limits, Start(token=token, catalog=catalog))

    @staticmethod
    async def _announce(announce: Announce | None, claimed: bool, send: Send) -> None:
        if announce is None:
            return
        said = announce.starting if claimed else announce.waiting
        if said is not None:
            await send(said)

    async def _fail_before_start(self, job: Job, req: JobRequest, send: Send, why: str) -> Outcome:
        claimed = job  # running: its end is waited for as any running job's
        job = await until_stored(
            lambda: self._end_unrun(claimed, req, why), f"the end of job {claimed.id}"
        )
        await send(_status(f"job {job.id} {job.command}: failed — {why}", "error", job.id))
        return Outcome("failed", job_id=job.id, state=job.state, output=why)

    async def _end_unrun(self, job: Job, req: JobRequest | None, why: str) -> Job:
        """Fail a job whose script never ran, with its `job.end` entry: one durable commit."""
        local = Masker(await local_secrets(self.settings))

        def entry(ended: Job) -> AuditEvent:
            return self._event(
                "job.end", ended, req, outcome=ended.state.value, reason=why, local=local
            )

        ended = await self.store.end_job(job.id, End(JobState.FAILED, None, error=why, audit=entry))
        self.line.kick()  # it held a place while it was running
        return ended

    async def _run(
        self,
        job: Job,
        req: JobRequest,
        send: Send,
        secrets: dict[str, str],
        collector: Collector,
        token: str,
    ) -> ExitEvent:
        runner = self.settings.runner
        prefix = self.settings.bot.prefix
        # Named with the token too: should this process die, the next one that finds the job
        # interrupted removes the folder by it (tree.end_orphaned_job).
        workdir = Path(
            tempfile.mkdtemp(prefix=workdir_prefix(job.id, token), dir=self.workdir_root)
        )
        collector.workdir = str(workdir)
        running = self._running[job.id] = _Running()
        self._ensure_poller()
        try:
            queue = self.queue_of(req.spec)
            if queue is not None:  # the last guard: a queue's job never runs on the bot's host
                raise RefusedError(f"{req.spec.name} runs on queue {queue}, not here")
            python = await self._python_for(req.spec)
            launch = build_launch(
                req.spec,
                req.invocation,
                catalog_root=self._deployment(req).root,
                job_id=job.id,
                requester=req.requester,
                room=req.room,
                settings=runner,
                secrets=secrets,
                workdir=workdir,
                python=python,
                token=token,
            )

            # The token was recorded with the claim; the pid rides with the next batch of
            # output or the job's end, never a write of its own: what ends a dead owner's
            # job finds it by the token (and its cgroup) anyway.
            # A future, not an Event: waited for beside the job itself, without a task.
            started: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            def on_start(pid: int) -> None:
                self.output.note_pid(job.id, pid)
                if not started.done():
                    started.set_result(None)

            timeout = min(req.spec.timeout or runner.timeout, runner.max_timeout)
            # Imported on the first job, not at start: nothing before it needs the spawning code.
            from opsroom.runner.local import run_local

            await self._starting.acquire()
            starting = [True]  # until the process exists (or the job has ended)

            def started_now() -> None:
                if starting[0]:
                    starting[0] = False
                    self._starting.release()

            task = asyncio.ensure_future(
                run_local(
                    launch,
                    timeout=timeout,
                    kill_grace=runner.kill_grace,
                    cancel=running.cancel,
                    on_event=collector.on_event,
                    token=token,
                    on_start=on_start,
                    max_attachment=runner.attachment_cap,
                    masker=collector.masker,
                    pool=self.python_pool,
                )
            )
            wait = runner.foreground_seconds
            self._watch(job.id, collector)
            try:
                # "is running" is said of a process that exists: the spawn runs off the loop,
                # so the foreground wait counts from the start, not from the request.
                try:
                    either: set[asyncio.Future[Any]] = {task, started}
                    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    started_now()
                # `background`: told at once, even when the job is over already (its process
                # started: a start that failed is only told as that).
                over = False
                if not (req.spec.background and started.done()):
                    done, _ = await asyncio.wait({task}, timeout=wait)
                    over = bool(done)
                if not over:
                    await send(
                        _status(
                            f"job {job.id} is running — `{prefix}job {job.id}` to look, "
                            f"`{prefix}cancel {job.id}` to stop",
                            "info",
                            job.id,
                        )
                    )
                    collector.go_live()
                return await task
            except asyncio.CancelledError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                raise
            finally:
                started_now()
                await self._unwatch(job.id)
        except RefusedError as e:
            return ExitEvent(None, JobState.FAILED, str(e))
        finally:
            # What a job left in its folder (an unpacked archive: thousands of files) is
            # removed off the event loop, which a walk of that size would stall for seconds.
            if not remove_empty_workdir(workdir):
                await asyncio.to_thread(remove_full_workdir, workdir)

    async def _python_for(self, spec: CommandSpec) -> str | None:
        """The interpreter of the cached PEP 723 environment a Python script asks for."""
        if not own_environment(spec):
            return None
        from opsroom.runner.pep723 import ensure_environment, environments_dir

        env_python = await ensure_environment(
            spec.requires,
            spec.requires_python,
            cache_dir=environments_dir(self.settings.runner),
            python=self.settings.runner.python,
        )
        return str(env_python)

    # -- ticking running jobs' collectors ----------------------------------------------------

    def _watch(self, job_id: int, collector: Collector) -> None:
        """Tick `collector` about once a second while its job runs."""
        self._collectors[job_id] = collector
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(self._tick_all())

    async def _unwatch(self, job_id: int) -> None:
        """Stop ticking a job's collector; a tick still under way is cancelled and waited
        for, so nothing it would show comes after the job's final reply."""
        self._collectors.pop(job_id, None)
        tick = self._ticking.pop(job_id, None)
        await stop_task(tick)

    async def _tick_all(self) -> None:
        """Let running jobs' collectors store and show output while their scripts are quiet.

        Only collectors with something due get a tick, TICKS_AT_ONCE to a turn of the loop:
        jobs that went live together are due together, and 500 ticks (each a send) in one
        turn kept every room waiting 70 ms.
        """
        while self._collectors:
            await asyncio.sleep(TICK_SECONDS)
            now = time.monotonic()
            started = 0
            for job_id, collector in list(self._collectors.items()):
                if job_id in self._ticking or not collector.due(now):
                    continue  # nothing to do, or its last tick (a slow send) is under way
                if started and started % TICKS_AT_ONCE == 0:
                    await asyncio.sleep(0)  # the ticks started so far take their turn first
                    if self._collectors.get(job_id) is not collector:
                        continue  # it ended meanwhile
                tick = asyncio.create_task(collector.tick())
                self._ticking[job_id] = tick
                tick.add_done_callback(_log_failed_tick)
                tick.add_done_callback(functools.partial(self._ticked, job_id))
                started += 1

    def _ticked(self, job_id: int, tick: asyncio.Task[None]) -> None:
        if self._ticking.get(job_id) is tick:
            del self._ticking[job_id]

    # -- cancel requests through the store --------------------------------------------------

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll_cancels())

    async def _poll_cancels(self) -> None:
        listener = self.store.listener
        if listener is None:  # a SQLite store without its doorbell: nothing tells; look often
            await self._check_cancels(contextlib.nullcontext(None), CANCEL_POLL_SECONDS)
        else:  # woken by each cancel's notice; a look every `recheck` for one missed
            watching = listener.watch(None, Topic.CANCEL)
            await self._check_cancels(watching, self.settings.workers.recheck)

    async def _check_cancels(
        self, watching: AbstractContextManager[Waiter | None], every: float
    ) -> None:
        """Act on cancel requests for the jobs running here, until none runs."""
        with watching as waiter:
            while self._running:
                if waiter is None:
                    await asyncio.sleep(every)
                else:
                    await waiter.wait(every)
                    waiter.clear()
                await self._act_on_cancels()

    async def _act_on_cancels(self) -> None:
        ids = [i for i, r in self._running.items() if not r.cancel.is_set()]
        if not ids:
            return
        try:
            requests = await self.store.cancel_requests(ids)
        except StoreError:
            return  # the next round tries again; the job keeps running meanwhile
        for job_id, by in requests.items():
            running = self._running.get(job_id)
            if running is not None:
                running.cancelled_by = by
                running.cancel.set()

    async def end_unstarted(self, job: Job, why: str) -> Job:
        """End a job that will never start, and record its end in the audit log.

        For a job whose command left the catalog, or whose requester may no longer run it,
        by the time it was approved or adopted: a refusal, audited like any other. The end
        and its entry are one transaction: neither is kept without the other.
        """
        return await self._end_unrun(job, None, why)

    async def _audit(
        self,
        action: str,
        job: Job,
        req: JobRequest | None,
        *,
        outcome: str = "",
        reason: str = "",
        masker: Masker | None = None,
    ) -> None:
        # A value someone typed that equals any configured secret stays out of the trail too.
        local = Masker(await local_secrets(self.settings))
        event = self._event(
            action, job, req, outcome=outcome, reason=reason, masker=masker, local=local
        )
        await self.store.append_audit(event)

    def _event(
        self,
        action: str,
        job: Job,
        req: JobRequest | None,
        *,
        outcome: str = "",
        reason: str = "",
        masker: Masker | None = None,
        local: Masker,
    ) -> AuditEvent:
        """The audit entry of `job`, masked with its secrets and the local ones, bounded."""
        params = dict(job.params)
        if masker is not None:
            params = masker.mask_obj(params)
        params = local.mask_obj(params)
        reason = local.mask(reason)
        # Masked first, then bounded: a long value's hash is never the hash of a secret.
        params = bounded_params(params)
        return AuditEvent(
            action=action,
            principal=job.requester,
            room=job.room,
            command=job.command,
            params=params,
            job_id=job.id,
            outcome=outcome,
            reason=reason,
            catalog_commit=job.catalog_commit,
            script_hash=(req.spec.script_hash or None) if req is not None else job.script_hash,
        )


def unaudited(error: StoreError) -> RefusedError:
    """The refusal of a request whose audit entry could not be written."""
    return RefusedError(f"the audit log cannot be written ({error}); nothing was run")


async def append_request(store: Store, entry: AuditEvent | None) -> None:
    """Write a request's audit entry before anything happens; RefusedError if it cannot be."""
    if entry is None:
        return
    try:
        await store.append_audit(entry)
    except StoreError as e:
        raise unaudited(e) from None


async def until_stored(write: Callable[[], Awaitable[T]], what: str) -> T:
    """Run `write` until the store takes it: a locked or unreachable store is waited for.

    For what must be kept once it has happened (a job's end): giving up would leave a job
    `running` for as long as this process lives. Retries back off to STORE_RETRY_MAX seconds
    and are logged; only cancelling the caller (shutdown) stops them.
    """
    for delay in _STORE_RETRY.delays():
        try:
            return await write()
        except StoreError as e:
            log.warning("could not keep %s yet (%s); retrying in %.1f s", what, e, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable: the waits never end")  # pragma: no cover


async def local_secrets(settings: Settings) -> dict[str, str]:
    """The secrets readable here and now (`env:`, `file:`), to mask what people sent.

    For audit text only. Vault-held secrets are not fetched for it: a refusal must not cost
    a round trip (a job's own secrets, fetched to run it, mask its entries as well).
    """
    local = []
    for name, source in settings.secrets.items():
        with contextlib.suppress(ValueError):
            if parse_source(source).kind in ("env", "file"):
                local.append(name)
    values: dict[str, str] = {}
    for name in local:
        with contextlib.suppress(RefusedError):  # unset or unreadable: nothing to mask
            values.update(await fetch_secrets([name], settings))
    return values


def _log_failed_tick(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (e := task.exception()) is not None:
        log.warning("could not show a running job's output (%s)", e)


def _status(text: str, level: str, job_id: int | None) -> Reply:
    return Reply((Status(text, level),), job_id=job_id, kind="job")
