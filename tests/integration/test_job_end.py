"""How the end of a job is known: the kernel's word, never a fixed sleep (issue 15, scope 1).

A cgroup's `cgroup.events` says when its last process is gone; without a cgroup, an empty
process group and no adopted orphan say a finished job left nothing, and a pidfd per process
says when each is gone. Each check here uses real processes and compares with /proc.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsroom.runner import tree
from opsroom.runner.cgroup import JobCgroup, _Emptied, host
from opsroom.runner.limits import NO_LIMITS
from support import wait_for


def alive(pid: int) -> bool:
    """Running and not a zombie, read from /proc."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.fixture
def started() -> Iterator[list[int]]:
    """Pids a test started, KILLed and reaped (where ours) whatever happens."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    tree.reap(pids)


def _leader(script: str) -> tuple[int, list[int]]:
    """Run `script` in a session of its own, as a job's script runs; its pid and the pids it
    printed, once it has exited (what it started may live on)."""
    proc = subprocess.Popen(
        ["bash", "-c", script], start_new_session=True, stdout=subprocess.PIPE, text=True
    )
    out, _ = proc.communicate()
    return proc.pid, [int(p) for p in out.split()]


LEFT_NOTHING = """
import subprocess
from opsroom.runner import tree
assert tree.enable_subreaper()
job = subprocess.Popen(["true"], start_new_session=True)
job.wait()
print(tree._nothing_left(job.pid))
"""


def test_a_finished_job_that_left_nothing_is_known_without_a_look_at_proc() -> None:
    # In a fresh process: this one has adopted what earlier tests left behind, which the
    # check rightly counts as "maybe something left".
    done = subprocess.run(
        [sys.executable, "-c", LEFT_NOTHING],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_a_process_left_in_the_jobs_group_is_seen(started: list[int]) -> None:
    assert tree.enable_subreaper()
    leader, pids = _leader("sleep 300 >/dev/null & echo $!")
    started += pids
    assert alive(pids[0])
    assert not tree._nothing_left(leader)


ORPHAN = """
import os
pid = os.fork()
if pid == 0:
    os.setsid()
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execvp("sleep", ["sleep", "300"])
print(pid)
"""


def test_an_orphan_that_left_the_session_is_seen(started: list[int]) -> None:
    assert tree.enable_subreaper()
    # The orphan leaves the job's session and group; its parent dies: opsroom adopts it.
    leader, pids = _leader(f"{sys.executable} -c '{ORPHAN}'")
    started += pids
    wait_for(lambda: _parent(pids[0]) == os.getpid(), what="opsroom to adopt the orphan")
    assert os.getsid(pids[0]) != leader
    assert not tree._nothing_left(leader)


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


async def test_pidfds_say_when_processes_are_gone(started: list[int]) -> None:
    proc = subprocess.Popen(["sleep", "300"])
    started.append(proc.pid)
    assert not await tree._gone([proc.pid], 0.05), "still running: the wait runs out"
    proc.kill()
    assert await tree._gone([proc.pid], 30)
    assert not alive(proc.pid)
    proc.wait()


async def test_the_cgroup_says_when_its_last_process_is_gone(started: list[int]) -> None:
    assert host().v2 is not None, "this host's cgroup v2 is writable (tests/security/README.md)"
    group = JobCgroup.create(tree.new_token(), NO_LIMITS)
    try:
        (procs,) = group.procs_fds()
        proc = subprocess.Popen(["sleep", "300"], preexec_fn=lambda: os.write(procs, b"0"))
        started.append(proc.pid)
        group.close_fds()
        assert group.pids() == [proc.pid]
        with _Emptied(group.v2) as emptied:
            assert not await emptied.wait(0.05), "a member lives: the wait runs out"
            proc.kill()
            assert await emptied.wait(30)
        assert group.pids() == []
        proc.wait()
    finally:
        group.close_fds()
        assert group.remove()
