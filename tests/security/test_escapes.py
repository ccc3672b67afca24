"""No process outlives its job, whatever it does to get away (SPEC §5.5, issue: process escapes).

Each escape is a real process that ignores TERM and writes its pid to a file; the job's script
starts it, waits until every pid file is there, and writes `ready`. The test then ends the job
— timeout, cancel, a normal exit, `opsroom` exiting, or `opsroom` killed with SIGKILL and a
restart — and checks /proc for every reported pid itself. Each runs with a cgroup per job
(this host has a writable cgroup v2) and, where the fallback promises it, with
`[runner] cgroups = false` (process group, session, token and adoption by the subreaper).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import pytest

from opsroom.config import RunnerSettings
from opsroom.model.commands import CommandSpec, Invocation, Language
from opsroom.model.jobs import ExitEvent, JobEvent, JobState, OutputLine
from opsroom.runner.argv import build_launch
from opsroom.runner.cgroup import JobCgroup, preexec
from opsroom.runner.limits import Limits
from opsroom.runner.local import run_local
from opsroom.runner.tree import new_token
from support import OPSROOM, Opsroom, alive

GRACE = 1.0

# A double fork with a session of its own in between: the classic daemon.
DOUBLE_FORK = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork():
    sys.exit(0)
os.setsid()
if os.fork():
    os._exit(0)
with open(os.path.join(sys.argv[1], "double_fork"), "w") as f:
    f.write(str(os.getpid()))
while True:
    time.sleep(1)
"""

# Daemonises, then replaces itself again and again with an empty environment: whatever
# opsroom read of it a moment ago (environment, command line) is gone the next.
REEXEC = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if len(sys.argv) == 2:
    if os.fork():
        sys.exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
elif sys.argv[2] == "first":
    # Reported only now: from here on nothing of the job's environment is left.
    with open(os.path.join(sys.argv[1], "reexec"), "w") as f:
        f.write(str(os.getpid()))
    time.sleep(0.2)
else:
    time.sleep(0.2)
again = "first" if len(sys.argv) == 2 else "again"
os.execve(sys.executable, [sys.executable, __file__, sys.argv[1], again], {})
"""

# name → a line of bash that starts the escape ($D: the pid folder, $H: the helper folder).
ESCAPES = {
    "setsid": """setsid bash -c 'trap "" TERM; echo $$ > "$1/setsid"; exec sleep 300' _ "$D" &""",
    "double_fork": """"$PY" "$H/double_fork.py" "$D" &""",
    # The case: a new session, an empty environment and no parent left (the
    # subshell exits at once), so neither token, session nor parentage leads to it.
    "cleared_env": (
        """( env -i setsid /bin/bash -c 'trap "" TERM; echo $$ > "$1/cleared_env"; """
        """exec sleep 300' _ "$D" & )"""
    ),
    "closed_fds": (
        """( setsid /bin/bash -c 'exec 0<&- 1>&- 2>&- 3>&-; trap "" TERM; """
        """echo $$ > "$1/closed_fds"; exec sleep 300' _ "$D" & )"""
    ),
    "nohup": (
        """nohup /bin/bash -c 'trap "" TERM; echo $$ > "$1/nohup"; exec sleep 300' _ "$D" """
        """>/dev/null 2>&1 &"""
    ),
    "reexec": """( "$PY" "$H/reexec.py" "$D" & )""",
    # Forks a new TERM-ignoring child every 50 ms for as long as it lives, the grace included;
    # every child's pid is added to the file.
    "fork_storm": (
        """( setsid /bin/bash -c 'trap "" TERM; echo $$ > "$1/fork_storm"; while true; do """
        """(trap "" TERM; exec sleep 300) & echo $! >> "$1/fork_storm"; sleep 0.05; done' """
        """_ "$D" & )"""
    ),
}
MODES = ["cgroup", "fallback"]


def hostile_script(tmp_path: Path, names: list[str], then: str) -> str:
    """A bash script that starts the named escapes, says `ready` in a file, then `then`."""
    helpers = tmp_path / "helpers"
    helpers.mkdir(exist_ok=True)
    (helpers / "double_fork.py").write_text(DOUBLE_FORK)
    (helpers / "reexec.py").write_text(REEXEC)
    pids = tmp_path / "pids"
    pids.mkdir(exist_ok=True)
    started = "\n".join(ESCAPES[n] for n in names)
    waits = " ".join(names)
    tail = {
        "forever": "while true; do sleep 0.1; done",
        "exit": "echo finished; exit 0",
    }[then]
    return (
        f"trap '' TERM\n"
        f"D={pids}\nH={helpers}\nPY={sys.executable}\n"
        f"echo $$ > $D/main\n"
        f"{started}\n"
        f'for n in {waits}; do while [ ! -s "$D/$n" ]; do sleep 0.02; done; done\n'
        f"touch $D/ready\n"
        f"{tail}\n"
    )


def reported(tmp_path: Path) -> dict[str, list[int]]:
    """Every pid the job's processes wrote down, by escape."""
    found: dict[str, list[int]] = {}
    for path in (tmp_path / "pids").iterdir():
        if path.name != "ready":
            found[path.name] = [int(p) for p in path.read_text().split() if p.isdigit()]
    return found


def survivors(tmp_path: Path) -> dict[str, list[int]]:
    """The reported pids still running."""
    live = {k: [p for p in v if alive(p)] for k, v in reported(tmp_path).items()}
    return {k: v for k, v in live.items() if v}


def ours(pid: int, tmp_path: Path) -> bool:
    """Still one of this test's escapes (not a stranger that got its pid later)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"sleep\x00300" in cmdline or str(tmp_path).encode() in cmdline


@pytest.fixture(autouse=True)
def _no_strays(tmp_path: Path) -> Iterator[None]:
    """What a failing test left running is killed, so a failure costs the host nothing."""
    yield
    if (tmp_path / "pids").is_dir():
        for pids in reported(tmp_path).values():
            for pid in pids:
                if alive(pid) and ours(pid, tmp_path):
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)


def job_cgroups(token: str) -> list[str]:
    """Every cgroup folder of the job left on the host, found without the code under test."""
    name = f"opsroom-job-{token}"
    return [os.path.join(top, name) for top, dirs, _ in os.walk("/sys/fs/cgroup") if name in dirs]


async def until_ready(tmp_path: Path, job: asyncio.Future[ExitEvent]) -> None:
    """Wait for the script's `ready` file (failing at once if the job ended before)."""
    while not (tmp_path / "pids" / "ready").exists():
        assert not job.done(), f"the job ended before it was ready: {job.result()}"
        await asyncio.sleep(0.02)


class Job:
    """The hostile script in a catalog of its own, run through build_launch + run_local."""

    def __init__(self, tmp_path: Path, script: str, mode: str) -> None:
        self.tmp = tmp_path
        catalog = tmp_path / "catalog"
        catalog.mkdir()
        (catalog / "job.sh").write_text(script)
        self.work = tmp_path / "work"
        self.work.mkdir()
        self.token = new_token()
        self.events: list[JobEvent] = []
        self.launch = build_launch(
            CommandSpec(name="hostile", path="job.sh", language=Language.SHELL),
            Invocation("hostile", MappingProxyType({})),
            catalog_root=catalog,
            job_id=1,
            requester="local:mallory",
            room="local:term",
            settings=RunnerSettings(cgroups=mode == "cgroup"),
            workdir=self.work,
            token=self.token,
        )

    def start(
        self, *, timeout: float, cancel: asyncio.Event | None = None
    ) -> asyncio.Task[ExitEvent]:
        return asyncio.ensure_future(
            run_local(
                self.launch,
                timeout=timeout,
                kill_grace=GRACE,
                cancel=cancel,
                on_event=self.events.append,
                token=self.token,
            )
        )

    def stderr(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, OutputLine) and e.stream == "stderr"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("escape", sorted(ESCAPES))
async def test_a_cancelled_job_leaves_nothing_behind(
    tmp_path: Path, escape: str, mode: str
) -> None:
    job = Job(tmp_path, hostile_script(tmp_path, [escape], "forever"), mode)
    cancel = asyncio.Event()
    task = job.start(timeout=120, cancel=cancel)
    await until_ready(tmp_path, task)
    assert survivors(tmp_path).keys() == {"main", escape}
    cancel.set()
    end = await task
    assert end.state is JobState.CANCELLED
    assert survivors(tmp_path) == {}
    assert job_cgroups(job.token) == []


@pytest.mark.parametrize("mode", MODES)
async def test_a_timed_out_job_leaves_nothing_behind(tmp_path: Path, mode: str) -> None:
    job = Job(tmp_path, hostile_script(tmp_path, sorted(ESCAPES), "forever"), mode)
    task = job.start(timeout=8)
    await until_ready(tmp_path, task)
    assert survivors(tmp_path).keys() == {"main", *ESCAPES}
    end = await task
    assert end.state is JobState.TIMED_OUT
    assert survivors(tmp_path) == {}
    assert job_cgroups(job.token) == []


@pytest.mark.parametrize("mode", MODES)
async def test_what_a_finished_script_left_running_is_ended_and_named(
    tmp_path: Path, mode: str
) -> None:
    job = Job(tmp_path, hostile_script(tmp_path, sorted(ESCAPES), "exit"), mode)
    end = await job.start(timeout=120)
    assert end == ExitEvent(0, JobState.SUCCEEDED)
    assert survivors(tmp_path) == {}
    [note] = job.stderr()
    assert note.startswith("opsroom: ended ")
    named = {int(p) for p in note.rsplit("(pids ", 1)[1].rstrip(")").split(", ")}
    pids = reported(tmp_path)
    # Every escape is named; of the storm, itself (a child forked in the very last moment
    # may die in the KILL before it was listed).
    expected = {p for name in ESCAPES if name != "fork_storm" for p in pids[name]}
    assert expected | {pids["fork_storm"][0]} <= named
    assert job_cgroups(job.token) == []


# -- through the real `opsroom` command --------------------------------------------------------


def catalog_with(tmp_path: Path, then: str) -> Path:
    """A catalog whose one command, `hostile`, is the hostile script."""
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    script = hostile_script(tmp_path, sorted(ESCAPES), then)
    (catalog / "hostile.sh").write_text("#!/usr/bin/env bash\n# @describe Escape.\n" + script)
    return catalog


def opsroom_env(mode: str) -> dict[str, str]:
    """`opsroom`'s environment: a short grace (the escapes ignore TERM), cgroups or not."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}
    env["OPSROOM_RUNNER_KILL_GRACE"] = "1"
    if mode == "fallback":
        env["OPSROOM_RUNNER_CGROUPS"] = "false"
    return env


def job_row(workdir: Path) -> dict[str, object]:
    with sqlite3.connect(workdir / "opsroom.db") as db:
        db.row_factory = sqlite3.Row
        return dict(db.execute("SELECT * FROM jobs ORDER BY id DESC").fetchone())


def wait_ready(tmp_path: Path, proc: subprocess.Popen[str]) -> None:
    while not (tmp_path / "pids" / "ready").exists():
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)


@pytest.mark.parametrize("mode", MODES)
def test_when_opsroom_run_returns_nothing_of_the_job_is_left(
    tmp_path: Path, opsroom: Opsroom, mode: str
) -> None:
    catalog = catalog_with(tmp_path, "exit")
    r = opsroom("run", "--catalog", str(catalog), "!hostile", env=opsroom_env(mode))
    assert r.code == 0, r.stdout + r.stderr
    assert "finished" in r.stdout
    assert survivors(tmp_path) == {}


def _as_from_a_terminal() -> None:
    """Ctrl-C reaches a command typed at a terminal, however these tests were started (a
    background job of a shell ignores SIGINT, and what is ignored stays ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("mode", MODES)
def test_ctrl_c_to_opsroom_run_ends_the_whole_job(tmp_path: Path, workdir: Path, mode: str) -> None:
    catalog = catalog_with(tmp_path, "forever")
    proc = subprocess.Popen(
        [OPSROOM, "run", "--catalog", str(catalog), "!hostile"],
        cwd=workdir,
        env=opsroom_env(mode),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_as_from_a_terminal,
    )
    try:
        wait_ready(tmp_path, proc)
        assert survivors(tmp_path).keys() == {"main", *ESCAPES}
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
        assert survivors(tmp_path) == {}
        assert job_cgroups(str(job_row(workdir)["process_token"])) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_after_opsroom_is_killed_the_next_start_ends_the_job(
    tmp_path: Path, workdir: Path, opsroom: Opsroom
) -> None:
    catalog = catalog_with(tmp_path, "forever")
    proc = subprocess.Popen(
        [OPSROOM, "run", "--catalog", str(catalog), "!hostile"],
        cwd=workdir,
        env=opsroom_env("cgroup"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_ready(tmp_path, proc)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # Nothing ended them: opsroom got no chance to.
    assert survivors(tmp_path).keys() == {"main", *ESCAPES}
    token = str(job_row(workdir)["process_token"])
    assert job_cgroups(token) != []
    # Any opsroom command that opens the store reconciles it (SPEC §5.5).
    r = opsroom("jobs", "--catalog", str(catalog), env={"OPSROOM_RUNNER_KILL_GRACE": "1"})
    assert r.code == 0, r.stderr
    assert job_row(workdir)["state"] == "interrupted"
    assert survivors(tmp_path) == {}
    assert job_cgroups(token) == []


async def test_without_cgroup_kill_a_frozen_cgroup_is_emptied_all_the_same(tmp_path: Path) -> None:
    # Linux before 5.14 has no cgroup.kill: freeze, KILL every member, until none is left.
    group = JobCgroup.create(new_token(), Limits())
    pids = tmp_path / "pids"
    storm = f"trap '' TERM; while true; do (trap '' TERM; exec sleep 300) & echo $! >> {pids}; done"
    proc = subprocess.Popen(["bash", "-c", storm], preexec_fn=preexec(group, []))
    group.close_fds()
    try:
        while not pids.exists() or len(pids.read_text().split()) < 50:
            assert proc.poll() is None
            await asyncio.sleep(0.01)
        ended = await group.kill(use_kill=False)
        proc.wait()
        assert proc.pid in ended
        assert group.pids() == []
        assert [p for p in map(int, pids.read_text().split()) if alive(p)] == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert group.remove()


ONE_JOB = """
import asyncio
from opsroom.runner.argv import Launch
from opsroom.runner.local import run_local

launch = Launch(argv=("/bin/true",), env={}, cwd="/")
print(asyncio.run(run_local(launch, timeout=10, kill_grace=1, on_event=print)).state)
"""


def test_empty_cgroups_a_killed_opsroom_left_are_removed_by_the_next_one(tmp_path: Path) -> None:
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    own = next(line[3:] for line in lines if line.startswith("0::"))
    top = "/sys/fs/cgroup/unified" + own.rstrip("/")  # where this host mounts cgroup v2
    old, new, busy = (os.path.join(top, f"opsroom-job-{new_token()}") for _ in range(3))
    for path in (old, new, busy):
        os.mkdir(path)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        Path(busy, "cgroup.procs").write_text(str(sleeper.pid))
        hour_ago = time.time() - 3600
        for path in (old, busy):
            os.utime(path, (hour_ago, hour_ago))
        program = tmp_path / "one_job.py"
        program.write_text(ONE_JOB)
        done = subprocess.run(
            [sys.executable, str(program)], capture_output=True, text=True, check=True
        )
        assert done.stdout.split() == ["succeeded"]
        # The old empty one was a leftover; a fresh one may be a job just starting, and one
        # with a process in it is a job's (reconcile ends it, by the job's token).
        assert not os.path.exists(old)
        assert os.path.exists(new)
        assert os.path.exists(busy)
    finally:
        sleeper.kill()
        sleeper.wait()
        for path in (old, new, busy):
            if os.path.exists(path):
                os.rmdir(path)
