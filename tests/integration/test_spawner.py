"""Jobs started by the spawner (runner/pool.py, `[runner] spawner`): the same job as when
opsroom forks it itself, only its parent differs.

Real spawner processes, real scripts through build_launch + run_local; each spawned run is
compared with one opsroom starts itself (`pool=None`).
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest

from opsroom.config import RunnerSettings
from opsroom.model.commands import CommandSpec, Invocation, Language
from opsroom.model.jobs import ExitEvent, JobEvent, JobState, OutputLine
from opsroom.runner.argv import BOOTSTRAP_DIR, Launch, build_launch
from opsroom.runner.cgroup import JobCgroup
from opsroom.runner.limits import Limits
from opsroom.runner.local import run_local
from opsroom.runner.pool import PythonPool
from opsroom.runner.tree import new_token
from support import async_wait_for, carriers, ignored_in, started_ignoring

MODES = pytest.mark.parametrize("mode", ["cgroup", "fallback"])

# Everything a program can tell about how it was started.
WHOAMI = r"""#!/usr/bin/env bash
# @describe Who am I.
printf 'arg=[%s]\n' "$@"
echo "ppid=$PPID pid=$$ sid=$(ps -o sid= -p $$ | tr -d ' ') pgid=$(ps -o pgid= -p $$ | tr -d ' ')"
echo "stdin=$(readlink /proc/$$/fd/0)"
grep -E '^(SigIgn|SigBlk):' /proc/$$/status
echo "cgroup=$(grep '^0::' /proc/$$/cgroup)"
echo "cwd=$PWD"
env | grep -v -E '^(_|SHLVL|PWD|OLDPWD)=' | sort | sed 's/^/env:/'
@PYTHON@ -c 'import os; print("fds:" + " ".join(os.listdir(f"/proc/{os.getppid()}/fd")))'
echo to-stderr >&2
exit 3
"""

# Listed by a child of the script's shell while the shell only waits: a pipeline run by the
# shell itself would show the pipes it is still setting up.
WHOAMI = WHOAMI.replace("@PYTHON@", shlex.quote(sys.executable))

# Values that a shell would change: every one must arrive exactly as given.
TRICKY = ("two words", "$(touch pwned)", "a;b", "'q'", '"dq"', "*", "line\nbreak", "ünï", "")


@pytest.fixture
async def pool() -> AsyncIterator[PythonPool]:
    pool = PythonPool(0, spawner=True)
    assert await pool.spawner_ready() is not None
    yield pool
    await pool.close()


def launch(
    tmp_path: Path, text: str, mode: str, *args: str, settings: RunnerSettings | None = None
) -> Launch:
    catalog = tmp_path / "catalog"
    catalog.mkdir(parents=True, exist_ok=True)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    (catalog / "job.sh").write_text(text, encoding="utf-8")
    spec = CommandSpec(name="t", path="job.sh", language=Language.SHELL)
    built = build_launch(
        spec,
        Invocation("t", MappingProxyType({})),
        catalog_root=catalog,
        job_id=7,
        requester="local:alice",
        room="local:term",
        settings=settings or RunnerSettings(cgroups=mode == "cgroup"),
        secrets={},
        workdir=work,
        token=new_token(),
    )
    return replace(built, argv=(*built.argv, *args))


async def run(
    launch: Launch, pool: PythonPool | None, **kw: object
) -> tuple[ExitEvent, list[JobEvent]]:
    events: list[JobEvent] = []
    end = await run_local(
        launch,
        on_event=events.append,
        pool=pool,
        **{"timeout": 60.0, "kill_grace": 1.0, **kw},  # type: ignore[arg-type]
    )
    return end, events


def lines(events: list[JobEvent], stream: str = "stdout") -> list[str]:
    return [e.text for e in events if isinstance(e, OutputLine) and e.stream == stream]


def field(out: list[str], name: str) -> str:
    return next(line for line in out if line.startswith(name + "=")).split("=", 1)[1]


@MODES
async def test_a_spawned_job_is_started_exactly_as_opsroom_starts_one(
    tmp_path: Path, pool: PythonPool, mode: str
) -> None:
    spawner = await pool.spawner_ready()
    runs = {}
    for how, via in (("spawned", pool), ("opsroom", None)):
        job = launch(tmp_path / how, WHOAMI, mode, *TRICKY)
        end, events = await run(job, via)
        assert (end.state, end.exit_code) == (JobState.FAILED, 3)
        assert lines(events, "stderr") == ["to-stderr"]
        runs[how] = (job, lines(events))
    assert pool.spawned == 1
    (job, out), (_, cold) = runs["spawned"], runs["opsroom"]
    # The values as typed, each one argument, never through a shell.
    assert out[:10] == [
        "arg=[two words]",
        "arg=[$(touch pwned)]",
        "arg=[a;b]",
        "arg=['q']",
        'arg=["dq"]',
        "arg=[*]",
        "arg=[line",
        "break]",
        "arg=[ünï]",
        "arg=[]",
    ]
    assert not list(tmp_path.rglob("pwned"))
    ids = dict(kv.split("=") for kv in ("ppid=" + field(out, "ppid")).split())
    assert ids["ppid"] == str(spawner), "its parent is the spawner"
    assert ids["sid"] == ids["pid"] == ids["pgid"], "a session and process group of its own"
    assert field(cold, "ppid").split()[0] == str(os.getpid())
    assert field(out, "stdin") == "/dev/null"
    assert field(out, "cwd") == job.cwd
    if mode == "cgroup":
        assert field(out, "cgroup").endswith("/opsroom-job-" + job.env["OPSROOM_JOB_TOKEN"])

    # The same signals (none ignored or blocked) as a job opsroom starts itself; exactly the
    # job's environment; open only 0-2, the event pipe (its number differs) and bash's script.
    def signals(lines: list[str]) -> list[str]:
        return [line for line in lines if line.startswith("Sig")]

    assert signals(out) == signals(cold)
    ignored = int(next(x for x in signals(out) if x.startswith("SigIgn:"))[7:], 16)
    for sig in (signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM):
        assert not ignored & (1 << (sig - 1)), f"{sig.name} ignored"
    for ran, seen in (runs["spawned"], runs["opsroom"]):
        env = dict(line[4:].split("=", 1) for line in seen if line.startswith("env:"))
        events_fd = env.pop("OPSROOM_EVENTS_FD")
        assert env == {k: v for k, v in ran.env.items() if "\n" not in v}
        fds = next(line for line in seen if line.startswith("fds:"))[4:].split()
        assert sorted(fds, key=int) == sorted(["0", "1", "2", "255", events_fd], key=int)


async def test_a_pipeline_writer_dies_of_sigpipe_as_it_does_anywhere(
    tmp_path: Path, pool: PythonPool
) -> None:
    text = "#!/usr/bin/env bash\n# @describe Pipe.\nyes | head -n 1\necho status=${PIPESTATUS[0]}\n"
    end, events = await run(launch(tmp_path, text, "cgroup"), pool)
    assert end.state is JobState.SUCCEEDED
    assert pool.spawned == 1
    assert lines(events) == ["y", f"status={128 + signal.SIGPIPE}"]
    assert lines(events, "stderr") == []


async def test_a_program_that_cannot_start_says_why_as_it_does_from_opsroom(
    tmp_path: Path, pool: PythonPool
) -> None:
    base = launch(tmp_path, "#!/usr/bin/env bash\ntrue\n", "cgroup")
    plain = tmp_path / "not-executable"
    plain.write_text("#!/bin/sh\n")
    cases = {
        tmp_path / "missing": "No such file or directory",
        plain: "Permission denied",
    }
    for program, reason in cases.items():
        for via in (pool, None):
            end, events = await run(replace(base, argv=(str(program), "x")), via)
            assert (end.state, end.exit_code) == (JobState.FAILED, None)
            assert end.message == f"could not start {program}: {reason}"
            assert lines(events) == []
    gone = replace(base, cwd=str(tmp_path / "no-such-folder"))
    for via in (pool, None):
        end, _ = await run(gone, via)
        assert end.message == (
            f"could not start the job: working folder {gone.cwd}: No such file or directory"
        )
    assert pool.spawned == 0  # none of them started
    end, events = await run(base, pool)  # and the spawner still works
    assert end.state is JobState.SUCCEEDED
    assert pool.spawned == 1


async def test_a_killed_spawner_is_replaced_and_no_job_is_lost(
    tmp_path: Path, pool: PythonPool
) -> None:
    text = "#!/usr/bin/env bash\n# @describe Parent.\necho ppid=$PPID\n"
    job = launch(tmp_path, text, "cgroup")
    first = await pool.spawner_ready()
    assert first is not None
    os.kill(first, signal.SIGKILL)
    await async_wait_for(lambda: not Path(f"/proc/{first}").exists() or _zombie(first))
    end, events = await run(job, pool)
    assert end.state is JobState.SUCCEEDED
    assert lines(events) == [f"ppid={os.getpid()}"], "started from opsroom meanwhile"
    second = await pool.spawner_ready()
    assert second not in (None, first)
    end, events = await run(job, pool)
    assert end.state is JobState.SUCCEEDED
    assert lines(events) == [f"ppid={second}"]


@MODES
async def test_cancel_ends_a_spawned_jobs_whole_tree(
    tmp_path: Path, pool: PythonPool, mode: str
) -> None:
    text = textwrap.dedent(
        """\
        #!/usr/bin/env bash
        # @describe Sleeps, with a child.
        sleep 300 &
        echo child=$!
        wait
        """
    )
    cancel = asyncio.Event()
    events: list[JobEvent] = []

    def seen(event: JobEvent) -> None:
        events.append(event)
        if isinstance(event, OutputLine) and event.text.startswith("child="):
            cancel.set()

    job = launch(tmp_path, text, mode)
    end = await run_local(
        job, on_event=seen, pool=pool, timeout=60.0, kill_grace=1.0, cancel=cancel
    )
    assert end.state is JobState.CANCELLED
    child = int(field(lines(events), "child"))
    await async_wait_for(lambda: not Path(f"/proc/{child}").exists() or _zombie(child))


async def test_a_start_given_up_while_the_spawner_starts_it_is_ended_once_it_runs(
    tmp_path: Path, pool: PythonPool
) -> None:
    spawner = await pool.spawner_ready()
    assert spawner is not None
    # Stopped, the spawner holds the request: the start is given up before it has begun.
    os.kill(spawner, signal.SIGSTOP)
    try:
        marker = tmp_path / "ran"
        text = f"#!/usr/bin/env bash\n# @describe Lingers.\ntouch {marker}\nexec sleep 300\n"
        job = launch(tmp_path, text, "fallback")
        token = job.env["OPSROOM_JOB_TOKEN"]
        starting = asyncio.ensure_future(run(job, pool))
        await async_wait_for(lambda: pool._spawner is not None and bool(pool._spawner.jobs))
        starting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await starting
    finally:
        os.kill(spawner, signal.SIGCONT)
    # The spawner starts it now, then the next job (it takes requests in turn); opsroom,
    # which gave the first up, ends it as soon as it hears of it.
    later = launch(tmp_path / "next", "#!/usr/bin/env bash\necho ok\n", "cgroup")
    end, events = await run(later, pool)
    assert (end.state, lines(events)) == (JobState.SUCCEEDED, ["ok"]), "and the spawner goes on"
    await async_wait_for(lambda: not carriers(token))
    assert pool.spawned == 1  # the one that ran to its end


def _cgroups(pid: int | str) -> dict[str, str]:
    """The cgroup of a process in each hierarchy, by its controllers ("" for v2)."""
    text = Path(f"/proc/{pid}/cgroup").read_text()
    return {ctrl: path for _, ctrl, path in (line.split(":", 2) for line in text.splitlines())}


async def test_a_spawned_job_is_born_in_every_cgroup_of_its_own_and_the_spawner_goes_home(
    tmp_path: Path, pool: PythonPool
) -> None:
    spawner = await pool.spawner_ready()
    assert spawner is not None
    home = _cgroups(spawner)
    assert home == _cgroups(os.getpid())
    # The script's first command reads its cgroups: nothing of it ran outside them.
    text = "#!/usr/bin/env bash\n# @describe Where.\ncat /proc/$$/cgroup\necho pid=$$ ppid=$PPID\n"
    job = launch(tmp_path, text, "cgroup")
    end, events = await run(job, pool)
    assert end.state is JobState.SUCCEEDED
    out = lines(events)
    ids = dict(kv.split("=") for kv in out[-1].split())
    assert ids["ppid"] == str(spawner)
    name = "/opsroom-job-" + job.env["OPSROOM_JOB_TOKEN"]
    seen = {ctrl: path for _, ctrl, path in (line.split(":", 2) for line in out[:-1])}
    made = [ctrl for ctrl in seen if seen[ctrl].endswith(name)]
    assert "" in made, "the cgroup v2"
    for hierarchy in ("memory", "pids"):  # the v1 hierarchies this host limits jobs with
        if any(hierarchy in ctrl.split(",") and home[ctrl] != seen[ctrl] for ctrl in seen):
            assert any(hierarchy in ctrl.split(",") for ctrl in made)
    assert _cgroups(spawner) == home, "the spawner is back in its own cgroups"


async def _traced(pid: int, path: Path) -> asyncio.subprocess.Process:
    """strace on `pid` and what it starts: the system calls that start a process, and
    writes; returned once it is attached."""
    tracer = await asyncio.create_subprocess_exec(
        *("strace", "-f", "-qq", "-e", "trace=clone3,vfork,write", "-o", str(path)),
        *("-p", str(pid)),
    )
    await async_wait_for(lambda: _tracer_of(pid) != 0)
    return tracer


def _tracer_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return int(next(line for line in status if line.startswith("TracerPid:")).split()[1])


async def test_a_job_alone_is_born_in_its_cgroup_and_jobs_in_a_burst_move_in(
    tmp_path: Path, pool: PythonPool
) -> None:
    # A move into a cgroup v2 waits for an RCU grace period (6-12 ms here) unless another
    # move came just before; a fork straight into the cgroup (clone3) never waits for one.
    spawner = await pool.spawner_ready()
    assert spawner is not None
    trace = tmp_path / "trace"
    tracer = await _traced(spawner, trace)
    text = "#!/usr/bin/env bash\n# @describe Where.\ngrep '^0::' /proc/$$/cgroup\n"
    try:
        alone = launch(tmp_path / "alone", text, "cgroup")
        burst = [launch(tmp_path / f"b{n}", text, "cgroup") for n in range(4)]
        for jobs in ([alone], burst):
            await asyncio.sleep(0.1)  # nothing asked of the spawner for a while
            ends = await asyncio.gather(*(run(job, pool) for job in jobs))
            for job, (end, events) in zip(jobs, ends, strict=True):
                assert end.state is JobState.SUCCEEDED
                token = job.env["OPSROOM_JOB_TOKEN"]
                assert lines(events)[0].endswith(f"/opsroom-job-{token}")
    finally:
        tracer.send_signal(signal.SIGINT)
        await tracer.wait()
    mine = [
        call
        for who, call in (line.split(None, 1) for line in trace.read_text().splitlines())
        if who == str(spawner)
    ]
    starts = [n for n, call in enumerate(mine) if call.startswith(("clone3(", "vfork("))]
    assert len(starts) == 5, mine
    moves = [n for n, call in enumerate(mine) if call.startswith("write(") and '"0"' in call]
    # The job alone, and the first of the burst: forked into their cgroups v2 ...
    assert all("CLONE_INTO_CGROUP" in mine[n] for n in starts[:2])
    assert not [n for n in moves if n < starts[1]], "the spawner moved nowhere for them"
    # ... the others of the burst started with a vfork from inside theirs: the spawner moves
    # in and back, which waits for nothing once a move came just before.
    vforks = [n for n in starts[2:] if mine[n].startswith("vfork(")]
    assert vforks, [mine[n] for n in starts]
    assert len([n for n in moves if n > starts[1]]) >= 2 * len(vforks)
    assert _cgroups(spawner) == _cgroups(os.getpid()), "the spawner is back in its own cgroups"


def _v2(cgroups: str) -> str:
    """The cgroup v2 line of a /proc/<pid>/cgroup."""
    return next(line for line in cgroups.splitlines() if line.startswith("0::"))


# The servers' fork, run alone in a child interpreter: where the child is once forked, and
# once it has moved itself (as the server's child does when it was not born there).
FORK = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
import python_pool as pp
if sys.argv[3] == "refused":
    pp._clone = False  # as where the kernel or a seccomp filter refuses clone3
folder = os.open(sys.argv[2], os.O_RDONLY | os.O_DIRECTORY)
pid, born = pp._fork(folder)
if pid == 0:
    with open("/proc/self/cgroup") as f:
        before = f.read()
    if not born:
        try:
            os.write(pp._procs_of(folder), b"0")
        except OSError:
            pass  # not a cgroup: the server's child says it could not enter it
    with open("/proc/self/cgroup") as f:
        after = f.read()
    print(json.dumps([born, before, after, pp._clone is not False]), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""


@pytest.mark.parametrize("kernel", ["clone3", "refused"])
def test_a_child_is_born_in_its_cgroup_or_where_that_is_refused_moves_in(
    tmp_path: Path, kernel: str
) -> None:
    group = JobCgroup.create(new_token(), Limits(memory=1 << 30, pids=100))
    try:
        assert group.v2 is not None
        name = "/" + group.v2.rsplit("/", 1)[1]  # its line in /proc/<pid>/cgroup ends so
        for folder, cgroup in ((group.v2, True), (str(tmp_path), False)):
            run = subprocess.run(
                [sys.executable, "-I", "-c", FORK, str(BOOTSTRAP_DIR), folder, kernel],
                capture_output=True,
                text=True,
                check=True,
            )
            born, before, after, usable = json.loads(run.stdout)
            if not cgroup:
                # Not a cgroup at all: refused for this one folder, clone3 stays in use.
                assert (born, usable) == (False, kernel == "clone3")
                continue
            assert born is (kernel == "clone3")
            assert _v2(before).endswith(name) is born, "born there, or not yet there"
            assert _v2(after).endswith(name), "it moved in"
    finally:
        group.close_fds()
        group.remove()


async def test_a_job_with_rlimits_or_a_pids_limit_of_one_is_still_started_by_the_spawner(
    tmp_path: Path, pool: PythonPool
) -> None:
    spawner = await pool.spawner_ready()
    text = "#!/usr/bin/env bash\n# @describe Limits.\necho ppid=$PPID as=$(ulimit -v)\n"
    # Without cgroups the memory limit is an rlimit, set in the spawner's forked child.
    rlimited = RunnerSettings(cgroups=False, max_memory=512 * 1024**2)
    end, events = await run(launch(tmp_path / "r", text, "fallback", settings=rlimited), pool)
    assert end.state is JobState.SUCCEEDED
    assert lines(events) == [f"ppid={spawner} as={512 * 1024}"]
    # A pids limit of one leaves no room for the spawner beside the job for its start.
    one = RunnerSettings(cgroups=True, max_pids=1)
    job = launch(tmp_path / "p", "#!/usr/bin/env bash\necho ppid=$PPID\n", "cgroup", settings=one)
    end, events = await run(job, pool)
    assert end.state is JobState.SUCCEEDED, end.message
    assert lines(events) == [f"ppid={spawner}"]
    assert pool.spawned == 2


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return True


# Read by a program the script starts: bash ignores SIGQUIT itself while it runs (and sets it
# back for its children), but what it was started ignoring its children inherit.
IGNORED = "#!/usr/bin/env bash\ngrep '^SigIgn:' /proc/self/status\nexit 3\n"


@MODES
async def test_signals_opsroom_was_started_ignoring_are_at_their_defaults_in_every_job(
    tmp_path: Path, mode: str
) -> None:
    # opsroom (this process) and the spawner it starts ignore them, as when started in the
    # background; each way of starting a job must give the job its defaults all the same.
    seen = {}
    with started_ignoring():
        pool = PythonPool(0, spawner=True)
        try:
            assert await pool.spawner_ready() is not None
            for how, via in (("spawned", pool), ("opsroom", None)):
                end, events = await run(launch(tmp_path / how, IGNORED, mode), via)
                assert end.exit_code == 3, lines(events, "stderr")
                seen[how] = next(x for x in lines(events) if x.startswith("SigIgn:"))
            assert pool.spawned == 1
        finally:
            await pool.close()
    assert {how: ignored_in(line) for how, line in seen.items()} == {"spawned": [], "opsroom": []}
    assert seen["spawned"] == seen["opsroom"]
