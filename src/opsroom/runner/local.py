"""Run one launch as a local child process and stream what it says (SPEC §5.1, §5.3, §5.5).

The child gets its own session (so its own process group), stdin from /dev/null, stdout and
stderr on pipes read line by line, and a third pipe for structured events whose fd number is
in `OPSROOM_EVENTS_FD`. Timeouts and cancel signal the whole group: TERM, then KILL after the
grace period. Our pipe ends are closed once the main process is gone and the grace has passed,
so a daemonised grandchild that keeps a pipe open cannot hold the job forever. A child that
calls setsid itself escapes the group; only a cgroup would catch it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
from collections.abc import Awaitable, Callable
from typing import IO, Any

from opsroom.model.jobs import ExitEvent, JobEvent, JobState, OutputLine, Stream
from opsroom.runner.argv import Launch
from opsroom.runner.events import MalformedEvent, parse_event

LINE_LIMIT = 64 * 1024  # longer output lines are split
EVENT_LIMIT = 4 * 1024 * 1024  # a table can be big; beyond this an event is dropped
_CHUNK = 64 * 1024
_POSIX = os.name == "posix"
# After a kill, anything still holding a pipe escaped the group: don't wait long for it.
_DRAIN_AFTER_KILL = 1.0

EventHandler = Callable[[JobEvent], Awaitable[None] | None]


async def run_local(
    launch: Launch,
    *,
    timeout: float,
    kill_grace: float,
    cancel: asyncio.Event | None = None,
    on_event: EventHandler,
) -> ExitEvent:
    """Run the launch to its end, passing output and events to on_event; never raises for
    a script's failure (a start failure is a FAILED exit with a message)."""
    run = _Run(launch, on_event)
    try:
        return await run.execute(timeout=timeout, kill_grace=kill_grace, cancel=cancel)
    finally:
        await run.cleanup()


class _Run:
    """The state of one child: its pipes, reader tasks and process."""

    def __init__(self, launch: Launch, on_event: EventHandler) -> None:
        self.launch = launch
        self.on_event = on_event
        self.proc: asyncio.subprocess.Process | None = None
        self.transports: list[asyncio.BaseTransport] = []
        self.pumps: list[asyncio.Task[None]] = []
        self.read_fds: list[int] = []

    async def emit(self, event: JobEvent) -> None:
        result = self.on_event(event)
        if inspect.isawaitable(result):
            await result

    async def execute(
        self, *, timeout: float, kill_grace: float, cancel: asyncio.Event | None
    ) -> ExitEvent:
        started = await self._start()
        if isinstance(started, ExitEvent):
            return started
        proc = started
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
        if outcome is not None:
            await self._terminate(wait_task, kill_grace)
        await self._drain(_DRAIN_AFTER_KILL if outcome else kill_grace)
        return _exit_event(proc.returncode, outcome, timeout)

    async def _start(self) -> asyncio.subprocess.Process | ExitEvent:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.read_fds = [out_r, err_r]
        write_fds = [out_w, err_w]
        env = dict(self.launch.env)
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
        await self._read(out_r, LINE_LIMIT, self._stdout)
        await self._read(err_r, LINE_LIMIT, self._stderr)
        if ev_r != -1:
            await self._read(ev_r, EVENT_LIMIT, self._event)
        return self.proc

    async def _read(self, fd: int, limit: int, handle: Callable[[bytes], Awaitable[None]]) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_CHUNK * 2)
        pipe: IO[bytes] = os.fdopen(fd, "rb", buffering=0)
        self.read_fds.remove(fd)  # the transport owns it from now on
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        self.transports.append(transport)
        self.pumps.append(asyncio.ensure_future(_pump(reader, limit, handle)))

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
                await self.emit(parse_event(text))
                return
            except MalformedEvent as e:
                reason = str(e)
        shown = text[:200] + ("…" if len(text) > 200 else "")
        await self.emit(
            OutputLine(Stream.STDERR, f"opsroom: ignored a malformed event ({reason}): {shown}")
        )

    async def _terminate(self, wait_task: asyncio.Future[int], grace: float) -> None:
        assert self.proc is not None
        _signal_group(self.proc, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(wait_task), grace)
        # Also reaches group members that ignored TERM after the main process obeyed it.
        _signal_group(self.proc, signal.SIGKILL if _POSIX else signal.SIGTERM)
        await wait_task

    async def _drain(self, grace: float) -> None:
        """Let the readers reach EOF, but not wait on a pipe an escaped process holds."""
        if self.pumps:
            _, pending = await asyncio.wait(self.pumps, timeout=grace)
            for task in pending:
                task.cancel()
            results = await asyncio.gather(*self.pumps, return_exceptions=True)
            for r in results:
                if isinstance(r, Exception):
                    raise r

    async def cleanup(self) -> None:
        """Whatever happened: no child left running, no task left behind, no fd leaked."""
        if self.proc is not None and self.proc.returncode is None:
            _signal_group(self.proc, signal.SIGKILL if _POSIX else signal.SIGTERM)
            with contextlib.suppress(ProcessLookupError):
                await self.proc.wait()
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


async def _pump(
    reader: asyncio.StreamReader, limit: int, handle: Callable[[bytes], Awaitable[None]]
) -> None:
    buf = bytearray()
    while chunk := await reader.read(_CHUNK):
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
