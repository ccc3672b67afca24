"""Finding and ending a job's processes where no cgroup holds them (SPEC §5.5).

Where the host gives opsroom a cgroup per job (`cgroup.py`), that is the record of a job's
processes and nothing here is needed. Elsewhere — and for jobs started by an opsroom that
had none — a job's processes are found four ways:
- its token: every process inherits `OPSROOM_JOB_TOKEN=<token>` in its environment, and
  /proc/<pid>/environ keeps the environment a process was started with;
- its process group and session: the job's own group, and any group or session a token
  carrier belongs to (a process can only join a group inside its own session, so such groups
  were made by the job);
- its family: descendants (by parent pid) of anything found;
- adoption: opsroom registers as a child subreaper, so an orphan of a job is re-parented to
  opsroom rather than to init. A child of opsroom outside opsroom's own session that opsroom
  did not start as a job's script can only have come from a job (a job's processes can never
  join opsroom's session): it belongs to the job being ended unless proven another's (it, or
  its group or session, carries another job's token). This finds the process that cleared
  its environment, left the session and lost its parent.
What this cannot do: tell such a process of one job from one of another job running in the
same opsroom process (it is ended with whichever ends first), or find it after opsroom itself
was killed (it was re-parented to init by then). docs/jobs.md says so.

Exit statuses of adopted orphans are collected here by pid only: never `waitpid(-1)`, which
would steal statuses from asyncio's child watcher and subprocess.

Ending a job waits on the kernel, never on a clock: the job's process group being empty and
opsroom having no child outside its own session mean nothing is left — no /proc scan at all,
which is the usual end of a job — and while processes are being ended, a pidfd per process
says when each is gone (polling /proc again only to find what forked meanwhile).

Linux only (it reads /proc); elsewhere nothing is found and only the job's own process is
signalled by the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from opsroom.runner.cgroup import end_leftovers
from opsroom.runner.platform import ON_LINUX

TOKEN_VAR = "OPSROOM_JOB_TOKEN"  # noqa: S105 - a variable name, not a secret
_PR_SET_CHILD_SUBREAPER = 36
# While TERM works: how often the job is looked for again, to TERM what forked meanwhile. The
# wait ends the moment every process looked at is gone (`_gone`).
_POLL = 0.05
_PIDFDS = 256  # processes watched one by one at most; beyond that, waiting is by the clock
_ANY_TOKEN = f"\0{TOKEN_VAR}=".encode()
# After KILL, processes vanish within milliseconds unless stuck in the kernel (D state).
_KILL_WAIT = 2.0
_GONE = frozenset("ZX")  # zombie or dead: nothing left to signal
_PROC = "/proc"

_subreaper: bool | None = None
# Pids asyncio (or subprocess) waits for: never reaped here, or their status is lost.
_managed: set[int] = set()


def enable_subreaper() -> bool:
    """Adopt orphaned descendants (Linux PR_SET_CHILD_SUBREAPER); False where unsupported."""
    global _subreaper
    if _subreaper is None:
        _subreaper = _prctl_subreaper()
    return _subreaper


def _prctl_subreaper() -> bool:
    if not ON_LINUX:
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def new_token() -> str:
    """A fresh random token marking one job's processes."""
    return secrets.token_hex(16)


def manage(pid: int) -> None:
    """Mark pid as a child someone else (asyncio) waits for: never reaped here."""
    _managed.add(pid)


def release(pid: int) -> None:
    """Undo `manage` once its owner has collected the exit status."""
    _managed.discard(pid)


@dataclass(frozen=True, slots=True)
class _Proc:
    pid: int
    ppid: int
    pgid: int
    sid: int
    gone: bool


def _read(path: str, first: int, limit: int = 1 << 20) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        # Small first read: most environments fit, and big buffers cost more than syscalls.
        chunk = os.read(fd, first)
        if len(chunk) < first:
            return chunk
        chunks = [chunk]
        size = len(chunk)
        while size < limit and (chunk := os.read(fd, 65536)):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _stat(pid: int) -> _Proc | None:
    raw = _read(f"{_PROC}/{pid}/stat", 1024)
    if not raw:
        return None
    # The command name is in parentheses and may itself hold spaces or parentheses.
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return _Proc(
            pid=pid,
            ppid=int(fields[1]),
            pgid=int(fields[2]),
            sid=int(fields[3]),
            gone=fields[0].decode() in _GONE,
        )
    except (IndexError, ValueError):
        return None


def _pids() -> Iterator[int]:
    try:
        names = os.listdir(_PROC)
    except OSError:
        return
    for name in names:
        if name.isdigit():
            yield int(name)


def _carries(pid: int, needle: bytes) -> bool:
    env = _read(f"{_PROC}/{pid}/environ", 8192)
    return env is not None and needle in b"\0" + env + b"\0"


@dataclass(frozen=True, slots=True)
class _Snapshot:
    live: tuple[int, ...]  # the job's live processes
    zombies: tuple[int, ...]  # the job's dead-but-unreaped processes whose parent is us
    groups: frozenset[int]
    sessions: frozenset[int]


def _snapshot(
    token: str | None,
    *,
    pgid: int | None = None,
    sid: int | None = None,
    known: Iterable[int] = (),
    adopted: bool = False,
) -> _Snapshot:
    me = os.getpid()
    own_session = os.getsid(0)
    mine = {me, os.getpgid(0), own_session, 0, 1}
    needle = f"\0{TOKEN_VAR}={token}\0".encode() if token else None
    # Group and session by syscall (cheap); /proc/<pid>/stat only where needed (costly).
    ids: dict[int, tuple[int, int]] = {}
    others: list[int] = []  # carriers of another job's token
    readable: list[int] = []
    found: set[int] = set(known)
    groups: set[int] = set() if pgid is None else {pgid}
    sessions: set[int] = set() if sid is None else {sid}
    own_env = _read(f"{_PROC}/self/environ", 8192)
    for pid in _pids():
        if pid == me:
            continue
        try:
            pair = (os.getpgid(pid), os.getsid(pid))
        except OSError:
            continue
        # None: another user's, or one in the middle of execve; its family still counts.
        raw = _read(f"{_PROC}/{pid}/environ", 8192)
        if raw and raw == own_env:
            # Forked by opsroom and not exec'd yet: a job being started off the event loop
            # (runner/spawn.py), whose runner does not know its pid yet. Jobs never get
            # opsroom's environment (an empty one proves nothing: escapes clear theirs).
            continue
        ids[pid] = pair
        env = b"\0" + (raw or b"") + b"\0"
        if needle is not None and needle in env:
            found.add(pid)
            groups.add(ids[pid][0])
            sessions.add(ids[pid][1])
        else:
            readable.append(pid)
            if _ANY_TOKEN in env:
                others.append(pid)
    groups -= mine
    sessions -= mine
    for pid, (group, session) in ids.items():
        if group in groups or session in sessions:
            found.add(pid)
    found &= ids.keys()
    procs = {pid: proc for pid in found if (proc := _stat(pid)) is not None}
    if adopted:
        found.update(_adopted(me, own_session, ids, readable, others, found, procs))
    if found:
        # A descendant that cleared its environment and left the session: only its parent
        # pid ties it to the job.
        children: dict[int, list[int]] = {}
        for pid in readable:
            if pid not in found and (proc := _stat(pid)) is not None:
                procs[pid] = proc
                children.setdefault(proc.ppid, []).append(pid)
        stack = list(found)
        while stack:
            for child in children.get(stack.pop(), ()):
                if child not in found:
                    found.add(child)
                    stack.append(child)
    found &= procs.keys()
    live = tuple(sorted(p for p in found if not procs[p].gone))
    zombies = tuple(
        sorted(p for p in found if procs[p].gone and procs[p].ppid == me and p not in _managed)
    )
    return _Snapshot(live, zombies, frozenset(groups), frozenset(sessions))


def _adopted(
    me: int,
    own_session: int,
    ids: dict[int, tuple[int, int]],
    readable: list[int],
    others: list[int],
    found: set[int],
    procs: dict[int, _Proc],
) -> set[int]:
    """Orphans opsroom adopted that no other job can claim (see the module's docstring)."""
    theirs = {ids[p][0] for p in others} | {ids[p][1] for p in others}
    claimed = set(others)
    adopted: set[int] = set()
    for pid in readable:
        group, session = ids[pid]
        # opsroom's own session holds what opsroom itself started (git, pip): never a job's.
        if pid in found or pid in claimed or session == own_session or pid in _managed:
            continue
        if group in theirs or session in theirs:
            continue
        proc = _stat(pid)
        if proc is not None and proc.ppid == me:
            procs[pid] = proc
            adopted.add(pid)
    return adopted


def job_processes(
    token: str | None, *, pgid: int | None = None, sid: int | None = None
) -> list[int]:
    """Live pids of a job: token carriers, its groups and sessions, and their descendants."""
    return list(_snapshot(token, pgid=pgid, sid=sid).live)


def _signal(pids: Iterable[int], groups: Iterable[int], sig: signal.Signals) -> None:
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def reap(pids: Iterable[int]) -> None:
    """Collect the exit status of those pids that are opsroom's unmanaged children."""
    for pid in pids:
        if pid in _managed:
            continue
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def kill_now(token: str | None, *, pgid: int | None = None) -> list[int]:
    """KILL a job's processes at once, without waiting: the last resort of a cleanup."""
    snap = _snapshot(token, pgid=pgid)
    _signal(snap.live, snap.groups, signal.SIGKILL)
    reap(snap.zombies)
    return list(snap.live)


async def end_processes(
    token: str | None,
    *,
    pgid: int | None,
    grace: float,
    sid: int | None = None,
    adopted: bool = False,
) -> list[int]:
    """TERM a job's whole tree, KILL what is left after grace, reap; the pids that were ended.

    `adopted`: also the orphans opsroom adopted that no other job can claim — only for a job
    this process runs (a dead owner's orphans went to init).
    """
    if not ON_LINUX:
        return []

    if adopted and pgid is not None and (sid is None or sid == pgid) and _nothing_left(pgid):
        return []  # the usual end of a job: no scan, no wait

    async def scan(known: Iterable[int] = ()) -> _Snapshot:
        # Scanning /proc takes milliseconds: off the event loop, other jobs keep streaming.
        return await asyncio.to_thread(
            _snapshot, token, pgid=pgid, sid=sid, known=tuple(known), adopted=adopted
        )

    # One look is enough: a daemon in the middle of execve (no environment to read for a
    # moment) is still in the job's session, or the child of a job's process, or adopted.
    snap = await scan()
    ended: set[int] = set(snap.live)
    if snap.live:
        _signal(snap.live, snap.groups, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while snap.live and (left := deadline - time.monotonic()) > 0:
            await _gone(snap.live, min(left, _POLL))
            reap(snap.zombies)
            snap = await scan(snap.live)
            # Forked during the grace: they get the same TERM.
            _signal(set(snap.live) - ended, (), signal.SIGTERM)
            ended.update(snap.live)
        deadline = time.monotonic() + _KILL_WAIT
        while snap.live and (left := deadline - time.monotonic()) > 0:
            _signal(snap.live, snap.groups, signal.SIGKILL)
            await _gone(snap.live, min(left, _POLL / 5))
            reap(snap.zombies)
            snap = await scan(snap.live)
            ended.update(snap.live)
    reap(snap.zombies)
    return sorted(ended)


def _nothing_left(pgid: int) -> bool:
    """True when the kernel shows a finished job left no process, without scanning /proc.

    Every process a job leaves descends from its script. While its parent lives, a
    process's ancestors lead up to one in the job's process group or to one whose parent
    died; the orphan is re-parented to opsroom, the subreaper (to its main thread: the kernel
    picks a reaper's first live thread). So an empty process group and no child of opsroom
    outside opsroom's own session — its helpers, the scripts of running jobs and the pool's
    fork servers aside — mean nothing is left. Anything else (or no way to tell) is for the
    full look.
    """
    if not _subreaper:
        return False  # orphans went to init: only their token can find them
    try:
        os.killpg(pgid, 0)
        return False  # still someone in the job's group
    except ProcessLookupError:
        pass
    except OSError:
        return False
    raw = _read(f"{_PROC}/self/task/{os.getpid()}/children", 4096)
    if raw is None:
        return False  # a kernel without CONFIG_PROC_CHILDREN
    own_session = os.getsid(0)
    for word in raw.split():
        child = int(word)
        if child in _managed:
            continue
        try:
            if os.getsid(child) != own_session:
                return False  # an orphan, of this job or an earlier one
        except OSError:
            continue  # gone meanwhile
    return True


async def _gone(pids: Iterable[int], timeout: float) -> bool:
    """True once every one of `pids` has exited; False after `timeout`, or where pidfds are
    not."""
    watches: list[asyncio.Future[None]] = []
    try:
        for pid in pids:
            if len(watches) >= _PIDFDS:
                await asyncio.sleep(timeout)
                return False
            try:
                watches.append(exit_watch(pid))
            except (OSError, AttributeError):
                await asyncio.sleep(timeout)  # no pidfds here (Linux < 5.3)
                return False
        if not watches:
            return True
        _, pending = await asyncio.wait(watches, timeout=timeout)
        return not pending
    finally:
        for watch in watches:
            watch.cancel()


def exit_watch(pid: int) -> asyncio.Future[None]:
    """A future done once `pid` has exited (a pidfd: readable at exit, even for a process
    that is not opsroom's child), at once when it is gone already; cancel it to stop
    watching. OSError where pidfds are not."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        done.set_result(None)
        return done
    loop.add_reader(fd, settle, done)

    def _unwatch(_: asyncio.Future[None]) -> None:
        # Out of the loop before the fd closes: the next fd to get the number must be seen.
        loop.remove_reader(fd)
        os.close(fd)

    done.add_done_callback(_unwatch)
    return done


def settle(done: asyncio.Future[None]) -> None:
    """Mark `done` done unless it is (a reader or writer callback: the fd is ready)."""
    if not done.done():
        done.set_result(None)


def _pid_carries(pid: int, token: str) -> bool:
    proc = _stat(pid)
    needle = f"\0{TOKEN_VAR}={token}\0".encode()
    return proc is not None and not proc.gone and _carries(pid, needle)


# Of the token, in a job's folder name: enough to find it, short enough that paths a script
# makes under its TMPDIR (a Unix socket's: 107 bytes at most) keep their room.
_WORKDIR_TOKEN = 12


def workdir_prefix(job_id: int, token: str) -> str:
    """The start of the name of a job's working folder: its id, then its token's start."""
    return f"opsroom-job{job_id}-{token[:_WORKDIR_TOKEN]}-"


def remove_workdirs(token: str, root: str | None = None) -> list[str]:
    """Remove the working folders of the job with this token (in `root`, the temporary
    folder by default), as a process that died with the job running left them; the folders
    removed. Only folders of this user, never through a symbolic link."""
    import glob
    import stat
    import tempfile

    root = root or tempfile.gettempdir()
    removed = []
    mark = glob.escape(token[:_WORKDIR_TOKEN])
    for path in glob.glob(os.path.join(glob.escape(root), f"opsroom-job*-{mark}-*")):
        try:
            found = os.lstat(path)
        except OSError:
            continue
        mine = not hasattr(os, "geteuid") or found.st_uid == os.geteuid()  # Windows: no uids
        if stat.S_ISDIR(found.st_mode) and mine:
            remove_workdir(path)
            removed.append(path)
    return removed


def remove_empty_workdir(path: str | os.PathLike[str]) -> bool:
    """Remove a job's working folder if the job left it empty (most do: one call, not a
    walk); whether it is gone."""
    try:
        os.rmdir(path)
    except OSError:
        return False
    return True


def remove_workdir(path: str | os.PathLike[str]) -> None:
    """Remove a job's working folder and whatever the job left in it, folders it made
    read-only too (Go's module cache is): opsroom owns them, so it may open them up. What
    still cannot go stays, as with `ignore_errors`."""
    if remove_empty_workdir(path):
        return
    remove_full_workdir(path)


def remove_full_workdir(path: str | os.PathLike[str]) -> None:
    """`remove_workdir` for a folder known to hold something (its `rmdir` failed): the walk."""
    import shutil

    root = os.path.abspath(path)
    tried: set[str] = set()

    def open_up_and_retry(func: object, failed: str, _exc: object) -> None:
        # Each path once: what fails again after its folders were opened up stays. Only
        # inside the job's folder, never through a link: the rest is not the job's.
        failed = os.path.abspath(failed)
        if failed in tried or os.path.islink(failed):
            return
        tried.add(failed)
        if os.path.commonpath([root, failed]) != root:
            return
        try:
            if failed != root:
                os.chmod(os.path.dirname(failed), 0o700)
            if os.path.isdir(failed) and func is not os.rmdir:
                os.chmod(failed, 0o700)  # could not be listed or opened
                shutil.rmtree(failed, onerror=open_up_and_retry)
            elif os.path.isdir(failed):
                os.rmdir(failed)
            else:
                os.unlink(failed)
        except OSError:
            pass

    shutil.rmtree(path, onerror=open_up_and_retry)


async def end_orphaned_job(
    token: str | None, pid: int | None, *, grace: float, workdirs: str | None = None
) -> list[int]:
    """End what is left of a job whose owner died; only processes proven to be the job's:
    the members of its cgroups (found by name), then what carries its token. Its working
    folder goes too (in `workdirs`, the temporary folder by default)."""
    if not token:
        return []  # without the token nothing proves a process is the job's: pids get reused
    in_cgroups = await end_leftovers(token, grace=grace)
    reap(in_cgroups)  # ours only where this process was their subreaper: a test, mostly
    pgid = sid = None
    if pid is not None and pid > 1 and _pid_carries(pid, token):
        with contextlib.suppress(OSError):
            pgid = os.getpgid(pid)
            sid = os.getsid(pid)
    by_token = await end_processes(token, pgid=pgid, sid=sid, grace=grace)
    remove_workdirs(token, workdirs)  # once nothing of the job writes there any more
    return sorted({*in_cgroups, *by_token})
