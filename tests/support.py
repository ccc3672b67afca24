"""Helpers shared by the tests: the real `opsroom` console script, run as a child process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

FIXTURES = Path(__file__).parent / "fixtures"
OPSROOM = str(Path(sys.executable).with_name("opsroom"))


@dataclass(frozen=True)
class Result:
    """What one `opsroom` call did."""

    code: int
    stdout: str
    stderr: str

    @property
    def json_lines(self) -> list[Any]:
        """stdout parsed as JSON lines."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    @property
    def summary(self) -> dict[str, Any]:
        """The last JSON line of `run --json`."""
        last: dict[str, Any] = self.json_lines[-1]
        return last


Opsroom = Callable[..., Result]


# -- ports -------------------------------------------------------------------------------
# A port found free and then closed can be taken by anyone before the server binds it;
# these hand over a socket that is already bound, or a port the kernel holds back.


def bound_socket(host: str = "127.0.0.1") -> socket.socket:
    """A TCP socket bound to a port the kernel chose; the port is ours while it is open.

    Hand it to an in-process server (uvicorn's `sockets=`), or keep it open and never
    listening: then it is an address where every connection is refused.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.bind((host, 0))
    except OSError:
        sock.close()
        raise
    return sock


def port_of(sock: socket.socket) -> int:
    """The port a bound socket holds."""
    port: int = sock.getsockname()[1]
    return port


def port_for_a_server(host: str = "127.0.0.1") -> int:
    """A port for a server program that can only be told a number (slapd, PostgreSQL...).

    The port accepted one connection and closed its end first, so it sits in TIME_WAIT: the
    kernel gives it to no other port-0 bind for a minute, while a server that binds with
    SO_REUSEADDR (as slapd, PostgreSQL, ngircd, Go and Twisted servers do) takes it at once.
    """
    with bound_socket(host) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.listen(1)
        with socket.create_connection(listener.getsockname()[:2]):
            accepted, _ = listener.accept()
            accepted.close()  # the side that closes first is the one left in TIME_WAIT
        return port_of(listener)


# -- waiting for something to happen ----------------------------------------------------
T = TypeVar("T")


def wait_for(cond: Callable[[], T], timeout: float = 30, *, what: str = "the condition") -> T:
    """Poll `cond` until it returns something truthy and return it; fail after `timeout` s.

    For waiting on another process (a file, a row, a log line) where no event can be had.
    """
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(pause)  # a poll interval, not a barrier: the loop rechecks `cond`
        pause = min(pause * 2, 0.1)


@overload
async def async_wait_for(
    cond: Callable[[], Awaitable[T]], timeout: float = 30, *, what: str = "the condition"
) -> T: ...


@overload
async def async_wait_for(
    cond: Callable[[], T], timeout: float = 30, *, what: str = "the condition"
) -> T: ...


async def async_wait_for(
    cond: Callable[[], Any], timeout: float = 30, *, what: str = "the condition"
) -> Any:
    """`wait_for` for the event loop: `cond` may be a plain or an async function."""
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        got = cond()
        if isinstance(got, Awaitable):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(pause)  # a poll interval: other tasks run, then `cond` again
        pause = min(pause * 2, 0.1)


def alive(pid: int) -> bool:
    """Running and not a zombie, read from /proc independently of the runner."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def carriers(token: str) -> list[int]:
    """Every live process whose environment holds the job token."""
    needle = f"OPSROOM_JOB_TOKEN={token}".encode()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                env = Path(f"/proc/{name}/environ").read_bytes()
            except OSError:
                continue
            if needle in env.split(b"\0") and alive(int(name)):
                found.append(int(name))
    return found


# What a shell's background job (SIGINT, SIGQUIT) and nohup (SIGHUP) start a program with.
LAUNCHER_IGNORES = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM)


@contextlib.contextmanager
def started_ignoring(signals: tuple[int, ...] = LAUNCHER_IGNORES) -> Iterator[None]:
    """This process (opsroom under test) ignoring `signals` meanwhile, as when it was started
    in the background or under nohup: what it starts inherits that."""
    before = {number: signal.signal(number, signal.SIG_IGN) for number in signals}
    try:
        yield
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)


def ignored_in(status_line: str) -> list[str]:
    """The names of the signals a `SigIgn:` line of /proc/PID/status says are ignored, of
    those a launcher may ignore."""
    mask = int(status_line.split()[1], 16)
    return [signal.Signals(n).name for n in LAUNCHER_IGNORES if mask & (1 << (n - 1))]
