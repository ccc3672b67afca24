"""A warm interpreter per Python environment: Python jobs are forked, not started cold.

Starting Python and importing what the bootstrap needs costs a job about 100 ms; a fork of
an interpreter that has done so already costs a few. So a fork server
(`bootstrap/python_pool.py`) is kept per Python environment — the interpreter that runs plain
scripts and each PEP 723 environment's, with the environment variables that shape how Python
starts — at most `[runner] python_pool` of them, the least recently used one stopped first.

Each job is still a fresh process of its own: forked from a server that never runs a script,
in a session and process group of its own, in its cgroup and under its limits before any of
its code runs, with the environment and pipes `run_local` gave it and nothing else of the
server's. Its description travels in a memfd only the child reads, so no secret ever sits in
the server's memory. opsroom says go only once it knows the child's pid: a child whose start
was given up exits before running anything, and the job starts cold instead.

The first job of an environment runs cold while its server starts (a one-off `opsroom run`
never waits for a server). A server that died — killed, crashed — is replaced by the next job;
one that does not answer within a few seconds is killed and replaced. A job whose server dies
while it runs runs on; how it ended is then known where opsroom adopted it (the fallback's
subreaper), and reported as unknown elsewhere. Linux only, with pidfds (5.3+).

The same server, started lean (`-I -S`, nothing imported for jobs), is the spawner
(`[runner] spawner`): every job not forked from a warm Python is started by it, its program
started as subprocess starts one — a vfork, from inside the job's cgroups, which the spawner
enters for the start and leaves before it answers (its own are passed to it at start). Forking
opsroom itself copies tens of MB of page tables, holds Python's lock (so the event loop)
meanwhile, and took ~5 ms a job with a cgroup to join; even a fork of the small spawner cost
~1.5 ms more than the vfork. A job that comes alone, though, is forked straight into its
cgroup v2 (clone3, Linux 5.7+), as every job of a warm Python is: entering a cgroup waits for
the kernel (an RCU grace period, 6-12 ms here) unless another move came just before, and a
fork of the small spawner costs less (python_pool.py). Its jobs need no go: they start at
once, and a start that was given up meanwhile is ended once its pid is known. Jobs that
come while it starts wait for it (up to `_SPAWNER_WAIT`); the first one starts it and is
started by opsroom (spawn.py).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import socket
import sys
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opsroom.runner import cgroup, tree
from opsroom.runner.argv import BOOTSTRAP_DIR, Launch
from opsroom.runner.platform import ON_LINUX
from opsroom.tasks import stop_task

SERVER = BOOTSTRAP_DIR / "python_pool.py"
SLOT_VAR = "OPSROOM_POOL_SLOT"  # the server's placeholder for a job's token (same length)
SLOT_SIZE = 64  # the longest token a pooled job can carry in /proc/<pid>/environ
_READY_WAIT = 30.0  # a server's start: an interpreter and its imports, on a busy host
_START_WAIT = 10.0  # a fork and a few system calls: longer, and the server is stuck
_STATUS_WAIT = 2.0  # once a job's process is gone, for its server to report how it ended
_CLOSE_WAIT = 5.0
_SPAWNER_WAIT = 2.0  # a job waits this long for a spawner that is starting, then starts cold


def _pidfds() -> bool:
    """True where pidfds work (Linux 5.3+): the pool waits on them."""
    if not ON_LINUX:
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (OSError, AttributeError):
        return False
    return True


_PIDFDS = _pidfds()
# What shapes how Python starts (encoding, paths, flags): part of a server's identity.
_STARTUP = ("HOME", "LANG", "LANGUAGE", "PATH")
_STARTUP_PREFIXES = ("LC_", "PYTHON")
LOST = "its Python pool process ended while it ran: how the job ended is unknown"

log = logging.getLogger("opsroom.runner")


@dataclass(frozen=True, slots=True)
class PoolStats:
    """What the pool did so far, for /metrics."""

    size: int  # fork servers running
    hits: int  # Python jobs forked from a warm server
    misses: int  # Python jobs that started cold: no server ready, or it could not start them


@dataclass(frozen=True, slots=True)
class PoolStart:
    """The fds and limits of one job, as `run_local` prepared them for a cold start."""

    stdout: int
    stderr: int
    events: int
    cgroups: tuple[int, ...]  # `cgroup.procs` (v1: `tasks`) files the child writes itself into
    rlimits: tuple[tuple[int, tuple[int, int]], ...]
    into: int | None = None  # the cgroup v2 folder the child is born in (not in `cgroups`)


class PoolChild:
    """A job's process forked by a server: its pid, and how it ended once it has."""

    def __init__(self, pid: int, status: asyncio.Future[int | None], server: _Server) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.lost = False  # its server died before saying how it ended
        self._status = status
        self._server = server
        self._ended: asyncio.Future[int | None] | None = None
        self._gone: asyncio.Future[None] | None = None
        self._late: asyncio.TimerHandle | None = None

    async def wait(self) -> int | None:
        """Wait for the process to end; its returncode (None when it was lost)."""
        if self._ended is None:
            self._ended = asyncio.get_running_loop().create_future()
            self._watch()
        return await asyncio.shield(self._ended)

    def send_signal(self, sig: int) -> None:
        """Signal the process (its group is for the caller)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def _watch(self) -> None:
        # The server's word, normally. Should the server die, the process itself is waited
        # for; should the server be stuck, the kernel's word that the process is gone. By
        # callbacks on two futures, not tasks: every job waits like this.
        try:
            self._gone = tree.exit_watch(self.pid)
        except OSError:  # cannot be watched: taken as gone, its server has _STATUS_WAIT
            self._gone = asyncio.get_running_loop().create_future()
            self._gone.set_result(None)
        self._status.add_done_callback(self._on_status)
        self._gone.add_done_callback(self._on_gone)

    def _on_status(self, status: asyncio.Future[int | None]) -> None:
        if status.cancelled() or status.result() is not None:
            self._finish()
        elif self._gone is not None and self._gone.done():
            self._finish()  # its server died; the process is gone too
        # else: its server died first; the process is waited for (`_on_gone`)

    def _on_gone(self, _gone: asyncio.Future[None]) -> None:
        if not self._status.done():
            # Gone, but its server has not said how: it has this long to.
            loop = asyncio.get_running_loop()
            self._late = loop.call_later(_STATUS_WAIT, self._finish)
        elif self._status.cancelled() or self._status.result() is None:
            self._finish()

    def _finish(self) -> None:
        ended = self._ended
        if ended is None or ended.done():
            return
        if self._late is not None:
            self._late.cancel()
        if self._gone is not None:
            self._gone.cancel()  # stops watching the pidfd (nothing when it fired)
        status = self._status
        try:
            if status.done() and not status.cancelled() and (code := status.result()) is not None:
                self.returncode = code
            elif (code := _adopted_status(self.pid)) is not None:
                self.returncode = code  # its server died; opsroom, the subreaper, got the orphan
            else:
                self.lost = True
                self._server.kill()  # dead already, or stuck: of no more use either way
            self._server.finished()
        except BaseException as e:  # told to the waiter rather than lost in a callback
            ended.set_exception(e)
            return
        ended.set_result(self.returncode)


def _adopted_status(pid: int) -> int | None:
    """The returncode of a process that became opsroom's child; None when it is not."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status) if done else None


class _Server:
    """One fork server and the jobs it started that have not ended yet; with `spawner`, the
    lean one that execs every other job."""

    def __init__(self, interpreter: str, env: Mapping[str, str], *, spawner: bool = False) -> None:
        self.interpreter = interpreter
        self.env = dict(env)
        self.spawner = spawner
        self.proc: asyncio.subprocess.Process | None = None
        self.sock: socket.socket | None = None
        self.alive = True
        self.retiring = False
        self.jobs: dict[int, asyncio.Future[int | None]] = {}
        self.running = 0
        self._next = 0
        self._ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._reader: asyncio.Task[None] | None = None
        self._starting = asyncio.ensure_future(self._start())

    async def ready(self) -> bool:
        """True once the server has imported what it keeps warm; False if it cannot."""
        return await asyncio.shield(self._ready)

    async def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # The spawner's own cgroups, which it enters a job's for each start and comes back to.
        homes = cgroup.home_procs() if self.spawner else ()
        try:
            env = {**self.env, SLOT_VAR: "x" * SLOT_SIZE}
            # The spawner: isolated (no site, no PYTHON* variables), so it stays a few MB.
            flags = ("-I", "-S") if self.spawner else ()
            mode = ("exec", ",".join(map(str, homes))) if self.spawner else ()
            self.proc = await asyncio.create_subprocess_exec(
                self.interpreter,
                *flags,
                str(SERVER),
                str(theirs.fileno()),
                *mode,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                env=env,
                cwd="/",
                pass_fds=(theirs.fileno(), *homes),
                process_group=0,  # Ctrl-C at opsroom's terminal is not the server's
            )
        except OSError as e:
            log.warning("the Python pool could not start %s: %s", self.interpreter, e)
            ours.close()
            self._dead()
            return
        finally:
            theirs.close()
            for fd in homes:
                os.close(fd)
        tree.manage(self.proc.pid)  # asyncio waits for it: never reaped by the tree's look
        ours.setblocking(False)
        self.sock = ours
        loop = asyncio.get_running_loop()
        try:
            said = await asyncio.wait_for(loop.sock_recv(ours, 16), _READY_WAIT)
        except (TimeoutError, OSError):
            said = b""
        if said != b"R":
            log.warning("the Python pool for %s did not start; jobs start cold", self.interpreter)
            self.kill()
            return
        self._ready.set_result(True)
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        """Exit statuses as the server reports them; the end of the server."""
        assert self.sock is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                msg = await loop.sock_recv(self.sock, 256)
            except OSError:
                msg = b""
            if not msg:
                break
            kind, _, rest = msg.partition(b" ")
            number, _, value = rest.partition(b" ")
            status = self.jobs.pop(int(number), None) if kind == b"E" else None
            if status is not None and not status.done():
                status.set_result(int(value))
        self._dead()

    def _dead(self) -> None:
        self.alive = False
        if not self._ready.done():
            self._ready.set_result(False)
        for status in self.jobs.values():
            if not status.done():
                status.set_result(None)
        self.jobs.clear()
        if self.sock is not None:
            # Out of the event loop before its fd is closed: the loop would still hold the
            # number, and the next fd to get it (a job's pidfd) would never be watched.
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
            if self._reader is not None and self._reader is not asyncio.current_task():
                self._reader.cancel()
            self.sock.close()
            self.sock = None

    async def spawn(
        self, launch: Launch, env: Mapping[str, str], fds: PoolStart
    ) -> PoolChild | str | None:
        """Fork the job: its process, a start error for people, or None (start it cold).
        From the spawner, the job execs its whole argv; raises OSError when that fails, as
        subprocess does."""
        if not self.alive or self.sock is None:
            return None
        loop = asyncio.get_running_loop()
        number = self._next = self._next + 1
        status: asyncio.Future[int | None] = loop.create_future()
        self.jobs[number] = status
        description = json.dumps(
            {
                "argv": list(launch.argv if self.spawner else launch.argv[1:]),
                "env": dict(env),
                "cwd": launch.cwd,
                "rlimits": [[which, soft, hard] for which, (soft, hard) in fds.rlimits],
                "exec": self.spawner,
                # No room beside the job for the spawner's vfork: its child is forked.
                "fork": launch.limits.pids == 1,
            }
        ).encode("utf-8")
        memfd = os.memfd_create("opsroom-job", os.MFD_CLOEXEC)
        ready_r, ready_w = os.pipe()
        try:
            os.write(memfd, description)  # a memfd takes all of it at once
            os.lseek(memfd, 0, os.SEEK_SET)
        except OSError:
            for fd in (memfd, ready_r, ready_w):
                os.close(fd)
            self.jobs.pop(number, None)
            return None
        if self.spawner:
            own = (memfd, ready_r, ready_w)
            return await self._exec(number, status, own, fds, launch)
        go_r, go_w = os.pipe()
        # Whatever happens here (the caller cancelled too), `go_w` is closed at the end: a
        # child not told to go exits before any of the job runs.
        try:
            try:
                sent = (memfd, fds.stdout, fds.stderr, fds.events, ready_w, go_r, *fds.cgroups)
                await self._request(number, sent, fds.into)
            finally:
                for fd in (memfd, ready_w, go_r):
                    os.close(fd)
            said = await _read_all(ready_r, _START_WAIT)
            if said is None:
                log.warning("the Python pool for %s is stuck; replaced", self.interpreter)
                self.kill()  # its socket closes: the request's fds go with it
                return None
            text = said.decode("utf-8", "replace")
            if not text.startswith("ok ") or not text[3:].isdigit():
                self.jobs.pop(number, None)
                # Its setup failed, before any of the job ran (said why), or it died.
                return text or None
            os.write(go_w, b"g")
        except OSError:
            self.jobs.pop(number, None)
            return None
        finally:
            os.close(ready_r)
            os.close(go_w)
        self.running += 1
        return PoolChild(int(text[3:]), status, self)

    async def _exec(
        self,
        number: int,
        status: asyncio.Future[int | None],
        own: tuple[int, int, int],
        fds: PoolStart,
        launch: Launch,
    ) -> PoolChild | str | None:
        """The spawner's start, without a go: the job runs once started. The setup pipe
        says `ok <pid>` (then, from a forked child whose exec failed, `x <errno>`), `x
        <errno>` alone when the program could not start, or why the job was not set up."""
        memfd, ready_r, ready_w = own
        reading: asyncio.Future[bytes | None] | None = None
        try:
            try:
                sent = (memfd, fds.stdout, fds.stderr, fds.events, ready_w, *fds.cgroups)
                await self._request(number, sent, fds.into)
            finally:
                os.close(memfd)
                os.close(ready_w)
            reading = _read_all(ready_r, _START_WAIT)
            said = await asyncio.shield(reading)
        except asyncio.CancelledError:
            self.jobs.pop(number, None)
            if reading is None:
                os.close(ready_r)
            else:
                # Given up while the spawner starts it: the job may be running already, and
                # no caller would know of it. It is ended once its pid is known.
                reading.add_done_callback(functools.partial(_end_unwanted, ready_r))
            raise
        except OSError:
            self.jobs.pop(number, None)
            os.close(ready_r)
            return None
        os.close(ready_r)
        if said is None:
            log.warning("the spawner is stuck; replaced")
            self.kill()  # its socket closes: the request's fds go with it
            return None
        pid, failed, text = _started(said)
        if pid is None or failed is not None:
            self.jobs.pop(number, None)
        if failed is not None:
            raise OSError(failed, os.strerror(failed), launch.argv[0])
        if pid is None:
            return text or None  # its setup failed, before any of the job ran; or it died
        self.running += 1
        return PoolChild(pid, status, self)

    async def _request(self, number: int, fds: Sequence[int], into: int | None) -> None:
        """Send one request (`into`, the cgroup v2 folder its child is born in, last and
        marked); a server whose end of the socket is gone is gone itself."""
        assert self.sock is not None
        if into is not None:
            fds, text = (*fds, into), b"%d+" % number
        else:
            text = b"%d" % number
        try:
            await _send(self.sock, text, fds)
        except OSError:
            self.kill()  # killed, crashed
            raise

    def up(self) -> bool:
        """Not known to be gone: alive, and its process not seen to exit."""
        return self.alive and (self.proc is None or self.proc.returncode is None)

    def finished(self) -> None:
        """One of its jobs has ended."""
        self.running -= 1
        if self.retiring and self.running <= 0:
            self.stop()

    def stop(self) -> None:
        """Ask the server to exit: it does once its socket closes (asyncio reaps it)."""
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)

    def kill(self) -> None:
        """End the server now (its running jobs go on; their statuses are lost)."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
        self._dead()

    async def close(self) -> None:
        """Stop the server: it exits once its socket closes."""
        await stop_task(self._starting)
        self.stop()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._dead()
        if self.proc is not None:
            try:
                await asyncio.wait_for(self.proc.wait(), _CLOSE_WAIT)
            except TimeoutError:
                self.kill()
                await self.proc.wait()
            tree.release(self.proc.pid)


class PythonPool:
    """Fork servers by Python environment, at most `size` at once (`[runner] python_pool`);
    with `spawner` (`[runner] spawner`), one more that starts every other job."""

    def __init__(self, size: int, *, spawner: bool = False) -> None:
        self.size = size
        self._servers: OrderedDict[tuple[str, tuple[tuple[str, str], ...]], _Server] = OrderedDict()
        self._seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        self.hits = 0
        self.misses = 0
        self.spawner = spawner and _PIDFDS
        self._spawner: _Server | None = None
        self.spawned = 0  # jobs the spawner started

    async def spawner_ready(self) -> int | None:
        """Start the spawner if it is not running, and wait until it is ready: its pid; None
        when there is none (turned off, not Linux, or it could not start)."""
        if not self.spawner:
            return None
        server = self._running_spawner()
        if not await server.ready() or server.proc is None:
            return None
        return server.proc.pid

    def _running_spawner(self) -> _Server:
        """The spawner, started anew when there is none or it is gone."""
        if self._spawner is None or not self._spawner.up():
            self._spawner = _Server(sys.executable, {"PATH": os.defpath}, spawner=True)
        return self._spawner

    async def exec(
        self, launch: Launch, env: Mapping[str, str], fds: PoolStart
    ) -> PoolChild | str | None:
        """The job started by the spawner; None: start it from opsroom (no spawner, or not
        ready yet: the first job starts it). Raises OSError when the program cannot start;
        a setup failure is a start error for people, as from `start`."""
        if not self.spawner or not launch.argv:
            return None
        if self._spawner is None or not self._spawner.up():
            # Started now, used once ready: this job and those meanwhile start from opsroom.
            self._running_spawner()
            return None
        server = self._spawner
        if not server._ready.done():
            # Starting: waiting for it costs less than a fork of opsroom each (and a burst of
            # those would hold Python's lock, so the event loop, the whole time).
            await asyncio.wait({server._ready}, timeout=_SPAWNER_WAIT)
        if not server._ready.done() or not server._ready.result():
            return None
        child = await server.spawn(launch, env, fds)
        if isinstance(child, PoolChild):
            self.spawned += 1
        return child

    def serves(self, launch: Launch, token: str) -> bool:
        """True when this launch may be forked from a server: a Python launch, on Linux,
        with a token short enough for the server's slot."""
        return (
            self.size > 0
            and _PIDFDS
            and launch.warm
            and len(launch.argv) >= 2
            and 0 < len(token) <= SLOT_SIZE
        )

    async def start(
        self, launch: Launch, env: Mapping[str, str], fds: PoolStart
    ) -> PoolChild | str | None:
        """The job forked from its environment's server; a start error for people; or None:
        start it cold (no server ready yet, or it failed before running anything)."""
        startup = {k: v for k, v in env.items() if k in _STARTUP or k.startswith(_STARTUP_PREFIXES)}
        key = (launch.argv[0], tuple(sorted(startup.items())))
        server = self._servers.get(key)
        if server is not None and not server.alive:
            del self._servers[key]
            server = None
        if server is None:
            first = key not in self._seen
            self._seen.add(key)
            self._make_room()
            server = self._servers[key] = _Server(launch.argv[0], startup)
            if first:
                self.misses += 1
                return None  # this one runs cold while the server starts for the next
        self._servers.move_to_end(key)
        child: PoolChild | str | None = None
        try:
            if await server.ready():
                child = await server.spawn(launch, env, fds)
        except OSError as e:
            log.warning("the Python pool could not start a job (%s); it starts cold", e)
        if child is None:
            self.misses += 1
            if not server.alive and self._servers.get(key) is server:
                # Found dead (killed, crashed): this job starts cold, and a new server
                # starts meanwhile for the next ones.
                self._servers[key] = _Server(launch.argv[0], startup)
        else:
            self.hits += 1
        return child

    def _make_room(self) -> None:
        while len(self._servers) >= self.size:
            _, oldest = self._servers.popitem(last=False)
            oldest.retiring = True  # stopped once its last job has ended
            if oldest.running <= 0:
                oldest.stop()

    def stats(self) -> PoolStats:
        """Servers running, jobs forked, jobs started cold."""
        size = sum(1 for s in self._servers.values() if s.alive)
        return PoolStats(size=size, hits=self.hits, misses=self.misses)

    async def close(self) -> None:
        """Stop every server."""
        servers = list(self._servers.values())
        self._servers.clear()
        if self._spawner is not None:
            servers.append(self._spawner)
            self._spawner = None
        await asyncio.gather(*(s.close() for s in servers))


async def _send(sock: socket.socket, data: bytes, fds: Sequence[int]) -> None:
    """One message with fds attached, waiting for room in the socket if need be."""
    loop = asyncio.get_running_loop()
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
    while True:
        try:
            sock.sendmsg([data], rights)
            return
        except BlockingIOError:
            room: asyncio.Future[None] = loop.create_future()
            loop.add_writer(sock.fileno(), tree.settle, room)
            try:
                await room
            finally:
                loop.remove_writer(sock.fileno())


def _read_all(fd: int, timeout: float) -> asyncio.Future[bytes | None]:
    """Everything written to a pipe until its end; None after `timeout`. A future, not a
    task (one per job); cancelling it stops the reading."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    result: asyncio.Future[bytes | None] = loop.create_future()

    def finish(said: bytes | None) -> None:
        if not result.done():
            result.set_result(said)

    def readable() -> None:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            chunks.append(chunk)
        else:
            finish(b"".join(chunks))

    loop.add_reader(fd, readable)
    timer = loop.call_later(timeout, finish, None)

    def _unwatch(_: asyncio.Future[bytes | None]) -> None:
        # Registered first, so it runs before whoever awaits the result closes the fd.
        timer.cancel()
        loop.remove_reader(fd)

    result.add_done_callback(_unwatch)
    return result


def _started(said: bytes) -> tuple[int | None, int | None, str]:
    """What the spawner's setup pipe said: the job's pid, the errno of a failed exec, and
    the text (why the job could not be set up, when it has no pid)."""
    text = said.decode("utf-8", "replace")
    pid: int | None = None
    rest = text
    if text.startswith("ok "):
        first, _, rest = text.partition("\n")
        if first[3:].isdigit():
            pid = int(first[3:])
    if rest.startswith("x ") and rest[2:].isdigit():
        return pid, int(rest[2:]), text
    return pid, None, text


def _end_unwanted(ready: int, reading: asyncio.Future[bytes | None]) -> None:
    """Close the setup pipe of a start that was given up, and end the job if it started."""
    os.close(ready)
    if reading.cancelled() or reading.exception() is not None or (said := reading.result()) is None:
        return
    pid, failed, _ = _started(said)
    if pid is not None and failed is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # its own session and group, from its start
