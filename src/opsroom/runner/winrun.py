"""The Windows path of `run_local`: the job's processes in a Job Object, its pipes read by threads.

On Windows asyncio can neither watch pipes nor start processes on the selector event loop
that psycopg's async connections need (the CLI installs it: runner/platform.py). So threads
do the waiting here: one per pipe blocks in ReadFile and hands each chunk to the loop,
reading on only once the loop took it (a script printing faster than the chat takes it
blocks on its pipe, as on Linux); one waits for the script's process to end; one waits for
the job's messages (a limit reached, the last process gone). Lines, masking, events,
attachments, timeouts, cancel and the outcome are `run_local`'s own code (`local._Run`).

Ending a job: Ctrl+Break to its process group, the grace period for the job to empty, then
TerminateJobObject; where Ctrl+Break cannot be sent (opsroom has no console), at once.
A process the script left running when it exited is ended the same way, and named in the
output as on Linux. No POSIX call is on this path (tests/unit/runner/test_windows_path.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from opsroom.model.jobs import ExitEvent, JobState
from opsroom.runner.argv import Launch
from opsroom.runner.local import (
    EVENT_LIMIT,
    LINE_LIMIT,
    Child,
    EventHandler,
    Redactor,
    _Run,
)
from opsroom.runner.tree import TOKEN_VAR
from opsroom.runner.winjob import (
    JOB_KEY,
    JOB_OBJECT_MSG_ACTIVE_PROCESS_ZERO,
    JOB_OBJECT_MSG_NEW_PROCESS,
    STOP_KEY,
    SYNC_KEY,
    JobObject,
    Kernel32,
    WindowsApiError,
    limit_reason,
    read_pipe,
    wait_process,
)

_CHUNK = 64 * 1024
# Chunks a reader thread may have handed over that the loop has not taken yet.
_IN_FLIGHT = 2
# While a job ends: how often its process count is read again should the job's "last
# process gone" message not come (Windows does not promise to deliver it).
_EMPTY_POLL = 0.05

log = logging.getLogger("opsroom.runner")


class _Handoff:
    """A pipe's chunks from its reader thread to the loop, `_IN_FLIGHT` at most at a time.

    `read` is the `_pump`'s side (b"" at the end), `put` the thread's; once `close`d, the
    thread's next `put` says stop instead of waiting for room.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self.room = threading.Semaphore(_IN_FLIGHT)
        self.closed = False

    def put(self, chunk: bytes) -> bool:
        """In the thread: hand a chunk over, once there is room; False: stop reading."""
        if self.closed:
            return False
        self.room.acquire()
        return not self.closed and _call(self.loop, self.chunks.put_nowait, chunk)

    async def read(self, n: int) -> bytes:
        """The next chunk (at most `_CHUNK` bytes, whatever `n` asks); b"" at the end."""
        chunk = await self.chunks.get()
        self.room.release()
        return chunk

    def close(self) -> None:
        """Nobody reads on: a thread waiting for room wakes and stops."""
        self.closed = True
        self.room.release()


class _Process:
    """The script's process as `_Run` waits for it: pid, exit status once known, wait()."""

    def __init__(self, pid: int, loop: asyncio.AbstractEventLoop) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._ended: asyncio.Future[None] = loop.create_future()

    def exited(self, code: int) -> None:
        """On the loop: the waiter thread saw it end."""
        self.returncode = code
        if not self._ended.done():
            self._ended.set_result(None)

    async def wait(self) -> int | None:
        """Wait for the process to end; its exit code."""
        await asyncio.shield(self._ended)
        return self.returncode


def _call(loop: asyncio.AbstractEventLoop, function: Callable[..., Any], *args: Any) -> bool:
    """From a thread: run `function(*args)` on the loop; False when the loop is closed."""
    try:
        loop.call_soon_threadsafe(function, *args)
    except RuntimeError:
        return False
    return True


def _thread(name: str, target: Callable[..., None], *args: Any) -> None:
    # Daemon threads: one blocked in Windows must never keep opsroom from exiting.
    threading.Thread(target=target, args=args, name=name, daemon=True).start()


def _read_pipe(k32: Kernel32, handle: int, handoff: _Handoff) -> None:
    """Thread: read the pipe to its end (or until nobody reads on), then close it."""
    try:
        while (chunk := read_pipe(k32, handle, _CHUNK)) is not None:
            if chunk and not handoff.put(chunk):
                return
        handoff.put(b"")
    finally:
        k32.CloseHandle(handle)


def _wait_process(
    k32: Kernel32, process: int, loop: asyncio.AbstractEventLoop, proc: _Process
) -> None:
    """Thread: wait for the script's process to end and tell the loop its exit code."""
    try:
        code = wait_process(k32, process)
    except WindowsApiError as e:
        log.warning("could not learn how job process %s ended: %s", proc.pid, e)
        code = 1
    _call(loop, proc.exited, code)


def _watch_job(
    job: JobObject,
    loop: asyncio.AbstractEventLoop,
    on_message: Callable[[int, int], None],
    stopped: asyncio.Future[None],
) -> None:
    """Thread: pass the job's messages to the loop until told to stop."""
    try:
        while (message := job.next_message()) is not None:
            _call(loop, on_message, *message)
    finally:
        _call(loop, _settle, stopped)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class WindowsRun(_Run):
    """One job run on Windows; `kernel32` gives the Windows API (a fake one in tests)."""

    def __init__(
        self,
        launch: Launch,
        on_event: EventHandler,
        *,
        token: str,
        max_attachment: int,
        masker: Redactor | None,
        kernel32: Callable[[], Kernel32],
    ) -> None:
        super().__init__(
            launch, on_event, token=token, max_attachment=max_attachment, masker=masker
        )
        self.load = kernel32
        self.k32: Kernel32 | None = None
        self.job: JobObject | None = None
        self.read_handles: list[int] = []  # ours to close until a reader thread owns one
        self.handoffs: list[_Handoff] = []
        self.hit: str | None = None  # the limit the job reached, as its outcome says it
        self.limit: asyncio.Future[str] | None = None
        self.empty = asyncio.Event()  # the job said its last process is gone
        self.watcher: asyncio.Future[None] | None = None  # done once the watcher stopped
        self.syncs: list[asyncio.Future[None]] = []

    async def _start(self) -> Child | ExitEvent:
        loop = asyncio.get_running_loop()
        child_ends: list[int] = []
        try:
            k32 = self.k32 = self.load()
            job = self.job = JobObject(k32, self.launch.limits)
            for _ in range(3):  # stdout, stderr, events
                ours, theirs = job.pipe()
                self.read_handles.append(ours)
                child_ends.append(theirs)
            stdin = job.null_input()
            child_ends.append(stdin)
            out_w, err_w, events_w = child_ends[:3]
            env = dict(self.launch.env)
            env[TOKEN_VAR] = self.token
            # A handle, not a C runtime fd: the PowerShell bootstrap and opsroom.script
            # open it as one on Windows.
            env["OPSROOM_EVENTS_FD"] = str(events_w)
            # opsroom reads the pipes as UTF-8; Python on Windows writes to a pipe in the
            # ANSI code page unless told otherwise.
            env.setdefault("PYTHONIOENCODING", "utf-8")
            started = job.start(
                self.launch.argv,
                env,
                self.launch.cwd,
                stdin=stdin,
                stdout=out_w,
                stderr=err_w,
                inherit=(events_w,),
            )
        except (OSError, WindowsApiError) as e:
            return ExitEvent(exit_code=None, state=JobState.FAILED, message=self._failed(e))
        finally:
            # Only the child may hold the write ends, or the pipes would never end.
            if self.k32 is not None:
                for handle in child_ends:
                    self.k32.CloseHandle(handle)
        proc = _Process(started.pid, loop)
        self.proc = proc
        _thread(f"opsroom-wait-{proc.pid}", _wait_process, k32, started.process, loop, proc)
        self.limit = loop.create_future()
        self.watcher = loop.create_future()
        _thread(f"opsroom-job-{proc.pid}", _watch_job, job, loop, self._message, self.watcher)
        out_r, err_r, events_r = self.read_handles
        await self._read(out_r, LINE_LIMIT, self._stdout)
        await self._read(err_r, LINE_LIMIT, self._stderr)
        await self._read(events_r, EVENT_LIMIT, self._event)
        return proc

    def _failed(self, error: OSError | WindowsApiError) -> str:
        if not isinstance(error, WindowsApiError) or error.function != "CreateProcessW":
            return f"could not start the job: {error}"
        if error.filename is not None and error.filename == self.launch.cwd:
            return f"could not start the job: working folder {self.launch.cwd}: {error.reason}"
        return f"could not start {self.launch.argv[0]}: {error.reason}"

    async def _read(
        self, fd: int, limit: int, handle: Callable[[bytes, bool], Awaitable[None]]
    ) -> None:
        handoff = _Handoff(asyncio.get_running_loop())
        self.read_handles.remove(fd)  # the thread closes it from now on
        self.handoffs.append(handoff)
        assert self.k32 is not None
        _thread(f"opsroom-read-{fd}", _read_pipe, self.k32, fd, handoff)
        idle: list[float | None] = [None]
        self.idle.append(idle)
        self.pumps.append(asyncio.ensure_future(self._pump(handoff, limit, handle, idle)))

    def _message(self, key: int, message: int) -> None:
        """On the loop: one message from the job's port."""
        if key == SYNC_KEY:
            if self.syncs:
                _settle(self.syncs.pop(0))
        elif key != JOB_KEY:
            return
        elif message == JOB_OBJECT_MSG_ACTIVE_PROCESS_ZERO:
            self.empty.set()
        elif message == JOB_OBJECT_MSG_NEW_PROCESS:
            self.empty.clear()
        elif self.hit is None and (reason := limit_reason(message, self.launch.limits)):
            self.hit = reason
            if self.limit is not None and not self.limit.done():
                self.limit.set_result(reason)

    def _watching(self) -> bool:
        return self.limit is not None

    def _watch_limits(self) -> asyncio.Future[str]:
        assert self.limit is not None
        return asyncio.shield(self.limit)  # cancelled when the job ends; the limit stays

    def _limit_reached(self, returncode: int | None) -> str | None:
        return self.hit

    async def _sync(self) -> None:
        """Wait until the watcher has passed on every message the job posted before now."""
        if self.job is None or self.watcher is None or self.watcher.done():
            return
        done = asyncio.get_running_loop().create_future()
        self.syncs.append(done)
        try:
            self.job.post(SYNC_KEY)
        except WindowsApiError:
            self.syncs.remove(done)
            return
        await asyncio.wait({done, self.watcher}, return_when=asyncio.FIRST_COMPLETED)

    async def end_tree(self, grace: float) -> list[int]:
        """Ctrl+Break, grace, TerminateJobObject for what is left; the pids it ended."""
        job = self.job
        if self.proc is None or job is None or self.tree_ended:
            return []
        left: list[int] = []
        try:
            left = job.pids()
            if left:
                if job.ctrl_break(self.proc.pid):
                    await self._emptied(job, grace)
                if job.active():
                    job.terminate()
        except WindowsApiError as e:
            # Closing the job kills what is in it: it was made to.
            log.warning("ending a job's processes: %s; closing its job object", e)
            job.close()
        self.tree_ended = True
        await self._sync()  # a limit the job reached is known before its outcome is told
        return [pid for pid in left if pid != self.proc.pid]

    async def _emptied(self, job: JobObject, grace: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while (remaining := deadline - loop.time()) > 0:
            self.empty.clear()
            if not job.active():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.empty.wait(), min(remaining, _EMPTY_POLL))

    async def cleanup(self) -> None:
        """Whatever happened: nothing of the job left running, no thread left waiting."""
        job = self.job
        if self.proc is not None and job is not None:
            if not self.tree_ended:
                try:
                    job.terminate()
                except WindowsApiError:
                    job.close()
                self.tree_ended = True
            await self.proc.wait()
        for task in self.pumps:
            task.cancel()
        if self.pumps:
            await asyncio.gather(*self.pumps, return_exceptions=True)
        for handoff in self.handoffs:
            handoff.close()
        if self.k32 is not None:
            for handle in self.read_handles:
                self.k32.CloseHandle(handle)
        self.read_handles = []
        if job is not None:
            if self.watcher is not None and not self.watcher.done():
                with contextlib.suppress(WindowsApiError):
                    job.post(STOP_KEY)
                await self.watcher
            job.close()
