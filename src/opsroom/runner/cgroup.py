"""A cgroup per job: no process of a job can outlive it, and its limits hold for all of them.

Each job gets a cgroup v2 folder `opsroom-job-<token>` under opsroom's own cgroup. The child
enters it between fork and exec (it writes "0", meaning itself, to `cgroup.procs`), so not a
single instruction of the script runs outside it, and every process it starts is born inside.
What a process does to itself — `setsid`, double forks, a cleared environment, closed fds,
`nohup`, re-exec — does not change its cgroup. Ending the job is `cgroup.kill` (Linux 5.14+;
before that: freeze, KILL every member, repeat until empty), after TERM and the grace period.
Only writing to a `cgroup.procs` (or v1 `tasks`) file moves a process, which a job can do
only as a user who may write opsroom's own cgroups (opsroom's user, or root): docs/jobs.md
says so. No cgroup namespace is added against that: root could `setns` back anyway, and
tools that manage cgroups themselves (podman, systemd-run) would see a hierarchy that is not
the host's.

Limits: memory and processes with the v2 controllers when they are enabled for opsroom's
children, else with the v1 `memory` and `pids` hierarchies when opsroom may write them; CPU
time from the v2 `cpu.stat` every cgroup has. A hit is read from the kernel's own counters
(`oom_kill`, `pids.events max`, `usage_usec`), so the job's outcome can name it.

Moving a process into a cgroup (its write to `cgroup.procs`) takes a lock that, unless a
cgroup hierarchy is mounted with `favordynmods` (Linux 6.0+), first waits for an RCU grace
period: a few milliseconds on an idle host, up to a clock tick or more on a busy one. So a job
started by the spawner or a warm Python (pool.py) is not moved into its cgroup v2 but born in
it (clone3's CLONE_INTO_CGROUP, Linux 5.7+), and joins v1 hierarchies through their `tasks`
file: "0" written there moves the writing thread alone, which takes no such lock (every
writer is a single-threaded child, or the spawner, whose vfork'd child inherits the thread's
cgroups). A job opsroom forks itself (the spawner not ready, or off) still moves into its
cgroup v2, off the event loop (local.py); `move_wait` says so once at start-up, with the
fix, and docs/jobs.md explains it. opsroom never remounts anything.

Folders left by an opsroom that was killed (kill -9) are found by name at the next start
(SPEC §5.5 reconcile) and ended the same way; empty ones, whatever store their job was in,
are removed by the next opsroom process that starts a job. Linux only; elsewhere `host()`
says why not.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import re
import select
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from opsroom.errors import OpsroomError
from opsroom.runner.limits import Limits, format_bytes
from opsroom.runner.platform import ON_LINUX, ON_WINDOWS

PREFIX = "opsroom-job-"
# The v1 file a process joins a cgroup by: "0" written to `tasks` moves the writing thread
# alone, which takes no global lock (so no RCU grace period); every writer has one thread.
V1_JOIN = "tasks"
_TOKEN = re.compile(r"^[0-9A-Za-z_-]{8,64}$")
# While TERM works: how often members are listed again, to TERM what forked meanwhile. The
# wait itself ends the moment the kernel says the cgroup is empty (`_Emptied`).
_POLL = 0.05
_KILL_POLL = 0.005  # without cgroup.kill: how often what is left is listed and KILLed again
_KILL_WAIT = 2.0  # unless stuck in the kernel (D state): then give up on them
_WALK_DEPTH = 16  # systemd nests slices about 6 deep; containers add a few
_CPU_USEC = 1_000_000
# An empty job cgroup older than this is a leftover: a job's cgroup is empty only for the
# moment between its creation and its child's start, and after its end, when it is removed.
_STALE = 60.0
_swept = False
_move_noted = False

log = logging.getLogger("opsroom.runner")


class CgroupError(OpsroomError):
    """A job's cgroup could not be made; the message says why, for people."""


@dataclass(frozen=True, slots=True)
class Host:
    """What this host lets opsroom do with cgroups; `host()` finds it once per process."""

    v2: str | None  # opsroom's own cgroup v2 folder, when opsroom may make cgroups in it
    why_not: str  # when v2 is None: why not, for `config check` and /healthz
    v2_controllers: frozenset[str] = frozenset()  # enabled for children of `v2`
    memory_v1: str | None = None  # opsroom's own v1 memory cgroup, when writable
    pids_v1: str | None = None  # opsroom's own v1 pids cgroup, when writable
    mounts: tuple[str, ...] = ()  # where job cgroups may be: v2, v1 memory and pids mounts
    # Some cgroup hierarchy is mounted with `favordynmods`: moving a process into a cgroup
    # does not wait for an RCU grace period (the kernel's lock is one for all hierarchies).
    favordynmods: bool = False


@dataclass(frozen=True, slots=True)
class Enforcement:
    """How each limit of a job is enforced: "cgroup v2", "cgroup v1", "rlimit" or ""."""

    contained: bool
    memory: str
    pids: str
    cpu: str


@functools.cache
def host() -> Host:
    """This process's cgroups, read from /proc/self/mountinfo and /proc/self/cgroup."""
    if not ON_LINUX:
        return Host(None, "cgroups are a Linux feature")
    try:
        mounts = _mountinfo()
        own = _own_cgroups()
    except OSError as e:
        return Host(None, f"cannot read /proc: {e.strerror}")
    points = tuple(
        m.point for m in mounts if m.fstype == "cgroup2" or m.options & {"memory", "pids"}
    )
    memory_v1 = _v1_folder(mounts, own, "memory")
    pids_v1 = _v1_folder(mounts, own, "pids")
    fast = any("favordynmods" in m.options for m in mounts)
    # Without a usable v2 folder, what v1 may still do.
    v1 = Host(None, "", memory_v1=memory_v1, pids_v1=pids_v1, mounts=points, favordynmods=fast)
    v2_mounts = [m for m in mounts if m.fstype == "cgroup2"]
    if not v2_mounts:
        return replace(v1, why_not="no cgroup v2 file system is mounted")
    path = own.get("")
    folder = None
    for mount in v2_mounts:
        if path is not None and (folder := _under(mount, path)) is not None:
            break
    if folder is None:
        why = f"opsroom's cgroup is not visible under {v2_mounts[0].point}"
        return replace(v1, why_not=why)
    if not _writable(folder):
        why = (
            f"{folder} is not writable by opsroom's user "
            "(delegate it: Delegate=yes in a service unit, or systemd-run --user --scope)"
        )
        return replace(v1, why_not=why)
    try:
        with open(os.path.join(folder, "cgroup.subtree_control"), encoding="ascii") as f:
            controllers = frozenset(f.read().split())
    except OSError:
        controllers = frozenset()
    return Host(
        v2=folder,
        why_not="",
        v2_controllers=controllers,
        memory_v1=memory_v1,
        pids_v1=pids_v1,
        mounts=points,
        favordynmods=fast,
    )


def enforcement(limits: Limits, where: Host | None = None) -> Enforcement:
    """How a job with these limits is confined on this host (before anything is made)."""
    h = where or host()
    v2 = limits.cgroups and h.v2 is not None
    v1_memory = limits.cgroups and h.memory_v1 is not None
    v1_pids = limits.cgroups and h.pids_v1 is not None
    if not limits.memory:
        memory = ""
    elif v2 and "memory" in h.v2_controllers:
        memory = "cgroup v2"
    else:
        memory = "cgroup v1" if v1_memory else "rlimit"
    if not limits.pids:
        pids = ""
    elif v2 and "pids" in h.v2_controllers:
        pids = "cgroup v2"
    else:
        pids = "cgroup v1" if v1_pids else ""
    cpu = "" if not limits.cpu_seconds else ("cgroup v2" if v2 else "rlimit")
    return Enforcement(contained=v2, memory=memory, pids=pids, cpu=cpu)


def describe(limits: Limits) -> tuple[str, str]:
    """Two lines for people: how jobs are contained here, and how each limit is enforced."""
    if ON_WINDOWS:
        from opsroom.runner.winjob import describe as job_object

        return job_object(limits)
    h = host()
    how = enforcement(limits, h)
    if how.contained:
        contained = f"job isolation: a cgroup v2 per job under {h.v2} — no process outlives its job"
    else:
        why = "turned off by [runner] cgroups = false" if not limits.cgroups else h.why_not
        contained = (
            f"job isolation: fallback ({why}) — a job's processes are found by process "
            "group, session, job token and parentage; one that leaves all four is ended with "
            "the next job that ends, and none is found after opsroom itself was killed"
        )
    parts = [
        _limit_text("memory", format_bytes(limits.memory), how.memory, limits.memory),
        _limit_text("processes", str(limits.pids), how.pids, limits.pids),
        _limit_text("CPU time", f"{limits.cpu_seconds:g} s", how.cpu, limits.cpu_seconds),
    ]
    return contained, "job limits: " + ", ".join(parts)


def summary(limits: Limits) -> dict[str, str]:
    """How jobs are contained and limited here, in words for /healthz (no paths)."""
    if ON_WINDOWS:
        from opsroom.runner.winjob import summary as job_object

        return job_object(limits)
    how = enforcement(limits)
    return {
        "containment": "cgroup v2" if how.contained else "subreaper and job token",
        "memory": how.memory or ("unlimited" if not limits.memory else "not enforced"),
        "pids": how.pids or ("unlimited" if not limits.pids else "not enforced"),
        "cpu": how.cpu or ("unlimited" if not limits.cpu_seconds else "not enforced"),
    }


def move_wait(
    limits: Limits, where: Host | None = None, *, spawner: bool = True, kernel: str = ""
) -> str | None:
    """Why entering a job's cgroup waits for the kernel here, with the fix; None: it does not.

    Only moves into a cgroup v2 wait (v1 is joined through `tasks`), and a job the spawner or
    a warm Python starts is born in its cgroup instead, where the kernel (5.7+, `kernel`:
    its release, this host's by default) can: what is left are the jobs opsroom forks itself.
    """
    h = where or host()
    if h.favordynmods or not enforcement(limits, h).contained or h.v2 is None:
        return None
    if spawner and _release(kernel or os.uname().release) >= (5, 7):
        return None
    # Where the jobs' cgroups are: remounting that mount is the fix (any hierarchy would do).
    point = max((p for p in h.mounts if _inside(h.v2, p)), key=len, default=None)
    if point is None:
        return None
    return (
        "job starts wait for the kernel: entering a job's cgroup waits for an RCU grace "
        "period (milliseconds, more on a busy host) as no cgroup hierarchy is mounted with "
        f"favordynmods; to avoid it: mount -o remount,favordynmods {point} (Linux 6.0+; on "
        "systemd hosts, from a unit that runs at boot)"
    )


def _release(release: str) -> tuple[int, int]:
    """A kernel release's major and minor numbers ("6.1.0-18-amd64" → (6, 1))."""
    found = re.match(r"(\d+)\.(\d+)", release)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def home_procs() -> tuple[int, ...]:
    """This process's own cgroups, open for writing in every hierarchy job cgroups are made
    in (v2's `cgroup.procs`, v1's `tasks`: for the spawner, whose one thread is the process);
    none when one cannot be opened (or no hierarchy is usable)."""
    h = host()
    fds: list[int] = []
    try:
        for folder, name in ((h.v2, "cgroup.procs"), (h.memory_v1, V1_JOIN), (h.pids_v1, V1_JOIN)):
            if folder is not None:
                fds.append(os.open(os.path.join(folder, name), os.O_WRONLY | os.O_CLOEXEC))
    except OSError:
        for fd in fds:
            os.close(fd)
        return ()
    return tuple(fds)


def log_move_wait(limits: Limits, *, spawner: bool) -> None:
    """Say `move_wait` in the log, once per process (at start-up)."""
    global _move_noted
    if _move_noted or not ON_LINUX:
        return
    _move_noted = True
    if (why := move_wait(limits, spawner=spawner)) is not None:
        log.info(why)


def _limit_text(name: str, value: str, how: str, setting: float) -> str:
    if not setting:
        return f"{name} unlimited"
    if not how:
        return f"{name} {value} NOT enforced (no pids cgroup)"
    per = " per process" if how == "rlimit" else ""
    return f"{name} {value} ({how}{per})"


class JobCgroup:
    """The cgroups of one running job: made before it starts, removed after it ended."""

    def __init__(self, name: str, limits: Limits, how: Enforcement) -> None:
        self.name = name
        self.limits = limits
        self.how = how
        self.v2: str | None = None
        self.v1: dict[str, str] = {}  # "memory" / "pids" → folder
        self._procs_fds: list[int] = []
        self._folder_fd: int | None = None  # the v2 folder, open: a child is born in it

    @classmethod
    def create(cls, token: str, limits: Limits, where: Host | None = None) -> JobCgroup:
        """Make the job's cgroups and set its limits; CgroupError when the host refuses."""
        if not _TOKEN.match(token):
            raise CgroupError("the job token is not a plain word")
        h = where or host()
        how = enforcement(limits, h)
        self = cls(PREFIX + token, limits, how)
        global _swept
        if not _swept:
            _swept = True
            _sweep(h.mounts)
        try:
            if how.contained:
                assert h.v2 is not None
                self.v2 = _mkdir(os.path.join(h.v2, self.name))
                if how.memory == "cgroup v2":
                    _write(self.v2, "memory.max", str(limits.memory))
                    # No swap beyond the limit, and an OOM ends the job, not one process.
                    _write(self.v2, "memory.swap.max", "0", optional=True)
                    _write(self.v2, "memory.oom.group", "1", optional=True)
                if how.pids == "cgroup v2":
                    _write(self.v2, "pids.max", str(limits.pids))
            if how.memory == "cgroup v1" and h.memory_v1 is not None:
                folder = self.v1["memory"] = _mkdir(os.path.join(h.memory_v1, self.name))
                _write(folder, "memory.limit_in_bytes", str(limits.memory))
                _write(folder, "memory.memsw.limit_in_bytes", str(limits.memory), optional=True)
            if how.pids == "cgroup v1" and h.pids_v1 is not None:
                folder = self.v1["pids"] = _mkdir(os.path.join(h.pids_v1, self.name))
                _write(folder, "pids.max", str(limits.pids))
            if self.v2 is not None:
                path = os.path.join(self.v2, "cgroup.procs")
                self._procs_fds.append(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
                flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
                self._folder_fd = os.open(self.v2, flags)
            for made in self.v1.values():
                self._procs_fds.append(
                    os.open(os.path.join(made, V1_JOIN), os.O_WRONLY | os.O_CLOEXEC)
                )
        except OSError as e:
            self.close_fds()
            self.remove()
            raise CgroupError(f"{e.filename or self.name}: {e.strerror}") from None
        return self

    @classmethod
    def existing(cls, folder: str) -> JobCgroup:
        """A cgroup a killed opsroom left behind (v2, or v1 memory or pids), to end it."""
        self = cls(os.path.basename(folder), Limits(), _NOTHING)
        if os.path.exists(os.path.join(folder, "cgroup.events")):
            self.v2 = folder  # only v2 folders have it
        else:
            self.v1["pids"] = folder
        return self

    def procs_fds(self) -> tuple[int, ...]:
        """The open files a new member writes itself into ("0"): v2's `cgroup.procs`, then
        v1's `tasks` (a single-threaded writer: the thread is the process)."""
        return tuple(self._procs_fds)

    def birth_fds(self) -> tuple[int, tuple[int, ...]] | None:
        """The open v2 folder a new member is born in, and the v1 files it then writes
        itself into; None without a cgroup v2."""
        if self._folder_fd is None:
            return None
        return self._folder_fd, tuple(self._procs_fds[1:])

    def close_fds(self) -> None:
        """Close the files the child used to enter (once it has started)."""
        for fd in (*self._procs_fds, *([] if self._folder_fd is None else [self._folder_fd])):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._procs_fds = []
        self._folder_fd = None

    def pids(self) -> list[int]:
        """The job's live processes (zombies are not members any more)."""
        folder = self.v2 or self.v1.get("pids") or self.v1.get("memory")
        if folder is None:
            return []
        try:
            with open(os.path.join(folder, "cgroup.procs"), encoding="ascii") as f:
                return [int(line) for line in f.read().split()]
        except (OSError, ValueError):
            return []

    def limit_hit(self) -> str | None:
        """The outcome line of a limit the job has reached, read from the kernel's counters."""
        if self.how.memory == "cgroup v2" and self.v2 is not None:
            ooms = _counter(self.v2, "memory.events", "oom_kill")
        elif self.how.memory == "cgroup v1" and "memory" in self.v1:
            ooms = _counter(self.v1["memory"], "memory.oom_control", "oom_kill")
        else:
            ooms = 0
        if ooms:
            return self.limits.memory_reason()
        pids = self.v2 if self.how.pids == "cgroup v2" else self.v1.get("pids")
        if self.how.pids and pids is not None and _counter(pids, "pids.events", "max"):
            return self.limits.pids_reason()
        if self.how.cpu == "cgroup v2" and self.v2 is not None:
            used = _counter(self.v2, "cpu.stat", "usage_usec")
            if used >= self.limits.cpu_seconds * _CPU_USEC:
                return self.limits.cpu_reason()
        return None

    async def end(self, grace: float) -> list[int]:
        """TERM every member, KILL the cgroup after grace; the pids that had to be ended."""
        pids = self.pids()
        if not pids:
            return []  # the usual end of a job: no sleep, no scan
        ended = set(pids)
        _signal(pids, signal.SIGTERM)
        deadline = time.monotonic() + grace
        with _Emptied(self.v2) as emptied:
            while pids and (left := deadline - time.monotonic()) > 0:
                await emptied.wait(min(left, _POLL))
                pids = self.pids()
                # Forked during the grace (a fork storm): they get the same TERM.
                _signal([p for p in pids if p not in ended], signal.SIGTERM)
                ended.update(pids)
        if pids:
            ended.update(await self.kill())
        return sorted(ended)

    async def kill(self, *, use_kill: bool = True) -> list[int]:
        """KILL every member at once and wait (briefly) until none is left."""
        seen: set[int] = set()
        frozen = killed = False
        deadline = time.monotonic() + _KILL_WAIT
        with _Emptied(self.v2) as emptied:
            while (pids := self.pids()) and (left := deadline - time.monotonic()) > 0:
                seen.update(pids)
                if use_kill and not killed and self.v2 is not None:
                    # The kernel also kills what forks while it does so: once is enough.
                    killed = _write(self.v2, "cgroup.kill", "1", optional=True)
                if not killed:
                    # No cgroup.kill: freeze first, so nothing forks between listing and KILL.
                    if self.v2 is not None and not frozen:
                        frozen = _write(self.v2, "cgroup.freeze", "1", optional=True)
                    _signal(pids, signal.SIGKILL)
                # After cgroup.kill only the kernel's word is awaited; without it, what is
                # left is listed again in case a member slipped past the freeze.
                await emptied.wait(left if killed else min(left, _KILL_POLL))
        if frozen and self.v2 is not None:
            _write(self.v2, "cgroup.freeze", "0", optional=True)
        return sorted(seen)

    def remove(self) -> bool:
        """Remove the job's cgroups; False when a member is left (stuck in the kernel)."""
        removed = True
        for folder in (self.v2, *self.v1.values()):
            if folder is None:
                continue
            try:
                os.rmdir(folder)
            except FileNotFoundError:
                pass
            except OSError:
                removed = False
        return removed


_NOTHING = Enforcement(contained=True, memory="", pids="", cpu="")


class _Emptied:
    """Waits for a cgroup v2 to hold no process, on the kernel's word: `cgroup.events` says
    `populated 0`, and the kernel flags the file (EPOLLPRI) whenever that line changes. The
    file is watched through an epoll of its own, which the event loop polls like a socket:
    no sleep, and no listing of members while nothing changes. Without a v2 folder (a v1
    leftover) or where the file cannot be watched, `wait` just waits out its timeout."""

    def __init__(self, folder: str | None) -> None:
        self._fd = -1
        self._epoll: select.epoll | None = None
        if folder is None:
            return
        try:
            self._fd = os.open(os.path.join(folder, "cgroup.events"), os.O_RDONLY | os.O_CLOEXEC)
            self._epoll = select.epoll()
            self._epoll.register(self._fd, select.EPOLLPRI)
        except OSError:
            self.close()

    def __enter__(self) -> _Emptied:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the file and the epoll."""
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        if self._fd != -1:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1

    def empty(self) -> bool:
        """True when `cgroup.events` says no process is left (reading it also re-arms it)."""
        if self._fd == -1:
            return False
        try:
            return b"populated 0" in os.pread(self._fd, 256, 0)
        except OSError:
            return False

    async def wait(self, timeout: float) -> bool:
        """Return once the cgroup is empty (True) or after `timeout` (False)."""
        epoll = self._epoll
        if epoll is None:
            await asyncio.sleep(timeout)
            return False
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        changed: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not changed.done():
                changed.set_result(None)

        loop.add_reader(epoll.fileno(), ready)
        try:
            while True:
                empty = self.empty()
                epoll.poll(0)  # after the read: the flag is down, the epoll quiet again
                if empty:
                    return True
                if (left := end - loop.time()) <= 0:
                    return False
                await asyncio.wait({changed}, timeout=left)
                changed = loop.create_future()
        finally:
            loop.remove_reader(epoll.fileno())


async def end_leftovers(token: str, *, grace: float) -> list[int]:
    """End and remove the cgroups a killed opsroom left for a job; the pids that were ended."""
    if not _TOKEN.match(token) or not ON_LINUX:
        return []  # a token from a tampered store must not name a path
    found = await asyncio.to_thread(_find, PREFIX + token)
    groups = sorted((JobCgroup.existing(f) for f in found), key=lambda g: g.v2 is None)
    ended: set[int] = set()
    # v2 first; v1 folders hold the same processes (empty by then), or, for a job that ran
    # without a v2 cgroup, the only record of them there is.
    for group in groups:
        ended.update(await group.end(grace))
        group.remove()
    return sorted(ended)


def _sweep(mounts: tuple[str, ...]) -> None:
    """Remove the empty job cgroups killed opsroom processes left (once per process: a walk
    of the hierarchies takes about a millisecond on a typical host)."""
    now = time.time()
    for point in mounts:
        for path in _walk(point, None):
            try:
                if now - os.stat(path).st_mtime > _STALE:
                    os.rmdir(path)  # the kernel refuses while a process is in it
            except OSError:
                pass


def _find(name: str) -> list[str]:
    """Every cgroup folder called `name`, in every mounted hierarchy."""
    h = host()
    found: list[str] = []
    for point in h.mounts:
        own = next((o for o in (h.v2, h.memory_v1, h.pids_v1) if o and _inside(o, point)), None)
        if own is not None and os.path.isdir(candidate := os.path.join(own, name)):
            found.append(candidate)  # where this opsroom would have made it: no walk needed
            continue
        found.extend(_walk(point, name))
    return found


def _walk(top: str, name: str | None, depth: int = 0) -> Iterator[str]:
    """The job cgroups under top called `name` (None: every job cgroup)."""
    if depth > _WALK_DEPTH:
        return
    try:
        entries = list(os.scandir(top))
    except OSError:
        return
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        if entry.name.startswith(PREFIX):
            if name is None or entry.name == name:
                yield entry.path
        else:
            yield from _walk(entry.path, name, depth + 1)


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


# -- between fork and exec --------------------------------------------------------------------


def preexec(
    group: JobCgroup | None,
    rlimits: list[tuple[int, tuple[int, int]]],
    signals: tuple[int, ...] = (),
) -> Callable[[], None] | None:
    """What the child runs between fork and exec (None: nothing): join cgroups, set rlimits,
    put `signals` (ignored by opsroom, so by the child) back to their defaults."""
    fds = tuple(group._procs_fds) if group is not None else ()
    if not fds and not rlimits and not signals:
        return None
    setrlimit: Callable[[int, tuple[int, int]], None] | None = None
    if rlimits:
        import resource

        setrlimit = resource.setrlimit
    return functools.partial(enter, fds, tuple(rlimits), setrlimit, signals)


def enter(
    fds: tuple[int, ...],
    rlimits: tuple[tuple[int, tuple[int, int]], ...],
    setrlimit: Callable[[int, tuple[int, int]], None] | None,
    signals: tuple[int, ...] = (),
) -> None:
    """In the child between fork and exec: join the job's cgroups ("0" is the writer itself),
    set the per-process limits and default dispositions; system calls only, nothing that
    could wait for a lock."""
    for fd in fds:
        os.write(fd, b"0")
    if setrlimit is not None:
        for which, limit in rlimits:
            setrlimit(which, limit)
    for number in signals:
        signal.signal(number, signal.SIG_DFL)


# -- reading the host -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Mount:
    root: str  # the folder of the hierarchy this mount shows
    point: str
    fstype: str
    options: frozenset[str] = field(default_factory=frozenset)


def _unescape(text: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes (\040 ...).
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def _mountinfo() -> list[_Mount]:
    mounts = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.split()
            try:
                sep = fields.index("-")
                fstype, options = fields[sep + 1], fields[sep + 3]
            except (ValueError, IndexError):
                continue
            if fstype not in ("cgroup", "cgroup2"):
                continue
            mounts.append(
                _Mount(
                    root=_unescape(fields[3]),
                    point=_unescape(fields[4]),
                    fstype=fstype,
                    options=frozenset(options.split(",")),
                )
            )
    return mounts


def _own_cgroups() -> dict[str, str]:
    """Controller → this process's cgroup path; "" is the v2 hierarchy."""
    own: dict[str, str] = {}
    with open("/proc/self/cgroup", encoding="utf-8", errors="replace") as f:
        for line in f:
            hid, _, rest = line.rstrip("\n").partition(":")
            controllers, _, path = rest.partition(":")
            if hid == "0" and not controllers:
                own[""] = path
            else:
                for name in controllers.split(","):
                    own[name] = path
    return own


def _under(mount: _Mount, path: str) -> str | None:
    root = mount.root.rstrip("/")
    if path != root and not path.startswith(root + "/"):
        return None  # the mount shows another part of the hierarchy
    return os.path.normpath(mount.point + "/" + path[len(root) :])


def _v1_folder(mounts: list[_Mount], own: dict[str, str], controller: str) -> str | None:
    path = own.get(controller)
    if path is None:
        return None
    for mount in mounts:
        if mount.fstype == "cgroup" and controller in mount.options:
            folder = _under(mount, path)
            if folder and _writable(folder):
                return folder
    return None


def _writable(folder: str) -> bool:
    # Making a child needs the folder; moving a process into it needs the common ancestor's
    # cgroup.procs (here: our own), as cgroup v2 delegation requires.
    return os.access(folder, os.W_OK) and os.access(os.path.join(folder, "cgroup.procs"), os.W_OK)


def _mkdir(path: str) -> str:
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        # Only a token reused on purpose gets here: never share a cgroup with strangers.
        raise OSError(errno.EEXIST, "already exists", path) from None
    return path


def _write(folder: str, name: str, value: str, *, optional: bool = False) -> bool:
    path = os.path.join(folder, name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        if optional:
            return False
        raise
    try:
        os.write(fd, value.encode())
    except OSError:
        if optional:
            return False
        raise
    finally:
        os.close(fd)
    return True


def _counter(folder: str, name: str, key: str) -> int:
    """One `key value` line of a cgroup file (memory.events, pids.events, cpu.stat)."""
    try:
        with open(os.path.join(folder, name), encoding="ascii") as f:
            for line in f:
                k, _, v = line.partition(" ")
                if k == key:
                    return int(v)
    except (OSError, ValueError):
        pass
    return 0


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
