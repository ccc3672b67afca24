"""Run one launch as a local child process and stream what it says (SPEC §5.1, §5.3, §5.5).

The child gets its own session (so its own process group), stdin from /dev/null, stdout and
stderr on pipes read line by line, and a third pipe for structured events whose fd number is
in `OPSROOM_EVENTS_FD`. Every process of the job carries `OPSROOM_JOB_TOKEN`, so `tree` finds
them even after `setsid`. Timeouts, cancel and the caller's task being cancelled end the whole
tree: TERM, then KILL after the grace period. A process still running when the script itself
has exited is ended too, and the job's output says so. Our pipe ends are closed once the tree
is gone and the pipes stay idle, so nothing that escaped can hold the job forever.

Memory stays bounded whatever the script prints: lines go to `on_event` one at a time and are
awaited, and the pipes are not read while `on_event` is busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import IO, Any

from opsroom.model.jobs import ExitEvent, JobEvent, JobState, OutputLine, Stream
from opsroom.runner import tree
from opsroom.runner.argv import Launch
from opsroom.runner.attachments import MAX_ATTACHMENT, AttachmentRefused, resolve_attachment
from opsroom.runner.events import AttachmentRequest, MalformedEvent, parse_event

LINE_LIMIT = 64 * 1024  # longer output lines are split
EVENT_LIMIT = 4 * 1024 * 1024  # a table can be big; beyond this an event is dropped
_CHUNK = 64 * 1024
_POSIX = os.name == "posix"
_LINUX = sys.platform.startswith("linux")
# Once the tree is ended, a pipe that stays silent this long is held by something that
# escaped: stop reading it.
_DRAIN_IDLE = 0.5

EventHandler = Callable[[JobEvent], Awaitable[None] | None]
StartHandler = Callable[[int], Awaitable[None] | None]


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
) -> ExitEvent:
    """Run the launch to its end, passing output and events to on_event; never raises for
    a script's failure (a start failure is a FAILED exit with a message).

    `token` marks the job's processes (`OPSROOM_JOB_TOKEN`; taken from the launch or made up
    when not given); `on_start` gets the script's pid (its process group and session).
    """
    tree.enable_subreaper()
    token = token or launch.env.get(tree.TOKEN_VAR) or tree.new_token()
    run = _Run(launch, on_event, token=token, max_attachment=max_attachment)
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
        self, launch: Launch, on_event: EventHandler, *, token: str, max_attachment: int
    ) -> None:
        self.launch = launch
        self.on_event = on_event
        self.token = token
        self.max_attachment = max_attachment
        self.proc: asyncio.subprocess.Process | None = None
        self.transports: list[asyncio.BaseTransport] = []
        self.pumps: list[asyncio.Task[None]] = []
        self.read_fds: list[int] = []
        self.idle: list[list[float | None]] = []  # per pump: waiting for data since
        self.tree_ended = False

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
        waiting: set[asyncio.Future[Any]] = {wait_task, *self.pumps}
        if cancel_task is not None:
            waiting.add(cancel_task)
        deadline = loop.time() + timeout
        outcome: JobState | None = None
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
                waiting -= done
        finally:
            if cancel_task is not None:
                cancel_task.cancel()
        leftovers = await self.end_tree(kill_grace)
        await wait_task
        await self._drain()
        if outcome is None and leftovers:
            await self.emit(OutputLine(Stream.STDERR, _leftover_note(leftovers)))
        return _exit_event(proc.returncode, outcome, timeout)

    async def end_tree(self, grace: float) -> list[int]:
        """TERM, grace, KILL for every process of the job; the pids that had to be ended."""
        if self.proc is None or self.tree_ended:
            return []
        if _LINUX:
            ended = await tree.end_processes(self.token, pgid=self.proc.pid, grace=grace)
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
        _signal_group(self.proc, signal.SIGKILL if _POSIX else signal.SIGTERM)
        return [self.proc.pid]

    async def _start(self) -> asyncio.subprocess.Process | ExitEvent:
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
        try:
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
        finally:
            # Only the child may hold the write ends, or we would never see EOF.
            for fd in write_fds:
                os.close(fd)
        tree.manage(self.proc.pid)
        await self._read(out_r, LINE_LIMIT, self._stdout)
        await self._read(err_r, LINE_LIMIT, self._stderr)
        if ev_r != -1:
            await self._read(ev_r, EVENT_LIMIT, self._event)
        return self.proc

    async def _read(self, fd: int, limit: int, handle: Callable[[bytes], Awaitable[None]]) -> None:
        loop = asyncio.get_running_loop()
        # Small buffer: the transport pauses reading (and the child blocks) when it fills.
        reader = asyncio.StreamReader(limit=_CHUNK * 2)
        pipe: IO[bytes] = os.fdopen(fd, "rb", buffering=0)
        self.read_fds.remove(fd)  # the transport owns it from now on
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        self.transports.append(transport)
        idle: list[float | None] = [None]
        self.idle.append(idle)
        self.pumps.append(asyncio.ensure_future(self._pump(reader, limit, handle, idle)))

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        limit: int,
        handle: Callable[[bytes], Awaitable[None]],
        idle: list[float | None],
    ) -> None:
        """Split the pipe into lines; `idle[0]` is when it started waiting for data, if it is."""
        loop = asyncio.get_running_loop()
        buf = bytearray()
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
                elif len(buf) > limit:
                    cut = _utf8_cut(buf, limit)
                    line = bytes(buf[:cut])
                    del buf[:cut]
                else:
                    break
                await handle(line)
        if buf:
            await handle(bytes(buf))

    async def _stdout(self, line: bytes) -> None:
        await self.emit(OutputLine(Stream.STDOUT, _decode(line)))

    async def _stderr(self, line: bytes) -> None:
        await self.emit(OutputLine(Stream.STDERR, _decode(line)))

    async def _event(self, line: bytes) -> None:
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
        shown = text[:200] + ("…" if len(text) > 200 else "")
        await self.emit(
            OutputLine(Stream.STDERR, f"opsroom: ignored a malformed event ({reason}): {shown}")
        )

    async def _attachment(self, request: AttachmentRequest) -> None:
        try:
            event = resolve_attachment(
                request.path,
                root=self.launch.cwd,
                name=request.name,
                content_type=request.content_type,
                limit=self.max_attachment,
            )
        except AttachmentRefused as e:
            shown = request.path[:200]
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
        results = await asyncio.gather(*self.pumps, return_exceptions=True)
        for r in results:
            if isinstance(r, Exception):
                raise r

    async def cleanup(self) -> None:
        """Whatever happened: no child left running, no task left behind, no fd leaked."""
        if self.proc is not None:
            if not self.tree_ended:
                if _LINUX:
                    tree.kill_now(self.token, pgid=self.proc.pid)
                elif self.proc.returncode is None:
                    _signal_group(self.proc, signal.SIGKILL if _POSIX else signal.SIGTERM)
                self.tree_ended = True
            if self.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    await self.proc.wait()
            tree.release(self.proc.pid)
        for task in self.pumps:
            task.cancel()
        if self.pumps:
            await asyncio.gather(*self.pumps, return_exceptions=True)
        for transport in self.transports:
            transport.close()
        for fd in self.read_fds:
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


def _signal_group(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if _POSIX:
            os.killpg(proc.pid, sig)  # pgid == pid: the child leads its own session
        else:
            proc.send_signal(sig)


def _start_error(launch: Launch, err: OSError) -> str:
    reason = err.strerror or str(err)
    if err.filename is not None and str(err.filename) == launch.cwd:
        return f"could not start the job: working folder {launch.cwd}: {reason}"
    return f"could not start {launch.argv[0]}: {reason}"


def _exit_event(returncode: int | None, outcome: JobState | None, timeout: float) -> ExitEvent:
    code = returncode if returncode is not None and returncode >= 0 else None
    if outcome is JobState.TIMED_OUT:
        return ExitEvent(code, JobState.TIMED_OUT, f"timed out after {timeout:g}s")
    if outcome is JobState.CANCELLED:
        return ExitEvent(code, JobState.CANCELLED, "cancelled")
    if returncode == 0:
        return ExitEvent(0, JobState.SUCCEEDED)
    if code is not None:
        return ExitEvent(code, JobState.FAILED, f"exited with status {code}")
    try:
        name = signal.Signals(-(returncode or 0)).name
    except ValueError:
        name = f"signal {-(returncode or 0)}"
    return ExitEvent(None, JobState.FAILED, f"killed by {name}")
