"""Run one launch as a local child process and stream what it says (SPEC §5.1, §5.3, §5.5).

The child gets its own session (so its own process group), stdin from /dev/null, stdout and
stderr on pipes read line by line, and a third pipe for structured events whose fd number is
in `OPSROOM_EVENTS_FD`. Where the host allows it the child enters a cgroup of its own before
exec (`cgroup`), and every process of the job is a member whatever it does; elsewhere every
process carries `OPSROOM_JOB_TOKEN` and `tree` finds them by token, session and parentage.
The child is started off the event loop (`spawn`): its fork, its wait to enter its cgroup
and its exec take milliseconds the loop, which serves every room, must not stop for.
Timeouts, cancel, a resource limit and the caller's task being cancelled end the whole tree:
TERM, then KILL after the grace period. A process still running when the script itself has
exited is ended too, and the job's output says so. Our pipe ends are closed once the tree is
gone and the pipes stay idle, so nothing that escaped can hold the job forever.

Memory stays bounded whatever the script prints: lines go to `on_event` one at a time and are
awaited, and the pipes are not read while `on_event` is busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable
from typing import IO, Any, Protocol

from opsroom.model.jobs import ExitEvent, JobEvent, JobState, OutputLine, Stream
from opsroom.runner import cgroup, spawn, tree
from opsroom.runner.argv import Launch
from opsroom.runner.attachments import MAX_ATTACHMENT, AttachmentRefused, resolve_attachment
from opsroom.runner.events import AttachmentRequest, MalformedEvent, parse_event
from opsroom.runner.limits import rlimits
from opsroom.runner.limitwatch import WATCH
from opsroom.runner.platform import ON_LINUX, ON_WINDOWS, Platform, current
from opsroom.runner.pool import LOST, PoolChild, PoolStart, PythonPool

LINE_LIMIT = 64 * 1024  # longer output lines are split
EVENT_LIMIT = 4 * 1024 * 1024  # a table can be big; beyond this an event is dropped
_CHUNK = 64 * 1024
_POSIX = not ON_WINDOWS
_LINUX = ON_LINUX
# A statement, not a conditional expression: mypy reads only this as a platform check.
if ON_WINDOWS:  # noqa: SIM108
    _KILL = signal.SIGTERM  # never sent: a Windows job ends through its Job Object (winrun.py)
else:
    _KILL = signal.SIGKILL
# Once the tree is ended, a pipe that stays silent this long is held by something that
# escaped: stop reading it.
_DRAIN_IDLE = 0.5
# A job starts with these at their defaults however opsroom was started: a shell's
# background job ignores SIGINT and SIGQUIT, nohup SIGHUP, and an ignored signal stays
# ignored through exec (a handled one does not). SIGPIPE and SIGXFSZ Popen puts back.
_RESET = tuple(
    getattr(signal, name) for name in ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM") if _POSIX
)


def ignored_signals() -> tuple[int, ...]:
    """Those of the signals a job starts with at their defaults that opsroom ignores now."""
    return tuple(number for number in _RESET if signal.getsignal(number) == signal.SIG_IGN)


log = logging.getLogger("opsroom.runner")

EventHandler = Callable[[JobEvent], Awaitable[None] | None]
StartHandler = Callable[[int], Awaitable[None] | None]


class Child(Protocol):
    """A running script as `_Run` waits for it: asyncio's process, a pool's, Windows' own."""

    @property
    def pid(self) -> int:
        """Its process id (on POSIX also its process group's and session's)."""
        ...

    @property
    def returncode(self) -> int | None:
        """Its exit status once it has ended."""
        ...

    async def wait(self) -> int | None:
        """Wait for it to end."""
        ...


class Chunks(Protocol):
    """A pipe as `_pump` reads it (asyncio's StreamReader, a Windows reader thread's)."""

    async def read(self, n: int) -> bytes:
        """Up to about n bytes as they come; b"" at the end."""
        ...


class MaskStream(Protocol):
    """Masks text written in pieces (policy.masking.StreamMasker satisfies it)."""

    def feed(self, chunk: str) -> str:
        """The masked text now safe to pass on; a possible secret's start is held back."""
        ...

    def flush(self) -> str:
        """What is still held back, masked."""
        ...


class Redactor(Protocol):
    """The job's secret masker (policy.masking.Masker satisfies it)."""

    def mask(self, text: str) -> str:
        """`text` with every secret form replaced."""
        ...

    def stream(self) -> MaskStream:
        """A masker for one stream of pieces."""
        ...


async def run_local(
    launch: Launch,
    *,
    timeout: float,
    kill_grace: float,
    cancel: asyncio.Event | None = None,
    on_event: EventHandler,
    token: str | None = None,
    max_attachment: int = MAX_ATTACHMENT,
    on_start: StartHandler | None = None,
    masker: Redactor | None = None,
    pool: PythonPool | None = None,
    platform: Platform | None = None,
) -> ExitEvent:
    """Run the launch to its end, passing output and events to on_event; never raises for
    a script's failure (a start failure is a FAILED exit with a message).

    `token` marks the job's processes (`OPSROOM_JOB_TOKEN`; taken from the launch or made up
    when not given) and names its cgroup; `on_start` gets the script's pid (its process
    group and session). `launch.limits` says what the job may use: going past one ends it
    as FAILED with the limit named.
    With a `masker`, every text the runner makes is masked before it is cut or passed on.
    With a `pool`, a Python launch is forked from a warm interpreter when it can be.
    `platform` picks the OS's way (runner/platform.py; this host's when not given): on
    Windows a Job Object holds the job (winrun.py) and the pool is not used.
    """
    token = token or launch.env.get(tree.TOKEN_VAR) or tree.new_token()
    where = platform or current()
    run: _Run
    if where.windows:
        from opsroom.runner.winrun import WindowsRun

        run = WindowsRun(
            launch,
            on_event,
            token=token,
            max_attachment=max_attachment,
            masker=masker,
            kernel32=where.kernel32,
        )
    else:
        run = _Run(launch, on_event, token=token, max_attachment=max_attachment, masker=masker)
        run.pool = pool if where.fork_server else None
    try:
        return await run.execute(
            timeout=timeout, kill_grace=kill_grace, cancel=cancel, on_start=on_start
        )
    except asyncio.CancelledError:
        # Ctrl-C in `opsroom shell`, a dispatcher shutting down: the tree must not outlive us.
        await run.end_tree(kill_grace)
        raise
    finally:
        await run.cleanup()


class _Run:
    """The state of one child: its pipes, reader tasks and process."""

    def __init__(
        self,
        launch: Launch,
        on_event: EventHandler,
        *,
        token: str,
        max_attachment: int,
        masker: Redactor | None = None,
    ) -> None:
        self.launch = launch
        self.on_event = on_event
        self.token = token
        self.max_attachment = max_attachment
        self.proc: Child | None = None
        self.pool: PythonPool | None = None
        self.transports: list[asyncio.BaseTransport] = []
        self.pumps: list[asyncio.Future[None]] = []  # one per pipe, done at its end
        self.streams: list[asyncio.Task[None]] = []  # the pipes' readers, once data came
        self.read_fds: list[int] = []
        self.idle: list[list[float | None]] = []  # per pump: waiting for data since
        self.tree_ended = False
        self.group: cgroup.JobCgroup | None = None
        self.how = cgroup.enforcement(launch.limits)
        self.masker = masker
        self.masking: dict[Stream, MaskStream] = {}  # per stream, across a line's cuts
        self.cut: set[Stream] = set()  # streams in the middle of a line cut at LINE_LIMIT
        self.event_cut = False  # the event channel is in the middle of an oversized event

    @property
    def contained(self) -> bool:
        """True when a cgroup v2 holds every process of the job."""
        return self.group is not None and self.group.v2 is not None

    async def emit(self, event: JobEvent) -> None:
        result = self.on_event(event)
        if inspect.isawaitable(result):
            await result

    async def execute(
        self,
        *,
        timeout: float,
        kill_grace: float,
        cancel: asyncio.Event | None,
        on_start: StartHandler | None,
    ) -> ExitEvent:
        started = await self._start()
        if isinstance(started, ExitEvent):
            return started
        proc = started
        if on_start is not None and inspect.isawaitable(result := on_start(proc.pid)):
            await result
        loop = asyncio.get_running_loop()
        wait_task = asyncio.ensure_future(proc.wait())
        cancel_task = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
        limit_task = self._watch_limits() if self._watching() else None
        waiting: set[asyncio.Future[Any]] = {wait_task, *self.pumps}
        for extra in (cancel_task, limit_task):
            if extra is not None:
                waiting.add(extra)
        deadline = loop.time() + timeout
        outcome: JobState | None = None
        reason: str | None = None
        try:
            while not wait_task.done():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    outcome = JobState.TIMED_OUT
                    break
                done, _ = await asyncio.wait(
                    waiting, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                if wait_task.done():
                    break
                for task in done:
                    if task in self.pumps and (error := task.exception()) is not None:
                        raise error  # on_event failed: stop the child rather than block it
                if cancel_task is not None and cancel_task in done:
                    outcome = JobState.CANCELLED
                    break
                if limit_task is not None and limit_task in done:
                    outcome, reason = JobState.FAILED, limit_task.result()
                    break
                waiting -= done
        finally:
            for extra in (cancel_task, limit_task):
                if extra is not None:
                    extra.cancel()
        leftovers = await self.end_tree(kill_grace)
        await wait_task
        await self._drain()
        if outcome is None:
            # A process the kernel killed at a limit may have been the script itself.
            reason = self._limit_reached(proc.returncode)
            if isinstance(proc, PoolChild) and proc.lost:
                reason = reason or LOST
            if leftovers:
                await self.emit(OutputLine(Stream.STDERR, _leftover_note(leftovers)))
        return _exit_event(proc.returncode, outcome, timeout, reason)

    def _watching(self) -> bool:
        how = self.how
        return self.group is not None and any(
            m.startswith("cgroup") for m in (how.memory, how.pids, how.cpu)
        )

    def _watch_limits(self) -> asyncio.Future[str]:
        """Done once the kernel's counters say the job reached one of its limits (read by
        one thread for every job: limitwatch.py); cancel it to stop watching."""
        assert self.group is not None
        return WATCH.watch(self.group.limit_hit)

    def _limit_reached(self, returncode: int | None) -> str | None:
        if self.group is not None and (reason := self.group.limit_hit()) is not None:
            return reason
        # Without a cgroup only the script's own death by RLIMIT_CPU names its limit.
        if not ON_WINDOWS and self.how.cpu == "rlimit" and returncode == -signal.SIGXCPU:
            return self.launch.limits.cpu_reason()
        return None

    async def end_tree(self, grace: float) -> list[int]:
        """TERM, grace, KILL for every process of the job; the pids that had to be ended."""
        if self.proc is None or self.tree_ended:
            return []
        if self.group is not None and self.contained:
            ended = await self.group.end(grace)
            tree.reap(ended)  # those opsroom adopted as subreaper for an earlier job
        elif _LINUX:
            # Without a cgroup, orphans opsroom adopted count as this job's unless they are
            # proven another's.
            ended = await tree.end_processes(
                self.token, pgid=self.proc.pid, grace=grace, adopted=True
            )
        else:
            ended = await self._terminate_group(grace)
        self.tree_ended = True
        return [pid for pid in ended if pid != self.proc.pid]

    async def _terminate_group(self, grace: float) -> list[int]:
        assert self.proc is not None
        if self.proc.returncode is not None:
            return []
        _signal_group(self.proc, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.proc.wait()), grace)
        # Also reaches group members that ignored TERM after the main process obeyed it.
        _signal_group(self.proc, _KILL)
        return [self.proc.pid]

    def _make_cgroup(self) -> None:
        limits = self.launch.limits
        how = self.how
        if how.contained or "cgroup" in how.memory or "cgroup" in how.pids:
            try:
                self.group = cgroup.JobCgroup.create(self.token, limits)
            except cgroup.CgroupError as e:
                # The host said yes and then no (a descendants limit, a race): run the job
                # the way hosts without cgroups do rather than not at all.
                log.warning("a job runs without its cgroup: %s", e)
                self.how = cgroup.Enforcement(
                    contained=False,
                    memory="rlimit" if limits.memory else "",
                    pids="",
                    cpu="rlimit" if limits.cpu_seconds else "",
                )
        if not self.contained:
            tree.enable_subreaper()

    async def _start(self) -> Child | ExitEvent:
        self._make_cgroup()
        limits = rlimits(
            self.launch.limits, memory=self.how.memory == "rlimit", cpu=self.how.cpu == "rlimit"
        )
        preexec = cgroup.preexec(self.group, limits, ignored_signals() if _POSIX else ())
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.read_fds = [out_r, err_r]
        write_fds = [out_w, err_w]
        env = dict(self.launch.env)
        env[tree.TOKEN_VAR] = self.token
        extra: dict[str, object] = {}
        ev_r = -1
        if _POSIX:
            ev_r, ev_w = os.pipe()
            self.read_fds.append(ev_r)
            write_fds.append(ev_w)
            env["OPSROOM_EVENTS_FD"] = str(ev_w)
            extra = {"start_new_session": True, "pass_fds": (ev_w,)}
            if preexec is not None:
                extra["preexec_fn"] = preexec
        try:
            pooled = await self._pooled(env, write_fds, limits)
            if isinstance(pooled, str):
                return ExitEvent(exit_code=None, state=JobState.FAILED, message=pooled)
            if pooled is not None:
                self.proc = pooled
            elif _LINUX and spawn.pidfds():
                self.proc = await spawn.start(
                    self.launch.argv,
                    env=env,
                    cwd=self.launch.cwd,
                    stdout=out_w,
                    stderr=err_w,
                    extra=extra,
                    cancelled=self._keep,
                )
            else:
                self.proc = await asyncio.create_subprocess_exec(
                    *self.launch.argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out_w,
                    stderr=err_w,
                    env=env,
                    cwd=self.launch.cwd,
                    **extra,  # type: ignore[arg-type]
                )
        except OSError as e:
            return ExitEvent(
                exit_code=None, state=JobState.FAILED, message=_start_error(self.launch, e)
            )
        except subprocess.SubprocessError:
            # Raised for the child when it could not join its cgroup or set its limits.
            message = "could not start the job: it could not enter its cgroup or set its limits"
            return ExitEvent(exit_code=None, state=JobState.FAILED, message=message)
        finally:
            # Only the child may hold the write ends, or we would never see EOF.
            for fd in write_fds:
                os.close(fd)
            if self.group is not None:
                self.group.close_fds()
        tree.manage(self.proc.pid)
        await self._read(out_r, LINE_LIMIT, self._stdout)
        await self._read(err_r, LINE_LIMIT, self._stderr)
        if ev_r != -1:
            await self._read(ev_r, EVENT_LIMIT, self._event)
        return self.proc

    def _keep(self, proc: Child) -> None:
        """A process whose start was cancelled: the caller ends it with its tree."""
        self.proc = proc

    async def _pooled(
        self, env: dict[str, str], fds: list[int], limits: list[tuple[int, tuple[int, int]]]
    ) -> PoolChild | str | None:
        """The job forked from a warm Python, or else started by the spawner (runner/pool.py):
        its process, why it could not start, or None to start it from opsroom itself."""
        if self.pool is None or len(fds) != 3:
            return None
        out, err, events = fds
        birth = self.group.birth_fds() if self.group is not None else None
        if birth is not None:  # born in its cgroup v2: no move, which waits for the kernel
            start = PoolStart(out, err, events, birth[1], tuple(limits), into=birth[0])
        else:
            procs = self.group.procs_fds() if self.group is not None else ()
            start = PoolStart(out, err, events, procs, tuple(limits))
        if self.pool.serves(self.launch, self.token):
            child = await self.pool.start(self.launch, env, start)
            if child is not None:
                return child
        return await self.pool.exec(self.launch, env, start)

    async def _read(
        self, fd: int, limit: int, handle: Callable[[bytes, bool], Awaitable[None]]
    ) -> None:
        """Pump the pipe into `handle` from the first data on. Most pipes of most jobs
        (stderr, events; every pipe of a quiet job) end without a byte: those cost one
        watch of the fd and one read, not a transport, a reader and a task each."""
        loop = asyncio.get_running_loop()
        idle: list[float | None] = [loop.time()]  # waiting for the first data since
        self.idle.append(idle)
        pump: asyncio.Future[None] = loop.create_future()  # done at the end of the pipe
        self.pumps.append(pump)
        if not ON_WINDOWS:  # always so: Windows reads its pipes in winrun.py
            os.set_blocking(fd, False)

        def readable() -> None:
            loop.remove_reader(fd)
            if pump.done():
                return  # given up meanwhile (`_drain`)
            try:
                first = os.read(fd, _CHUNK)
            except BlockingIOError:
                loop.add_reader(fd, readable)
                return
            except OSError:
                first = b""
            if not first:
                idle[0] = None
                pump.set_result(None)
                return
            stream = loop.create_task(self._stream(fd, first, limit, handle, idle))
            self.streams.append(stream)
            stream.add_done_callback(functools.partial(_pass_on, pump))
            pump.add_done_callback(functools.partial(_stop, stream))

        def given_up(_: asyncio.Future[None]) -> None:
            if pump.cancelled():
                loop.remove_reader(fd)

        pump.add_done_callback(given_up)
        loop.add_reader(fd, readable)

    async def _stream(
        self,
        fd: int,
        first: bytes,
        limit: int,
        handle: Callable[[bytes, bool], Awaitable[None]],
        idle: list[float | None],
    ) -> None:
        """A pipe with data: read to its end through a transport, `first` its beginning."""
        loop = asyncio.get_running_loop()
        # Small buffer: the transport pauses reading (and the child blocks) when it fills.
        reader = asyncio.StreamReader(limit=_CHUNK * 2)
        reader.feed_data(first)
        pipe: IO[bytes] = os.fdopen(fd, "rb", buffering=0)
        self.read_fds.remove(fd)  # the transport owns it from now on
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        self.transports.append(transport)
        await self._pump(reader, limit, handle, idle)

    async def _pump(
        self,
        reader: Chunks,
        limit: int,
        handle: Callable[[bytes, bool], Awaitable[None]],
        idle: list[float | None],
    ) -> None:
        """Split the pipe into lines; `idle[0]` is when it started waiting for data, if it is.

        A line longer than `limit` goes to `handle` in pieces, each but the last marked cut.
        """
        loop = asyncio.get_running_loop()
        buf = bytearray()
        cut = False
        while True:
            idle[0] = loop.time()
            chunk = await reader.read(_CHUNK)
            idle[0] = None
            if not chunk:
                break
            buf += chunk
            while True:
                nl = buf.find(b"\n", 0, limit + 1)
                if nl != -1:
                    line = bytes(buf[:nl])
                    del buf[: nl + 1]
                    cut = False
                elif len(buf) > limit:
                    at = _utf8_cut(buf, limit)
                    line = bytes(buf[:at])
                    del buf[:at]
                    cut = True
                else:
                    break
                await handle(line, cut)
        if buf or cut:
            await handle(bytes(buf), False)  # the end of the last line

    async def _stdout(self, line: bytes, cut: bool) -> None:
        await self._output(Stream.STDOUT, line, cut)

    async def _stderr(self, line: bytes, cut: bool) -> None:
        await self._output(Stream.STDERR, line, cut)

    async def _output(self, stream: Stream, line: bytes, cut: bool) -> None:
        """One line, or one piece of a line cut at LINE_LIMIT, masked as part of the whole.

        A secret may straddle the cut: the pieces of one line go through one stream masker,
        which holds back a possible secret's beginning until the next piece shows its end.
        """
        continued = stream in self.cut
        if cut:
            self.cut.add(stream)
            text = line.decode("utf-8", errors="replace")
        else:
            self.cut.discard(stream)
            text = _decode(line)
        if self.masker is not None:
            masking = self.masking.get(stream)
            if masking is None:
                masking = self.masking[stream] = self.masker.stream()
            text = masking.feed(text) + ("" if cut else masking.flush())
        if text or not (cut or continued):  # an empty line stays; an empty piece does not
            await self.emit(OutputLine(stream, text))

    def _mask(self, text: str) -> str:
        return text if self.masker is None else self.masker.mask(text)

    async def _event(self, line: bytes, cut: bool) -> None:
        # An event cut at EVENT_LIMIT is refused once, for its first piece: the pieces after
        # it are not events, and would show text from the middle of it.
        continued, self.event_cut = self.event_cut, cut
        if continued:
            return
        text = _decode(line)
        if not text.strip():
            return
        if len(line) >= EVENT_LIMIT:
            reason = f"longer than {EVENT_LIMIT} bytes"
        else:
            try:
                event = parse_event(text)
            except MalformedEvent as e:
                reason = str(e)
            else:
                if isinstance(event, AttachmentRequest):
                    await self._attachment(event)
                else:
                    await self.emit(event)
                return
        # Masked before it is cut short: a secret cut in two would be masked in neither half.
        text = self._mask(text)
        shown = text[:200] + ("…" if len(text) > 200 else "")
        await self.emit(
            OutputLine(Stream.STDERR, f"opsroom: ignored a malformed event ({reason}): {shown}")
        )

    async def _attachment(self, request: AttachmentRequest) -> None:
        try:
            event = resolve_attachment(
                request.path,
                root=self.launch.cwd,
                # Masked whole: the display name keeps only what follows the last slash.
                name=self._mask(request.name) if request.name else None,
                content_type=request.content_type,
                limit=self.max_attachment,
            )
        except AttachmentRefused as e:
            shown = self._mask(request.path)[:200]
            await self.emit(OutputLine(Stream.STDERR, f"opsroom: did not attach {shown!r}: {e}"))
            return
        await self.emit(event)

    async def _drain(self) -> None:
        """Let the readers reach EOF, but not wait on a pipe an escaped process holds."""
        loop = asyncio.get_running_loop()
        while pending := [p for p in self.pumps if not p.done()]:
            await asyncio.wait(pending, timeout=_DRAIN_IDLE / 5)
            now = loop.time()
            # A slow on_event is progress, not a hang: only a pipe silent for a while counts.
            for task, idle in zip(self.pumps, self.idle, strict=True):
                since = idle[0]
                if not task.done() and since is not None and now - since > _DRAIN_IDLE:
                    task.cancel()
        # All done: their outcomes are read as they are (a gather would cost a turn of the loop).
        for task in self.pumps:
            if not task.cancelled() and isinstance(error := task.exception(), Exception):
                raise error

    async def cleanup(self) -> None:
        """Whatever happened: no child left running, no task left behind, no fd leaked."""
        if self.proc is not None:
            if not self.tree_ended:
                if self.group is not None and self.contained:
                    tree.reap(await self.group.kill())
                elif _LINUX:
                    tree.kill_now(self.token, pgid=self.proc.pid)
                elif self.proc.returncode is None:
                    _signal_group(self.proc, _KILL)
                self.tree_ended = True
            if self.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    await self.proc.wait()
            tree.release(self.proc.pid)
        if self.group is not None and not self.group.remove():
            # A process stuck in the kernel (D state) keeps it: it goes once that one does.
            log.warning("the cgroup %s of an ended job is not empty yet", self.group.name)
        running = [task for task in (*self.pumps, *self.streams) if not task.done()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        for task in (*self.pumps, *self.streams):
            if not task.cancelled():
                task.exception()  # retrieved: never reported as lost
        for transport in self.transports:
            transport.close()
        loop = asyncio.get_running_loop()
        for fd in self.read_fds:
            loop.remove_reader(fd)  # out of the loop before the number is free again
            with contextlib.suppress(OSError):
                os.close(fd)
        self.read_fds = []


def _leftover_note(pids: list[int]) -> str:
    if len(pids) == 1:
        return f"opsroom: ended 1 leftover process the script left running (pid {pids[0]})"
    listed = ", ".join(str(p) for p in pids)
    return f"opsroom: ended {len(pids)} leftover processes the script left running (pids {listed})"


def _utf8_cut(buf: bytearray, limit: int) -> int:
    """A split point at or below limit that does not cut a UTF-8 character in two."""
    cut = limit
    while cut > limit - 4 and cut > 0 and (buf[cut] & 0xC0) == 0x80:
        cut -= 1
    return cut if cut > 0 else limit


def _decode(line: bytes) -> str:
    if line.endswith(b"\r"):
        line = line[:-1]
    return line.decode("utf-8", errors="replace")


def _signal_group(proc: Child, sig: signal.Signals) -> None:
    if ON_WINDOWS:
        return  # a Windows job ends through its Job Object (winrun.py)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)  # pgid == pid: the child leads its own session


def _start_error(launch: Launch, err: OSError) -> str:
    reason = err.strerror or str(err)
    if err.filename is not None and str(err.filename) == launch.cwd:
        return f"could not start the job: working folder {launch.cwd}: {reason}"
    return f"could not start {launch.argv[0]}: {reason}"


def _stop(stream: asyncio.Task[None], pump: asyncio.Future[None]) -> None:
    """A pump given up (`_drain`): its reader stops too."""
    if pump.cancelled():
        stream.cancel()


def _pass_on(pump: asyncio.Future[None], stream: asyncio.Task[None]) -> None:
    """A pipe's reader has ended: so has its pump, the same way."""
    if pump.done():
        return
    if stream.cancelled():
        pump.cancel()
    elif (error := stream.exception()) is not None:
        pump.set_exception(error)
    else:
        pump.set_result(None)


def _exit_event(
    returncode: int | None, outcome: JobState | None, timeout: float, reason: str | None = None
) -> ExitEvent:
    code = returncode if returncode is not None and returncode >= 0 else None
    if outcome is JobState.TIMED_OUT:
        return ExitEvent(code, JobState.TIMED_OUT, f"timed out after {timeout:g}s")
    if outcome is JobState.CANCELLED:
        return ExitEvent(code, JobState.CANCELLED, "cancelled")
    if reason is not None:
        return ExitEvent(code, JobState.FAILED, reason)
    if returncode == 0:
        return ExitEvent(0, JobState.SUCCEEDED)
    if code is not None:
        return ExitEvent(code, JobState.FAILED, f"exited with status {code}")
    try:
        name = signal.Signals(-(returncode or 0)).name
    except ValueError:
        name = f"signal {-(returncode or 0)}"
    return ExitEvent(None, JobState.FAILED, f"killed by {name}")
