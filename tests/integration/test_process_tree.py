"""A job's whole process tree ends with it, whatever the script does (SPEC §5.3, §5.5).

Real scripts that ignore TERM, fork, `setsid` away, clear their environment or hold our pipes;
the checks look at /proc directly rather than trusting the code under test. Each runs with a
cgroup per job (this host has a writable cgroup v2) and in the fallback (`cgroups = false`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

import pytest

from opsroom.config import RunnerSettings
from opsroom.model.commands import CommandSpec, Invocation, Language
from opsroom.model.jobs import AttachmentEvent, ExitEvent, JobEvent, JobState, OutputLine
from opsroom.runner.argv import Launch, build_launch
from opsroom.runner.local import run_local
from opsroom.runner.tree import (
    end_orphaned_job,
    job_processes,
    new_token,
    remove_workdir,
    remove_workdirs,
)
from support import alive, async_wait_for, carriers

GRACE = 1.0
MODES = ["cgroup", "fallback"]

# Every kind of straggler: a TERM-ignoring child, a double-forked setsid daemon that ignores
# TERM and holds stdout, and a process with a cleared environment in a session of its own.
DAEMON = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        print(f"daemon={os.getpid()}", flush=True)
        while True:
            time.sleep(1)
    os._exit(0)
os.wait()
"""

TREE = f"""
trap '' TERM
echo "main=$$"
bash -c 'trap "" TERM; echo child=$$; exec sleep 300' &
{sys.executable} -c '{DAEMON}'
env -i setsid sleep 300 &
echo "bare=$!"
echo ready
while true; do sleep 0.1; done
"""


class Script:
    """A script in a catalog of its own, run through build_launch + run_local."""

    def __init__(
        self,
        tmp_path: Path,
        text: str,
        language: Language = Language.SHELL,
        name: str = "",
        mode: str = "cgroup",
    ) -> None:
        self.settings = RunnerSettings(cgroups=mode == "cgroup")
        self.catalog = tmp_path / "catalog"
        self.catalog.mkdir(exist_ok=True)
        self.work = tmp_path / "job"
        self.work.mkdir(exist_ok=True)
        name = name or ("job.py" if language is Language.PYTHON else "job.sh")
        (self.catalog / name).write_text(textwrap.dedent(text), encoding="utf-8")
        self.spec = CommandSpec(name="t", path=name, language=language)
        self.token = new_token()
        self.events: list[JobEvent] = []

    def launch(self) -> Launch:
        return build_launch(
            self.spec,
            Invocation("t", MappingProxyType({})),
            catalog_root=self.catalog,
            job_id=1,
            requester="local:alice",
            room="local:term",
            settings=self.settings,
            workdir=self.work,
            token=self.token,
        )

    async def run(self, **kw: object) -> ExitEvent:
        return await run_local(
            self.launch(),
            on_event=self.events.append,
            token=self.token,
            **{"timeout": 30.0, "kill_grace": GRACE, **kw},  # type: ignore[arg-type]
        )

    def out(self, stream: str = "stdout") -> list[str]:
        return [e.text for e in self.events if isinstance(e, OutputLine) and e.stream == stream]

    def pids(self) -> dict[str, int]:
        return {
            k: int(v)
            for line in self.out()
            if "=" in line
            for k, v in [line.split("=", 1)]
            if v.isdigit()
        }

    async def ready(self, *names: str) -> dict[str, int]:
        await async_wait_for(
            lambda: set(names) <= self.pids().keys(), what=f"the script to print {names}"
        )
        return self.pids()


def our_zombie(pid: int) -> bool:
    """A dead child of this process nobody reaped: it would pile up in a long-running bot."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return fields[0] == "Z" and int(fields[1]) == os.getpid()


def job_cgroups(token: str) -> list[str]:
    """Every cgroup folder of the job left on the host, found without the code under test."""
    name = f"opsroom-job-{token}"
    return [os.path.join(top, name) for top, dirs, _ in os.walk("/sys/fs/cgroup") if name in dirs]


def cgroup_of(pid: int) -> str:
    """The process's cgroup v2 path, as the kernel reports it."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    return ""


def assert_all_gone(pids: dict[str, int], token: str) -> None:
    assert {k: p for k, p in pids.items() if alive(p)} == {}
    assert carriers(token) == []
    assert job_processes(token) == []
    # Orphans adopted by us (subreaper) must have had their exit statuses collected.
    assert {k: p for k, p in pids.items() if our_zombie(p)} == {}
    assert job_cgroups(token) == [], "the job's cgroups are removed with it"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("how", ["timeout", "cancel"])
async def test_timeout_and_cancel_end_the_whole_tree(tmp_path: Path, how: str, mode: str) -> None:
    job = Script(tmp_path, TREE, mode=mode)
    cancel = asyncio.Event()
    timeout = 1.5 if how == "timeout" else 30

    async def press_cancel() -> None:
        await job.ready("main", "child", "daemon", "bare")
        if how == "cancel":
            cancel.set()

    # The tree ignores TERM and loops forever: run() returning at all shows the KILL after
    # the grace (how soon: bench/bench_supervision.py).
    _, end = await asyncio.gather(press_cancel(), job.run(timeout=timeout, cancel=cancel))
    assert end.state is (JobState.TIMED_OUT if how == "timeout" else JobState.CANCELLED)
    pids = job.pids()
    assert set(pids) == {"main", "child", "daemon", "bare"}
    assert_all_gone(pids, job.token)


@pytest.mark.parametrize("mode", MODES)
async def test_cancelling_the_awaiting_task_ends_the_tree(tmp_path: Path, mode: str) -> None:
    job = Script(tmp_path, TREE, mode=mode)
    task = asyncio.ensure_future(job.run(timeout=60))
    pids = await job.ready("main", "child", "daemon", "bare")
    if mode == "cgroup":
        # Every process, the double-forked daemon included, is a member of the job's cgroup.
        assert {k: cgroup_of(p).rsplit("/", 1)[-1] for k, p in pids.items()} == dict.fromkeys(
            pids, f"opsroom-job-{job.token}"
        )
    else:
        # The daemon's parent exited: opsroom, a child subreaper, adopted it rather than init.
        stat = Path(f"/proc/{pids['daemon']}/stat").read_text()
        assert int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_all_gone(pids, job.token)


@pytest.mark.parametrize("mode", MODES)
async def test_a_straggler_left_after_a_normal_exit_is_ended_and_reported(
    tmp_path: Path, mode: str
) -> None:
    job = Script(tmp_path, f"{sys.executable} -c '{DAEMON}'\necho finished\n", mode=mode)
    end = await job.run(timeout=30)
    # The daemon ignores TERM and holds stdout forever: had the runner waited for it, the
    # job would have timed out; it took the grace and a KILL instead.
    assert end == ExitEvent(0, JobState.SUCCEEDED)
    daemon = job.pids()["daemon"]
    assert "finished" in job.out()
    assert job.out("stderr") == [
        f"opsroom: ended 1 leftover process the script left running (pid {daemon})"
    ]
    assert_all_gone({"daemon": daemon}, job.token)


@pytest.mark.parametrize("mode", MODES)
async def test_a_script_that_closes_its_output_still_ends_at_the_timeout(
    tmp_path: Path, mode: str
) -> None:
    job = Script(
        tmp_path,
        """
        echo "main=$$"
        exec >&- 2>&-
        trap '' TERM
        while true; do sleep 0.1; done
        """,
        mode=mode,
    )
    end = await job.run(timeout=1.5)
    assert end.state is JobState.TIMED_OUT
    assert_all_gone(job.pids(), job.token)


OWNER = """
import asyncio, sys
from opsroom.runner.argv import Launch
from opsroom.runner.local import run_local

def show(event):
    text = getattr(event, "text", None)
    if text is not None:
        print(text, flush=True)

launch = Launch(argv=("/bin/bash", sys.argv[1]), env={"PATH": "/usr/bin:/bin"}, cwd=sys.argv[2])
asyncio.run(run_local(launch, timeout=300, kill_grace=1, on_event=show, token=sys.argv[3]))
"""


async def test_after_the_owner_is_killed_the_orphaned_tree_is_ended(tmp_path: Path) -> None:
    script = tmp_path / "tree.sh"
    script.write_text(TREE)
    owner_py = tmp_path / "owner.py"
    owner_py.write_text(OWNER)
    token = new_token()
    owner = subprocess.Popen(
        [sys.executable, str(owner_py), str(script), str(tmp_path), token],
        stdout=subprocess.PIPE,
        text=True,
    )
    # Not the job's, though it leads its own session and group just like a job's script.
    unrelated = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        assert owner.stdout is not None
        pids: dict[str, int] = {}
        # Up to "ready": the script's last write, which would meet a closed pipe once the
        # owner is gone.
        while (line := owner.stdout.readline().strip()) != "ready":
            assert line, "the owner stopped before the job was ready"
            key, _, value = line.partition("=")
            if value.isdigit():
                pids[key] = int(value)
        assert set(pids) == {"main", "child", "daemon", "bare"}
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        # No pause to "let it die": `ended` below lists only processes end_orphaned_job
        # itself ended, so a tree that died with its owner would fail there.
        assert all(alive(p) for p in pids.values()), "the tree should outlive its owner"

        # A token proves nothing about a pid it does not carry; no token, nothing is touched.
        assert await end_orphaned_job(None, unrelated.pid, grace=GRACE) == []
        assert await end_orphaned_job(new_token(), unrelated.pid, grace=GRACE) == []
        assert alive(unrelated.pid)

        ended = await end_orphaned_job(token, pids["main"], grace=GRACE)
        assert set(pids.values()) <= set(ended)
        assert_all_gone(pids, token)
        assert alive(unrelated.pid)
    finally:
        unrelated.kill()
        unrelated.wait()
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()


ATTACH_CASES = [
    # (name, setup commands, event JSON, expected AttachmentEvent fields or refusal text)
    (
        "a file in the folder",
        "printf 'a,b\\n' > report.csv",
        '{"type":"attachment","path":"report.csv"}',
        ("report.csv", "report.csv", 4, "text/csv"),
    ),
    (
        "a nested file, name and type given",
        "mkdir -p out && printf x > out/r.bin",
        '{"type":"attachment","path":"out/r.bin","name":"../x/Report 1.bin",'
        '"content_type":"application/x-thing"}',
        ("Report 1.bin", "out/r.bin", 1, "application/x-thing"),
    ),
    (
        "an absolute path inside the folder",
        "printf abc > data.txt",
        '{"type":"attachment","path":"\'"$PWD"\'/data.txt"}',
        ("data.txt", "data.txt", 3, "text/plain"),
    ),
    (
        "a climb out of the folder",
        "true",
        '{"type":"attachment","path":"../../etc/passwd"}',
        "outside the job's working folder",
    ),
    (
        "an absolute path elsewhere",
        "true",
        '{"type":"attachment","path":"/etc/passwd"}',
        "outside the job's working folder",
    ),
    (
        "a symlink pointing outside",
        "ln -s /etc/passwd link.txt",
        '{"type":"attachment","path":"link.txt"}',
        "outside the job's working folder",
    ),
    (
        "a directory",
        "mkdir -p somedir",
        '{"type":"attachment","path":"somedir"}',
        "not a regular file",
    ),
    (
        "a file too big",
        "head -c 2048 /dev/zero > big.bin",
        '{"type":"attachment","path":"big.bin"}',
        "it is 2.0 KB, more than the 1.0 KB limit",
    ),
    (
        "a missing file",
        "true",
        '{"type":"attachment","path":"nope.csv"}',
        "no such file",
    ),
]


@pytest.mark.parametrize(
    ("setup", "event", "expected"),
    [c[1:] for c in ATTACH_CASES],
    ids=[c[0] for c in ATTACH_CASES],
)
async def test_attachments_only_from_the_working_folder(
    tmp_path: Path, setup: str, event: str, expected: tuple[str, str, int, str] | str
) -> None:
    job = Script(tmp_path, f"{setup}\necho '{event}' >&\"$OPSROOM_EVENTS_FD\"\n")
    end = await job.run(max_attachment=1024)
    assert end.state is JobState.SUCCEEDED, job.events
    attached = [e for e in job.events if isinstance(e, AttachmentEvent)]
    if isinstance(expected, tuple):
        name, rel, size, content_type = expected
        real = os.path.realpath(job.work / rel)
        assert attached == [AttachmentEvent(name, real, size, content_type)]
        assert job.out("stderr") == []
    else:
        assert attached == []
        [note] = job.out("stderr")
        assert note.startswith("opsroom: did not attach ")
        assert note.endswith(expected)


async def test_python_scripts_attach_with_the_helper(tmp_path: Path) -> None:
    job = Script(
        tmp_path,
        """
        from pathlib import Path
        from opsroom import script

        def main():
            Path("hosts.json").write_text("[]")
            script.attach("hosts.json", name="All hosts.json")
        """,
        Language.PYTHON,
    )
    end = await job.run()
    assert end.state is JobState.SUCCEEDED, job.events
    path = os.path.realpath(job.work / "hosts.json")
    assert [e for e in job.events if isinstance(e, AttachmentEvent)] == [
        AttachmentEvent("All hosts.json", path, 2, "application/json")
    ]


MEMORY = """
import asyncio, resource, sys
from opsroom.runner.argv import Launch
from opsroom.runner.local import run_local

count = 0

def on_event(event):
    global count
    if getattr(event, "stream", None) == "stdout":
        count += 1

script = 'yes "$(printf "x%.0s" $(seq 999))" | head -c 300000000'
launch = Launch(argv=("/bin/bash", "-c", script), env={"PATH": "/usr/bin:/bin"}, cwd=sys.argv[1])

async def main():
    # Warm up the event loop and the runner before the baseline.
    warm = Launch(argv=("/bin/true",), env={}, cwd=sys.argv[1])
    await run_local(warm, timeout=10, kill_grace=1, on_event=lambda e: None)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    end = await run_local(launch, timeout=120, kill_grace=1, on_event=on_event)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(end.state, count, (after - before) // 1024)

asyncio.run(main())
"""


def test_memory_stays_bounded_whatever_the_script_prints(tmp_path: Path) -> None:
    program = tmp_path / "memory.py"
    program.write_text(MEMORY)
    result = subprocess.run(
        [sys.executable, str(program), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=110,
        check=True,
    )
    state, lines, grown_mb = result.stdout.split()
    assert state == "succeeded"
    assert int(lines) == 300_000  # 300 MB in lines of 1,000 bytes, none lost
    assert int(grown_mb) < 100


def test_only_the_working_folders_of_the_jobs_token_are_removed(tmp_path: Path) -> None:
    token, other = new_token(), new_token()
    mine = tmp_path / f"opsroom-job7-{token[:12]}-abc123"
    (mine / "deep").mkdir(parents=True)
    (mine / "deep" / "file").write_text("x")
    theirs = tmp_path / f"opsroom-job8-{other[:12]}-def456"
    theirs.mkdir()
    # A link named like the job's folder is not followed: what it points at stays.
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep").write_text("x")
    (tmp_path / f"opsroom-job9-{token[:12]}-link").symlink_to(target)
    assert remove_workdirs(token, str(tmp_path)) == [str(mine)]
    assert not mine.exists()
    assert theirs.is_dir()
    assert (target / "keep").exists()
    assert remove_workdirs(token, str(tmp_path)) == []


def _messy_folder_removed(base: Path) -> int:
    """As the user the folders belong to: a job's folder it made hard to remove, removed;
    a folder it linked to, untouched. 0 when so, else which check failed."""
    job = base / "opsroom-job1-abc-x"
    outside = base / "outside"
    (job / "mod" / "pkg").mkdir(parents=True)
    (job / "mod" / "pkg" / "go.mod").write_text("module x\n")
    (job / "locked").mkdir()
    (job / "locked" / "file").write_text("x")
    outside.mkdir()
    (outside / "keep").write_text("x")
    (job / "link").symlink_to(outside)
    # As Go's module cache does, and worse: read-only folders, one that cannot be listed,
    # the job's own folder read-only, the linked folder read-only too.
    for folder, mode in ((job / "mod" / "pkg", 0o555), (job / "mod", 0o555)):
        folder.chmod(mode)
    (job / "locked").chmod(0o000)
    outside.chmod(0o555)
    job.chmod(0o500)
    remove_workdir(job)
    if job.exists() or job.is_symlink():
        return 1
    if not (outside / "keep").exists() or outside.stat().st_mode & 0o777 != 0o555:
        return 2
    return 0


def test_a_folder_the_job_made_read_only_is_removed_all_the_same(tmp_path: Path) -> None:
    # Read-only folders stop their owner, not root: as root, the check runs as nobody.
    assert _as_an_ordinary_user(_messy_folder_removed, tmp_path) == 0


def _as_an_ordinary_user(check: Callable[[Path], int], tmp_path: Path) -> int:
    """`check(folder)` as this user when it is not root; else in a child that is nobody."""
    if os.geteuid() != 0:
        return check(tmp_path)
    base = Path(tempfile.mkdtemp(dir="/tmp"))  # nobody cannot reach pytest's folders
    try:
        base.chmod(0o777)
        pid = os.fork()
        if pid == 0:  # the child: drops to nobody, checks, exits with the verdict
            code = 99
            try:
                os.setgid(65534)
                os.setuid(65534)
                code = check(base)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)
    finally:
        shutil.rmtree(base)
