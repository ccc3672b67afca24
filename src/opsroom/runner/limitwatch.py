"""One thread that reads every running job's cgroup counters, for the jobs' limits.

A job's memory, process and CPU limits are the kernel's (cgroup.py); the moment one is hit
is read from counters in its cgroup files. Reading them on the event loop cost two opens and
reads per job a few times a second, and an open of a cgroup file waits while the kernel
moves another process into a cgroup (a lock held across an RCU grace period): at 500 jobs,
tens of milliseconds in which no room was answered. Here one thread reads them all, and a hit
is handed to the job's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable

# How often a running job's cgroup counters are read: how late a limit hit is noticed at most.
POLL_SECONDS = 0.25

_Check = Callable[[], "str | None"]


class LimitWatch:
    """Jobs' limit checks, run by one thread while any job is watched."""

    def __init__(self, poll: float = POLL_SECONDS) -> None:
        self.poll = poll
        self._lock = threading.Lock()
        self._watched: dict[asyncio.Future[str], _Check] = {}
        self._thread: threading.Thread | None = None

    def watch(self, check: _Check) -> asyncio.Future[str]:
        """A future that gets the reason `check` returns once it returns one; cancel it
        to stop watching."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._watched[future] = check
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="opsroom-limits", daemon=True
                )
                self._thread.start()
        return future

    def _run(self) -> None:
        while True:
            with self._lock:
                for done in [f for f in self._watched if f.done()]:
                    del self._watched[done]
                if not self._watched:
                    self._thread = None
                    return
                watched = list(self._watched.items())
            for future, check in watched:
                if future.done():
                    continue
                reason = check()
                if reason is not None:
                    with contextlib.suppress(RuntimeError):  # its loop has closed
                        future.get_loop().call_soon_threadsafe(_settle, future, reason)
            time.sleep(self.poll)


def _settle(future: asyncio.Future[str], reason: str) -> None:
    if not future.done():
        future.set_result(reason)


WATCH = LimitWatch()
