"""Starting a job's process off the event loop, and collecting its exit status from it.

This is the way when the spawner (pool.py, `[runner] spawner`) does not start the job: it is
off, not ready yet, or gone. Starting a process forks opsroom, and the child enters the
job's cgroup and sets its limits before it execs the script. With that work between fork
and exec, Python cannot use vfork: it copies opsroom's page tables, and waits until the
child has exec'd, and entering a cgroup may wait for the kernel (cgroup.py, `move_wait`).
All of it would stop the event loop, and with it every room, for milliseconds per job; here
it happens in a spawner thread.

The process is then watched from the loop: its pidfd turns readable when it exits, and its
status is collected by pid (`waitpid`, never for any child) — once, here, with no watcher
thread per child. `tree.manage` marks it at once, so a job ending meanwhile does not collect
it as an orphan of its own. Linux with pidfds (5.3+) only: elsewhere `local.py` starts
processes as asyncio does.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opsroom.runner import tree

# One: it already keeps the loop free while the kernel makes a start wait, and each more
# one competes with the loop for the GIL (Popen's own Python code, and a fork with a
# preexec_fn holds the GIL): with 64 starts at once the loop stalled up to 50-150 ms with
# one thread and 100-210 ms with four, which started up to 1.8x more jobs a second
# (bench/README.md).
SPAWNERS = 1
_spawners: ThreadPoolExecutor | None = None

log = logging.getLogger("opsroom.runner")


@functools.cache
def pidfds() -> bool:
    """True where pidfds work (Linux 5.3+): processes are started and watched here."""
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (OSError, AttributeError):
        return False
    return True


class Spawned:
    """A job's process started by `start`: ended, its status collected, when its pidfd says."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.pid = popen.pid
        self.returncode: int | None = None
        # Kept until its status is in: a Popen dropped unreaped is polled (so reaped) by the
        # next Popen made in this process, which would take the status from us.
        self._popen: subprocess.Popen[bytes] | None = popen
        loop = asyncio.get_running_loop()
        self._ended: asyncio.Future[int] = loop.create_future()
        self._pidfd = -1
        self._waiter: asyncio.Future[tuple[int, int]] | None = None
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except OSError:
            # Out of fds, most likely: a thread waits for this one instead.
            self._waiter = asyncio.ensure_future(asyncio.to_thread(os.waitpid, self.pid, 0))
            self._waiter.add_done_callback(self._waited)
        else:
            loop.add_reader(self._pidfd, self._reap)

    async def wait(self) -> int:
        """Wait for it to end; its exit status (negative: the signal that killed it)."""
        return await asyncio.shield(self._ended)

    def _reap(self) -> None:
        # The pidfd turns readable when the process exits; it stays our zombie until this.
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            # Someone else collected it (a bug): reported as asyncio does.
            log.warning("the exit status of job process %d was collected elsewhere", self.pid)
            pid, status = self.pid, 255 << 8
        if pid != 0:
            self._done(os.waitstatus_to_exitcode(status))

    def _waited(self, waiter: asyncio.Future[tuple[int, int]]) -> None:
        ok = not waiter.cancelled() and waiter.exception() is None
        self._done(os.waitstatus_to_exitcode(waiter.result()[1]) if ok else 255)

    def _done(self, code: int) -> None:
        if self._pidfd != -1:
            asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1
        self.returncode = code
        if self._popen is not None:
            self._popen.returncode = code  # collected: nothing left for Popen to wait for
            self._popen = None
        if not self._ended.done():
            self._ended.set_result(code)


async def start(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cwd: str,
    stdout: int,
    stderr: int,
    extra: dict[str, Any],
    cancelled: Callable[[Spawned], None],
) -> Spawned:
    """Start the process (stdin /dev/null; `extra`: Popen's session, fds and preexec) in a
    spawner thread while the loop runs on; raises what Popen raises.

    Cancelled while the thread runs, it still waits for the start to end — the fds the
    process gets must stay open until then — and gives the process to `cancelled`, for the
    caller to end with its tree, before it raises.
    """
    loop = asyncio.get_running_loop()
    popen = functools.partial(_popen, argv, env, cwd, stdout, stderr, extra)
    started = loop.run_in_executor(_executor(), popen)
    try:
        # asyncio.wait never cancels what it waits for: a cancel leaves the start running.
        await asyncio.wait({started})
    except asyncio.CancelledError:
        while not started.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({started})
        if not started.cancelled() and started.exception() is None:
            cancelled(Spawned(started.result()))
        raise
    return Spawned(started.result())  # raises what the start raised


def _popen(
    argv: Sequence[str], env: dict[str, str], cwd: str, out: int, err: int, extra: dict[str, Any]
) -> subprocess.Popen[bytes]:
    """In a spawner thread: start the process and mark it as waited for by its runner."""
    proc: subprocess.Popen[bytes] = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd, **extra
    )
    # At once, not when the loop gets to it: a job ending meanwhile must not take this one,
    # which may have exited already, for an orphan of its own and collect its status.
    tree.manage(proc.pid)
    return proc


def _executor() -> ThreadPoolExecutor:
    global _spawners
    if _spawners is None:
        _spawners = ThreadPoolExecutor(SPAWNERS, thread_name_prefix="opsroom-spawn")
    return _spawners
