"""The Windows code path of run_local, selected on Linux with kernel32 faked at ctypes only.

The fake (tests/kernel32_fake.py) records each call as Windows would see it and does what
Windows would with real parts: real pipes, a real process that stays suspended until
ResumeThread, a Job Object that is the processes' groups. Everything above it is the
product's: winjob's structures and calls, winrun's threads, run_local's lines and outcome.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import sys
import textwrap
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest

from kernel32_fake import FakeKernel32, split_command_line
from opsroom.model.jobs import ExitEvent, JobEvent, JobState, OutputLine, StatusEvent, Stream
from opsroom.runner import winjob
from opsroom.runner.argv import Launch
from opsroom.runner.limits import NO_LIMITS, Limits
from opsroom.runner.local import run_local
from opsroom.runner.platform import WINDOWS, Platform

# The flags and values as Windows defines them, written out (not taken from winjob).
CREATE_SUSPENDED = 0x4
CREATE_NEW_PROCESS_GROUP = 0x200
CREATE_UNICODE_ENVIRONMENT = 0x400
EXTENDED_STARTUPINFO_PRESENT = 0x80000
STARTF_USESTDHANDLES = 0x100
PROC_THREAD_ATTRIBUTE_HANDLE_LIST = 0x20002
KILL_ON_JOB_CLOSE = 0x2000
DIE_ON_UNHANDLED_EXCEPTION = 0x400
JOB_MEMORY = 0x200
ACTIVE_PROCESS = 0x8
JOB_TIME = 0x4
CTRL_BREAK_EVENT = 1
EXTENDED_LIMIT_INFORMATION = 9
ASSOCIATE_COMPLETION_PORT = 7
JOB_OBJECT_MSG_JOB_MEMORY_LIMIT = 10
WIN64 = ctypes.sizeof(ctypes.c_void_p) == 8

LIFECYCLE = {
    "CreateJobObjectW",
    "SetInformationJobObject",
    "CreateIoCompletionPort",
    "CreateProcessW",
    "AssignProcessToJobObject",
    "ResumeThread",
    "TerminateProcess",
    "GenerateConsoleCtrlEvent",
    "TerminateJobObject",
}


def on_windows(fake: FakeKernel32) -> Platform:
    return replace(WINDOWS, kernel32=lambda: fake)


def python_launch(
    tmp_path: Path, code: str, *args: str, limits: Limits = NO_LIMITS, cwd: Path | None = None
) -> Launch:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code), encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return Launch(
        argv=(sys.executable, str(script), *args),
        env=MappingProxyType({"PATH": os.environ["PATH"], "PYTHONUNBUFFERED": "1"}),
        cwd=str(cwd or work),
        limits=limits,
    )


async def run(
    launch: Launch,
    fake: FakeKernel32,
    *,
    timeout: float = 60,
    kill_grace: float = 5,
    cancel: asyncio.Event | None = None,
    on_line: Callable[[str], None] | None = None,
) -> tuple[ExitEvent, list[JobEvent]]:
    events: list[JobEvent] = []

    def on_event(event: JobEvent) -> None:
        events.append(event)
        if on_line is not None and isinstance(event, OutputLine):
            on_line(event.text)

    end = await run_local(
        launch,
        timeout=timeout,
        kill_grace=kill_grace,
        cancel=cancel,
        on_event=on_event,
        platform=on_windows(fake),
    )
    return end, events


def lines(events: list[JobEvent], stream: Stream = Stream.STDOUT) -> list[str]:
    return [e.text for e in events if isinstance(e, OutputLine) and e.stream is stream]


def lifecycle(fake: FakeKernel32) -> list[str]:
    return [name for name in fake.names() if name in LIFECYCLE]


def gone(pid: int) -> bool:
    """The process has ended (a zombie not yet collected by whoever adopted it counts)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2 :].split()[0] in (b"Z", b"X")


def all_closed(fake: FakeKernel32) -> None:
    assert fake.wait_closed() == {}, "every handle opened is closed"
    assert fake.errors == []


async def test_a_job_starts_suspended_in_its_job_object_and_resumes_only_once_inside(
    tmp_path: Path,
) -> None:
    fake = FakeKernel32()
    launch = python_launch(
        tmp_path,
        """
        import os, sys
        print("hello from the job")
        print("to stderr", file=sys.stderr)
        event = b'{"type": "status", "text": "half way", "level": "info"}\\n'
        os.write(int(os.environ["OPSROOM_EVENTS_FD"]), event)
        sys.exit(3)
        """,
    )
    end, events = await run(launch, fake)

    assert end == ExitEvent(3, JobState.FAILED, "exited with status 3")
    assert lines(events) == ["hello from the job"]
    assert lines(events, Stream.STDERR) == ["to stderr"]
    assert StatusEvent("half way", "info") in events
    assert lifecycle(fake) == [
        "CreateJobObjectW",
        "SetInformationJobObject",
        "CreateIoCompletionPort",
        "SetInformationJobObject",
        "CreateProcessW",
        "AssignProcessToJobObject",
        "ResumeThread",
    ]
    (created,) = fake.called("CreateProcessW")
    assert created["flags"] == (
        CREATE_SUSPENDED
        | CREATE_NEW_PROCESS_GROUP
        | CREATE_UNICODE_ENVIRONMENT
        | EXTENDED_STARTUPINFO_PRESENT
    )
    assert created["inherit"] is True
    assert created["dwFlags"] == STARTF_USESTDHANDLES
    assert created["application"] == sys.executable
    assert created["argv"] == list(launch.argv)
    assert created["cwd"] == launch.cwd
    # Exactly the child's own handles are inherited: NUL, stdout, stderr, the event channel.
    stdin, stdout, stderr = created["std"]
    events_handle = int(created["env"]["OPSROOM_EVENTS_FD"])
    assert created["listed"] == [stdin, stdout, stderr, events_handle]
    (handle_list,) = fake.called("UpdateProcThreadAttribute")
    assert handle_list["attribute"] == PROC_THREAD_ATTRIBUTE_HANDLE_LIST
    assert created["env"]["OPSROOM_JOB_TOKEN"]
    assert created["env"]["PYTHONUNBUFFERED"] == "1"
    assert created["env"]["PYTHONIOENCODING"] == "utf-8"  # what opsroom decodes pipes as
    # Put in the job while still suspended; resumed once inside; its thread handle let go.
    (assigned,) = fake.called("AssignProcessToJobObject")
    assert assigned["resumed"] is False
    assert assigned["job"] == fake.called("SetInformationJobObject")[0]["job"]
    (resumed,) = fake.called("ResumeThread")
    assert resumed["in_job"] is True
    names = fake.names()
    after_resume = names[names.index("ResumeThread") + 1]
    assert after_resume == "CloseHandle"
    assert fake.calls[names.index("ResumeThread") + 1][1]["kind"] == "thread"
    # The child's pipe ends are closed in opsroom as soon as it started.
    closed = {d["handle"] for d in fake.called("CloseHandle")}
    assert {stdin, stdout, stderr, events_handle} <= closed
    # The job and its port are the last handles closed.
    kinds = [d["kind"] for d in fake.called("CloseHandle")]
    assert kinds[-2:] == ["port", "job"]
    all_closed(fake)


async def test_the_job_object_gets_the_runner_limits_with_exact_structure_values(
    tmp_path: Path,
) -> None:
    fake = FakeKernel32()
    limits = Limits(memory=256 * 1024**2, pids=7, cpu_seconds=2.5)
    end, _ = await run(python_launch(tmp_path, "pass", limits=limits), fake)
    assert end.state is JobState.SUCCEEDED

    limited, port = fake.called("SetInformationJobObject")
    assert limited["kind"] == EXTENDED_LIMIT_INFORMATION
    assert limited["LimitFlags"] == (
        KILL_ON_JOB_CLOSE | DIE_ON_UNHANDLED_EXCEPTION | JOB_MEMORY | ACTIVE_PROCESS | JOB_TIME
    )
    assert limited["JobMemoryLimit"] == 268_435_456
    assert limited["ActiveProcessLimit"] == 7
    assert limited["PerJobUserTimeLimit"] == 25_000_000  # 100 ns ticks
    assert limited["ProcessMemoryLimit"] == 0
    assert limited["PerProcessUserTimeLimit"] == 0
    assert port["kind"] == ASSOCIATE_COMPLETION_PORT
    assert port["key"] == winjob.JOB_KEY
    ports = {d["handle"] for d in fake.called("CloseHandle") if d["kind"] == "port"}
    assert ports == {port["port"]}
    if WIN64:
        assert limited["size"] == 144  # sizeof(JOBOBJECT_EXTENDED_LIMIT_INFORMATION) on x64
    all_closed(fake)


async def test_without_limits_the_job_object_still_dies_with_its_last_handle(
    tmp_path: Path,
) -> None:
    fake = FakeKernel32()
    await run(python_launch(tmp_path, "pass"), fake)
    limited = fake.called("SetInformationJobObject")[0]
    assert limited["LimitFlags"] == KILL_ON_JOB_CLOSE | DIE_ON_UNHANDLED_EXCEPTION
    assert (limited["JobMemoryLimit"], limited["ActiveProcessLimit"]) == (0, 0)


def test_structures_have_the_windows_x64_layout() -> None:
    if not WIN64:
        pytest.fail("these sizes are the x64 ones: run on a 64-bit host")
    sizes = {
        winjob.JOBOBJECT_BASIC_LIMIT_INFORMATION: 64,
        winjob.JOBOBJECT_EXTENDED_LIMIT_INFORMATION: 144,
        winjob.JOBOBJECT_BASIC_ACCOUNTING_INFORMATION: 48,
        winjob.JOBOBJECT_ASSOCIATE_COMPLETION_PORT: 16,
        winjob.STARTUPINFOW: 104,
        winjob.STARTUPINFOEXW: 112,
        winjob.PROCESS_INFORMATION: 24,
    }
    assert {s.__name__: ctypes.sizeof(s) for s in sizes} == {
        s.__name__: n for s, n in sizes.items()
    }
    extended = winjob.JOBOBJECT_EXTENDED_LIMIT_INFORMATION
    assert extended.JobMemoryLimit.offset == 120
    assert winjob.JOBOBJECT_BASIC_LIMIT_INFORMATION.ActiveProcessLimit.offset == 40


async def test_cancel_sends_ctrl_break_to_the_job_and_a_job_that_obeys_is_not_terminated(
    tmp_path: Path,
) -> None:
    fake = FakeKernel32()
    cancel = asyncio.Event()
    launch = python_launch(tmp_path, 'import time\nprint("ready")\ntime.sleep(120)')
    end, _ = await run(launch, fake, cancel=cancel, on_line=lambda _: cancel.set())

    assert end.state is JobState.CANCELLED
    (created,) = fake.called("CreateProcessW")
    pid = fake.called("ResumeThread")[0]["pid"]
    assert fake.called("GenerateConsoleCtrlEvent") == [{"event": CTRL_BREAK_EVENT, "group": pid}]
    assert "TerminateJobObject" not in fake.names()
    assert created["listed"]
    all_closed(fake)


async def test_a_job_that_ignores_ctrl_break_is_terminated_after_the_grace(
    tmp_path: Path,
) -> None:
    fake = FakeKernel32()
    cancel = asyncio.Event()
    launch = python_launch(
        tmp_path,
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the fake's Ctrl+Break
        print("ready")
        time.sleep(120)
        """,
    )
    end, _ = await run(launch, fake, cancel=cancel, kill_grace=0.3, on_line=lambda _: cancel.set())

    assert end.state is JobState.CANCELLED
    ending = [n for n in lifecycle(fake) if n in ("GenerateConsoleCtrlEvent", "TerminateJobObject")]
    assert ending == ["GenerateConsoleCtrlEvent", "TerminateJobObject"]
    assert fake.called("TerminateJobObject")[0]["exit_code"] == 1
    all_closed(fake)


async def test_a_timeout_ends_the_job_with_ctrl_break_then_terminate(tmp_path: Path) -> None:
    fake = FakeKernel32()
    work = tmp_path / "work"
    work.mkdir()
    # `trap "" TERM` before anything else: the script ignores Ctrl+Break from its start.
    launch = Launch(
        argv=("/bin/sh", "-c", 'trap "" TERM; echo ready; exec sleep 120'),
        env=MappingProxyType({"PATH": os.environ["PATH"]}),
        cwd=str(work),
    )
    end, events = await run(launch, fake, timeout=2, kill_grace=0.3)

    assert end.state is JobState.TIMED_OUT
    assert end.message == "timed out after 2s"
    assert lines(events) == ["ready"]
    ending = [n for n in lifecycle(fake) if n in ("GenerateConsoleCtrlEvent", "TerminateJobObject")]
    assert ending == ["GenerateConsoleCtrlEvent", "TerminateJobObject"]
    all_closed(fake)


async def test_without_a_console_the_job_is_terminated_at_once(tmp_path: Path) -> None:
    fake = FakeKernel32(console=False)  # a service without a console cannot send Ctrl+Break
    cancel = asyncio.Event()
    launch = python_launch(tmp_path, 'import time\nprint("ready")\ntime.sleep(120)')
    # A grace longer than the test may take: nothing waits for it.
    end, _ = await run(launch, fake, cancel=cancel, kill_grace=600, on_line=lambda _: cancel.set())

    assert end.state is JobState.CANCELLED
    assert [n for n in lifecycle(fake) if n.startswith(("Generate", "Terminate"))] == [
        "GenerateConsoleCtrlEvent",
        "TerminateJobObject",
    ]
    all_closed(fake)


async def test_a_process_the_script_left_running_is_ended_and_named(tmp_path: Path) -> None:
    fake = FakeKernel32()
    launch = python_launch(
        tmp_path,
        """
        import subprocess
        child = subprocess.Popen(["sleep", "120"])
        print(child.pid)
        """,
    )
    end, events = await run(launch, fake)

    assert end.state is JobState.SUCCEEDED
    (left,) = lines(events)
    notes = lines(events, Stream.STDERR)
    assert notes == [f"opsroom: ended 1 leftover process the script left running (pid {left})"]
    assert "GenerateConsoleCtrlEvent" in fake.names()
    assert gone(int(left))
    all_closed(fake)


async def test_a_limit_the_job_reached_is_its_outcome(tmp_path: Path) -> None:
    fake = FakeKernel32()
    limits = Limits(memory=256 * 1024**2)
    launch = python_launch(tmp_path, 'import time\nprint("ready")\ntime.sleep(120)', limits=limits)

    def reached(_: str) -> None:
        fake.post_job_message(JOB_OBJECT_MSG_JOB_MEMORY_LIMIT)  # as Windows posts it

    end, _ = await run(launch, fake, on_line=reached)

    assert end.state is JobState.FAILED
    assert end.message == "memory limit 256 MiB reached"
    assert "GenerateConsoleCtrlEvent" in fake.names()
    all_closed(fake)


async def test_a_program_that_is_not_there_fails_clearly_and_leaks_no_handle(
    tmp_path: Path,
) -> None:
    fake = FakeKernel32()
    work = tmp_path / "work"
    work.mkdir()
    missing = str(tmp_path / "missing.exe")
    launch = Launch(argv=(missing,), env=MappingProxyType({}), cwd=str(work))
    end, events = await run(launch, fake)

    assert end == ExitEvent(
        None, JobState.FAILED, f"could not start {missing}: the file was not found"
    )
    assert events == []
    assert "AssignProcessToJobObject" not in fake.names()
    assert "DeleteProcThreadAttributeList" in fake.names()
    all_closed(fake)


async def test_a_working_folder_that_is_not_there_is_named(tmp_path: Path) -> None:
    fake = FakeKernel32()
    gone = tmp_path / "gone"
    end, _ = await run(python_launch(tmp_path, "pass", cwd=gone), fake)
    assert (
        end.message
        == f"could not start the job: working folder {gone}: the folder name is not valid"
    )
    all_closed(fake)


async def test_a_process_windows_would_not_put_in_the_job_never_runs(tmp_path: Path) -> None:
    fake = FakeKernel32(fail={"AssignProcessToJobObject": 5})
    marker = tmp_path / "ran"
    launch = python_launch(tmp_path, f"open({str(marker)!r}, 'w').close()")
    end, _ = await run(launch, fake)

    assert end == ExitEvent(
        None,
        JobState.FAILED,
        "could not start the job: AssignProcessToJobObject failed: access is denied (error 5)",
    )
    assert "ResumeThread" not in fake.names()
    assert fake.called("TerminateProcess")[0]["exit_code"] == 1
    assert not marker.exists()
    all_closed(fake)


async def test_no_job_object_no_job(tmp_path: Path) -> None:
    fake = FakeKernel32(fail={"CreateJobObjectW": 8})
    end, _ = await run(python_launch(tmp_path, "pass"), fake)
    assert (
        end.message
        == "could not start the job: CreateJobObjectW failed: not enough memory (error 8)"
    )
    assert "CreateProcessW" not in fake.names()
    all_closed(fake)


TRICKY = [
    "plain",
    "two words",
    "",
    'say "hi"',
    "C:\\path with space\\",
    "back\\\\slash\\\\",
    '\\"',
    "$(touch x); `id` | & ^ % ! ünïcode",
    "-looks-like-a-flag",
]


def test_the_command_line_gives_back_exactly_the_argv() -> None:
    line = winjob.command_line(["C:\\Program Files\\x.exe", *TRICKY])
    assert split_command_line(line) == ["C:\\Program Files\\x.exe", *TRICKY]


async def test_values_on_the_command_line_reach_the_script_exactly(tmp_path: Path) -> None:
    fake = FakeKernel32()
    launch = python_launch(tmp_path, "import json, sys\nprint(json.dumps(sys.argv[1:]))", *TRICKY)
    end, events = await run(launch, fake)
    assert end.state is JobState.SUCCEEDED
    assert json.loads(lines(events)[0]) == TRICKY
    all_closed(fake)


def test_config_check_says_a_job_object_holds_each_job() -> None:
    limits = Limits(memory=2 * 1024**3, pids=0, cpu_seconds=30)
    assert winjob.describe(limits) == (
        "job isolation: a Windows Job Object per job — no process outlives its job",
        "job limits: memory 2 GiB (job object), processes unlimited, CPU time 30 s (job object)",
    )
    assert winjob.summary(limits) == {
        "containment": "job object",
        "memory": "job object",
        "pids": "unlimited",
        "cpu": "job object",
    }


def test_the_environment_block_is_sorted_utf16_and_refuses_what_windows_cannot_hold() -> None:
    block = winjob.environment_block({"b": "2", "A": "ü", "Path": "x", "PATH": "y"})
    assert block.decode("utf-16-le") == "A=ü\0b=2\0PATH=y\0\0"
    for bad in ({"A=B": "1"}, {"": "1"}, {"A": "nul\0"}):
        with pytest.raises(ValueError, match="cannot be passed on Windows"):
            winjob.environment_block(bad)
