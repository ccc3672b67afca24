"""A job's process is started off the event loop and reaped from it (runner/local.py).

Starting a job forks opsroom, moves the child into the job's cgroup (which may wait for the
kernel) and execs the script. The child here is held between fork and exec, where a slow
cgroup move would hold it, by a gate on a pipe the test controls: real processes, real
cgroups, only the wait made as long as the test needs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest

from opsroom.config import RunnerSettings, Settings
from opsroom.model.commands import CommandSpec, Invocation, Language
from opsroom.model.jobs import ExitEvent, JobEvent, JobState, OutputLine
from opsroom.runner import cgroup, tree
from opsroom.runner.argv import Launch, build_launch
from opsroom.runner.cgroup import Host, JobCgroup, move_wait
from opsroom.runner.limits import Limits
from opsroom.runner.local import run_local
from opsroom.testing import Bot
from support import async_wait_for

# Only for a runner that blocks the loop while it starts a job: the gate opens by itself so
# the test fails on its assertion instead of hanging. Never reached when the runner is right.
_WATCHDOG = 20.0

MODES = pytest.mark.parametrize("mode", ["cgroup", "fallback"])


class Gate:
    """Holds every job's process between fork and exec until released, as a slow move into
    its cgroup would: the child says its pid on one pipe, then waits for a byte on another."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.said_r, self.said_w = os.pipe()
        self.go_r, self.go_w = os.pipe()
        self.forced = False
        self._watchdog = threading.Timer(_WATCHDOG, self._force)
        real = cgroup.preexec
        said_w, go_r = self.said_w, self.go_r

        def gated(
            group: JobCgroup | None,
            rlimits: list[tuple[int, tuple[int, int]]],
            signals: tuple[int, ...] = (),
        ) -> Callable[[], None]:
            joins = real(group, rlimits, signals)

            def between_fork_and_exec() -> None:
                os.write(said_w, b"%d\n" % os.getpid())
                os.read(go_r, 1)
                if joins is not None:
                    joins()

            return between_fork_and_exec

        monkeypatch.setattr(cgroup, "preexec", gated)
        self._watchdog.start()

    def _force(self) -> None:
        self.forced = True
        os.write(self.go_w, b"x" * 64)

    async def held(self) -> int:
        """The pid of a child now held at the gate, read by the event loop."""
        loop = asyncio.get_running_loop()
        readable: asyncio.Future[None] = loop.create_future()
        loop.add_reader(self.said_r, readable.set_result, None)
        try:
            await readable
        finally:
            loop.remove_reader(self.said_r)
        line = b""
        while not line.endswith(b"\n"):
            line += os.read(self.said_r, 1)
        return int(line)

    def release(self) -> None:
        """Let one held child go on to exec."""
        os.write(self.go_w, b"x")

    def close(self) -> None:
        """Stop the watchdog and close the pipes."""
        self._watchdog.cancel()
        for fd in (self.said_r, self.said_w, self.go_r, self.go_w):
            os.close(fd)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    g = Gate(monkeypatch)
    yield g
    g.close()


def launch(tmp_path: Path, name: str, text: str, mode: str) -> Launch:
    """A bash script in a catalog of its own, launched with or without a cgroup."""
    catalog = tmp_path / "catalog"
    catalog.mkdir(exist_ok=True)
    (catalog / name).write_text(text, encoding="utf-8")
    work = tmp_path / f"work-{name}"
    work.mkdir()
    return build_launch(
        CommandSpec(name="t", path=name, language=Language.SHELL),
        Invocation("t", MappingProxyType({})),
        catalog_root=catalog,
        job_id=7,
        requester="local:alice",
        room="local:term",
        settings=RunnerSettings(cgroups=mode == "cgroup"),
        workdir=work,
        token=tree.new_token(),
    )


def not_exec_yet(pid: int) -> bool:
    """True while pid still runs this Python (forked from it, not yet the script)."""
    return Path(f"/proc/{pid}/exe").resolve() == Path(f"/proc/{os.getpid()}/exe").resolve()


def reaped(pid: int) -> bool:
    """Gone from the process table: ended and its exit status collected (no zombie)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return not Path(f"/proc/{pid}").exists()
    return False


def lines(events: list[JobEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, OutputLine)]


@MODES
async def test_the_loop_runs_on_while_a_job_is_being_started(
    tmp_path: Path, gate: Gate, mode: str
) -> None:
    events: list[JobEvent] = []
    started: list[int] = []
    job = asyncio.create_task(
        run_local(
            launch(tmp_path, "s.sh", "echo hello\nexit 3\n", mode),
            timeout=60,
            kill_grace=2,
            on_event=events.append,
            on_start=started.append,
        )
    )
    pid = await gate.held()
    # The loop read the pipe while the child waits between fork and exec.
    assert not gate.forced, "the event loop stood still while the job was being started"
    assert not_exec_yet(pid)
    assert not job.done()
    assert started == []
    gate.release()
    end = await job
    assert end == ExitEvent(3, JobState.FAILED, "exited with status 3")
    assert lines(events) == ["hello"]
    assert started == [pid]
    assert reaped(pid)


@MODES
async def test_a_job_cancelled_while_it_is_being_started_is_ended(
    tmp_path: Path, gate: Gate, mode: str
) -> None:
    the = launch(tmp_path, "s.sh", "echo started\nsleep 300\n", mode)
    token = the.env[tree.TOKEN_VAR]
    job = asyncio.create_task(
        run_local(the, timeout=600, kill_grace=2, on_event=lambda e: None, token=token)
    )
    pid = await gate.held()
    assert not gate.forced, "the event loop stood still while the job was being started"
    job.cancel()
    gate.release()  # the process starts after the cancel
    with pytest.raises(asyncio.CancelledError):
        await job
    assert reaped(pid)
    assert tree.job_processes(token) == []
    assert not list(Path("/sys/fs/cgroup").glob(f"**/{cgroup.PREFIX}{token}"))


async def test_a_job_being_started_is_not_taken_for_an_orphan_of_one_that_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a cgroup, a job that ends also ends the orphans opsroom adopted from it: a
    # child of opsroom in a session of its own. One held between fork and exec looks like
    # that, but is another job's process being started.
    first_cancel = asyncio.Event()
    first_started: list[int] = []
    first = asyncio.create_task(
        run_local(
            launch(tmp_path, "a.sh", "sleep 300\n", "fallback"),
            timeout=600,
            kill_grace=2,
            cancel=first_cancel,
            on_event=lambda e: None,
            on_start=first_started.append,
        )
    )
    await async_wait_for(lambda: first_started, what="the first job to start")
    gate = Gate(monkeypatch)
    try:
        events: list[JobEvent] = []
        second = asyncio.create_task(
            run_local(
                launch(tmp_path, "b.sh", "echo second ran\n", "fallback"),
                timeout=60,
                kill_grace=2,
                on_event=events.append,
            )
        )
        held = await gate.held()
        assert not gate.forced, "the event loop stood still while the job was being started"
        first_cancel.set()
        assert (await first).state is JobState.CANCELLED
        assert not_exec_yet(held), "the job being started was ended with the first job"
        gate.release()
        assert await second == ExitEvent(0, JobState.SUCCEEDED)
        assert lines(events) == ["second ran"]
    finally:
        gate.close()


async def test_running_jobs_need_no_thread_each(tmp_path: Path) -> None:
    jobs = 16
    cancel = asyncio.Event()
    started: list[int] = []
    before = threading.active_count()
    running = [
        asyncio.create_task(
            run_local(
                launch(tmp_path, f"s{i}.sh", "sleep 300\n", "cgroup"),
                timeout=600,
                kill_grace=2,
                cancel=cancel,
                on_event=lambda e: None,
                on_start=started.append,
            )
        )
        for i in range(jobs)
    ]
    await async_wait_for(lambda: len(started) == jobs, what="every job to start")
    # A few spawner threads at most; a watcher thread per child would add one per job.
    assert threading.active_count() - before < jobs // 2
    cancel.set()
    ends = await asyncio.gather(*running)
    assert {end.state for end in ends} == {JobState.CANCELLED}
    assert all(reaped(pid) for pid in started)


def test_the_slow_cgroup_move_and_its_fix_are_named_where_jobs_still_move() -> None:
    limits = Limits(memory=1 << 30, pids=100)
    on_v2 = Host(
        v2="/sys/fs/cgroup/unified/opsroom",
        why_not="",
        mounts=("/sys/fs/cgroup/memory", "/sys/fs/cgroup/unified"),
    )
    # Jobs the spawner starts are born in their cgroup v2 (Linux 5.7+): nothing waits.
    assert move_wait(limits, on_v2, spawner=True, kernel="6.1.0-18-amd64") is None
    # Jobs opsroom forks itself move: the spawner off, or a kernel without CLONE_INTO_CGROUP.
    for why in (
        move_wait(limits, on_v2, spawner=False, kernel="6.1.0-18-amd64"),
        move_wait(limits, on_v2, spawner=True, kernel="5.4.0-150-generic"),
    ):
        assert why is not None
        assert "mount -o remount,favordynmods /sys/fs/cgroup/unified " in why
    # The kernel's lock is one for every hierarchy: favordynmods on any of them is enough.
    fast = replace(on_v2, favordynmods=True)
    assert move_wait(limits, fast, spawner=False, kernel="6.1.0") is None
    # No cgroup, no move.
    assert move_wait(Limits(cgroups=False), on_v2, spawner=False, kernel="6.1.0") is None
    # Only v1 hierarchies: they are joined through `tasks`, a move of one thread that takes
    # no such lock.
    v1 = Host(
        v2=None,
        why_not="no cgroup v2 file system is mounted",
        memory_v1="/sys/fs/cgroup/memory/opsroom",
        mounts=("/sys/fs/cgroup/memory",),
    )
    assert move_wait(limits, v1, spawner=False, kernel="4.19.0") is None


async def test_start_up_says_once_whether_job_starts_wait_for_the_kernel(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cgroup, "_move_noted", False)  # as in a fresh process
    caplog.set_level(logging.INFO, logger="opsroom.runner")
    settings = Settings()
    expected = move_wait(Limits.from_settings(settings.runner))
    (tmp_path / "catalog").mkdir()
    for n in range(2):
        async with Bot.open(
            catalog_dir=str(tmp_path / "catalog"),
            store_url=f"sqlite:///{tmp_path}/s{n}.db",
            settings=settings,
        ):
            pass
    said = [r.getMessage() for r in caplog.records if "favordynmods" in r.getMessage()]
    assert said == ([] if expected is None else [expected])
