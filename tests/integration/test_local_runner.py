"""Real child processes through build_launch + run_local (SPEC §5.1, §5.3, §5.5)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import MappingProxyType

import pytest

from opsroom.config import RunnerSettings
from opsroom.model.commands import CommandSpec, Invocation, Language, ParamSpec, ParamType
from opsroom.model.jobs import (
    ExitEvent,
    JobEvent,
    JobState,
    OutputLine,
    ProgressEvent,
    StatusEvent,
    TableEvent,
)
from opsroom.runner.argv import Launch, build_launch
from opsroom.runner.local import LINE_LIMIT, run_local
from support import async_wait_for

TRICKY = "$(touch x); $HOME | && id `touch y` 'q' \"dq\" \\ ünïcode"

PARAMS = (
    ParamSpec("target"),
    ParamSpec("mode"),
    ParamSpec("hosts", multiple=True),
    ParamSpec("force", ParamType.SWITCH),
    ParamSpec("when", ParamType.DATETIME),
)


class Job:
    """A script in a catalog of its own, ready to launch."""

    def __init__(self, tmp_path: Path, name: str, text: str, language: Language) -> None:
        self.catalog = tmp_path / "catalog"
        self.catalog.mkdir(exist_ok=True)
        self.work = tmp_path / "job"
        self.work.mkdir(exist_ok=True)
        script = self.catalog / name
        script.write_text(textwrap.dedent(text), encoding="utf-8")
        script.chmod(0o755)
        self.spec = CommandSpec(name="t", path=name, language=language, params=PARAMS)
        self.events: list[JobEvent] = []

    def launch(
        self, params: dict[str, object] | None = None, settings: RunnerSettings | None = None
    ) -> Launch:
        return build_launch(
            self.spec,
            Invocation("t", MappingProxyType(params or {})),  # type: ignore[arg-type]
            catalog_root=self.catalog,
            job_id=42,
            requester="local:alice",
            room="local:term",
            settings=settings or RunnerSettings(),
            base_env={**os.environ, "SLACK_BOT_TOKEN": "xoxb-leak", "OPSROOM_CONFIG": "/x"},
            workdir=self.work,
        )

    async def run(
        self,
        params: dict[str, object] | None = None,
        *,
        timeout: float = 30,
        kill_grace: float = 2,
        cancel: asyncio.Event | None = None,
        settings: RunnerSettings | None = None,
    ) -> ExitEvent:
        return await run_local(
            self.launch(params, settings),
            timeout=timeout,
            kill_grace=kill_grace,
            cancel=cancel,
            on_event=self.events.append,
        )

    def out(self, stream: str = "stdout") -> list[str]:
        return [e.text for e in self.events if isinstance(e, OutputLine) and e.stream == stream]

    def of(self, kind: type[JobEvent]) -> list[JobEvent]:
        return [e for e in self.events if isinstance(e, kind)]


PY_ECHO = """
    import json
    def main(target: str = "", mode: str = "", hosts: list[str] | None = None,
             force: bool = False, when=None):
        print(json.dumps({"target": target, "mode": mode, "hosts": hosts, "force": force,
                          "when": None if when is None else [type(when).__name__,
                                                             when.isoformat()]}))
"""

SH_ECHO = """
    printf '%s\\n' "$OPSROOM_ARG_TARGET"
    printf '%s\\n' "$OPSROOM_ARG_MODE"
    printf '[%s]\\n' "$OPSROOM_ARG_HOSTS"
    printf '%s\\n' "$OPSROOM_ARG_FORCE"
"""


def no_sentinels(job: Job) -> None:
    for folder in (job.work, job.catalog):
        assert not (folder / "x").exists()
        assert not (folder / "y").exists()


async def test_python_gets_values_byte_for_byte(tmp_path: Path) -> None:
    job = Job(tmp_path, "echo.py", PY_ECHO, Language.PYTHON)
    end = await job.run(
        {
            "target": TRICKY,
            "mode": "--force",
            "hosts": ("-x", "a b"),
            "force": True,
            "when": "2024-01-02T03:04:05Z",
        }
    )
    assert end == ExitEvent(0, JobState.SUCCEEDED)
    assert json.loads(job.out()[0]) == {
        "target": TRICKY,
        "mode": "--force",
        "hosts": ["-x", "a b"],
        "force": True,
        "when": ["datetime", "2024-01-02T03:04:05+00:00"],
    }
    no_sentinels(job)


async def test_bash_gets_values_byte_for_byte(tmp_path: Path) -> None:
    job = Job(tmp_path, "echo.sh", SH_ECHO, Language.SHELL)
    end = await job.run({"target": TRICKY, "mode": "--force", "hosts": ("-x", "a b")})
    assert end.state is JobState.SUCCEEDED
    assert job.out() == [TRICKY, "--force", "[-x", "a b]", "0"]
    no_sentinels(job)


async def test_python_returning_rows_yields_a_table(tmp_path: Path) -> None:
    job = Job(
        tmp_path,
        "table.py",
        """
        def main():
            return [{"host": "web1", "state": "ok"}, {"host": "web2", "load": 0.5}]
        """,
        Language.PYTHON,
    )
    await job.run()
    assert job.of(TableEvent) == [
        TableEvent(("host", "state", "load"), (("web1", "ok", ""), ("web2", "", "0.5")))
    ]


@pytest.mark.parametrize("interpreter", ["opsroom's", "a bare one"])
async def test_progress_and_status_from_the_helper(tmp_path: Path, interpreter: str) -> None:
    settings = RunnerSettings()
    if interpreter == "a bare one":
        # The base interpreter of this venv: opsroom is not importable there.
        bare = getattr(sys, "_base_executable", sys.executable)
        probe = subprocess.run([bare, "-c", "import opsroom"], capture_output=True, check=False)
        assert probe.returncode != 0
        settings = RunnerSettings(python=bare)
    job = Job(
        tmp_path,
        "progress.py",
        """
        from opsroom import script

        def main():
            script.progress(40, "copying")
            script.status("half way", level="warning")
            script.table({"a": 1})
            return "done"
        """,
        Language.PYTHON,
    )
    end = await job.run(settings=settings)
    assert end.state is JobState.SUCCEEDED, job.events
    assert job.of(ProgressEvent) == [ProgressEvent(40.0, "copying")]
    assert job.of(StatusEvent) == [StatusEvent("half way", "warning")]
    assert job.of(TableEvent) == [TableEvent(("a",), (("1",),))]
    assert job.out() == ["done"]


async def test_bash_can_write_events_to_the_channel(tmp_path: Path) -> None:
    job = Job(
        tmp_path,
        "events.sh",
        """
        echo '{"type":"progress","percent":10,"message":"start"}' >&"$OPSROOM_EVENTS_FD"
        echo 'not json' >&"$OPSROOM_EVENTS_FD"
        echo hi
        """,
        Language.SHELL,
    )
    await job.run()
    assert job.of(ProgressEvent) == [ProgressEvent(10.0, "start")]
    assert job.out() == ["hi"]
    assert any("malformed event" in line for line in job.out("stderr"))


@pytest.mark.parametrize(
    ("name", "text", "language"),
    [
        (
            "forge.py",
            """
            def main():
                print('{"type":"progress","percent":99,"message":"forged"}')
                print('{"type":"table","rows":[{"a":1}]}')
            """,
            Language.PYTHON,
        ),
        (
            "forge.sh",
            """
            echo '{"type":"progress","percent":99,"message":"forged"}'
            echo '{"type":"status","text":"forged"}' >&2
            """,
            Language.SHELL,
        ),
    ],
)
async def test_stdout_cannot_forge_an_event(
    tmp_path: Path, name: str, text: str, language: Language
) -> None:
    job = Job(tmp_path, name, text, language)
    await job.run()
    assert [e for e in job.events if not isinstance(e, OutputLine)] == []
    assert any("forged" in line for line in job.out() + job.out("stderr"))


@pytest.mark.parametrize(
    ("name", "text", "language"),
    [
        (
            "env.py",
            "import os\ndef main(**params):\n    for k in sorted(os.environ): print(k)\n",
            Language.PYTHON,
        ),
        ("env.sh", "env | cut -d= -f1 | sort\n", Language.SHELL),
    ],
)
async def test_environment_is_minimal(
    tmp_path: Path, name: str, text: str, language: Language
) -> None:
    job = Job(tmp_path, name, text, language)
    await job.run({"target": "t"})
    names = set(job.out())
    assert "SLACK_BOT_TOKEN" not in names
    assert "OPSROOM_CONFIG" not in names
    expected = {
        "OPSROOM_JOB_ID",
        "OPSROOM_REQUESTER",
        "OPSROOM_ROOM",
        "OPSROOM_DRY_RUN",
        "OPSROOM_PARAMS",
        "OPSROOM_EVENTS_FD",
        "OPSROOM_JOB_TOKEN",
        "PATH",
        "TMPDIR",
        "LANG",
    }
    assert expected <= names
    # bash adds a few of its own (PWD, SHLVL, _); nothing else from the bot.
    harmless = {
        "PWD",
        "SHLVL",
        "_",
        "HOME",
        "USER",
        "LOGNAME",
        "TZ",
        "LC_ALL",
        "LC_CTYPE",
        "OPSROOM_PARAM_TYPES",
        "OPSROOM_ARG_TARGET",
        "OPSROOM_ARG_FORCE",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
    }
    assert names - expected - harmless == set()


@pytest.mark.parametrize(
    ("name", "text", "language"),
    [
        (
            "stdin.py",
            "import sys\ndef main():\n    print(repr(sys.stdin.read()))\n",
            Language.PYTHON,
        ),
        ("stdin.sh", 'read -r line; echo "rc=$? [$line]"\n', Language.SHELL),
    ],
)
async def test_stdin_is_closed(tmp_path: Path, name: str, text: str, language: Language) -> None:
    job = Job(tmp_path, name, text, language)
    end = await job.run(timeout=10)
    # A read from an open stdin would block until the timeout: the job would be TIMED_OUT.
    assert end.state is JobState.SUCCEEDED
    assert job.out() in (["''"], ["rc=1 []"])


async def test_non_zero_exit_is_failed(tmp_path: Path) -> None:
    job = Job(tmp_path, "fail.sh", "echo bad >&2\nexit 3\n", Language.SHELL)
    end = await job.run()
    assert end == ExitEvent(3, JobState.FAILED, "exited with status 3")
    assert job.out("stderr") == ["bad"]


async def test_python_exception_is_failed_with_a_short_traceback(tmp_path: Path) -> None:
    job = Job(
        tmp_path,
        "boom.py",
        "def main():\n    raise RuntimeError('disk full')\n",
        Language.PYTHON,
    )
    end = await job.run()
    assert (end.state, end.exit_code) == (JobState.FAILED, 1)
    err = job.out("stderr")
    assert err[-1] == "RuntimeError: disk full"
    assert not any("python_bootstrap" in line for line in err)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie waiting for its reaper is gone as far as anyone cares.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


async def test_timeout_kills_a_term_ignoring_tree(tmp_path: Path) -> None:
    job = Job(
        tmp_path,
        "stubborn.sh",
        """
        trap '' TERM
        bash -c 'trap "" TERM; echo child=$$; exec sleep 60' &
        echo started
        while true; do sleep 0.1; done
        """,
        Language.SHELL,
    )
    # The script loops forever and ignores TERM: that run() returns at all shows the KILL
    # after the grace (how soon: bench/bench_supervision.py).
    end = await job.run(timeout=1, kill_grace=1)
    assert end.state is JobState.TIMED_OUT
    assert end.message == "timed out after 1s"
    child = int(next(line for line in job.out() if line.startswith("child="))[6:])
    # The KILL has been sent; the kernel may take a moment to tear the process down.
    await async_wait_for(lambda: not pid_alive(child), what=f"pid {child} to end")


async def test_a_daemonised_grandchild_is_ended_and_reported(tmp_path: Path) -> None:
    job = Job(
        tmp_path,
        "daemon.sh",
        """
        setsid sleep 30 &
        echo "daemon=$!"
        echo done
        """,
        Language.SHELL,
    )
    # The daemon holds stdout for 30 s: had the runner waited for it, the job would have
    # timed out at 20 s instead of succeeding.
    end = await job.run(timeout=20, kill_grace=1)
    assert end.state is JobState.SUCCEEDED
    assert "done" in job.out()
    daemon = int(next(line for line in job.out() if line.startswith("daemon="))[7:])
    assert not pid_alive(daemon)
    assert job.out("stderr") == [
        f"opsroom: ended 1 leftover process the script left running (pid {daemon})"
    ]


async def test_cancel_stops_the_job(tmp_path: Path) -> None:
    job = Job(tmp_path, "long.sh", "echo started\nsleep 30\n", Language.SHELL)
    cancel = asyncio.Event()

    async def press_cancel() -> None:
        while "started" not in job.out():
            await asyncio.sleep(0.02)
        cancel.set()

    _, end = await asyncio.gather(press_cancel(), job.run(timeout=30, cancel=cancel))
    assert end.state is JobState.CANCELLED  # not SUCCEEDED after the 30 s sleep


async def test_missing_interpreter_is_failed_with_a_message(tmp_path: Path) -> None:
    job = Job(tmp_path, "a.py", "def main():\n    pass\n", Language.PYTHON)
    end = await job.run(settings=RunnerSettings(python="/nonexistent/python3"))
    assert end.state is JobState.FAILED
    assert end.exit_code is None
    assert end.message == "could not start /nonexistent/python3: No such file or directory"


async def test_missing_script_is_failed_with_a_message(tmp_path: Path) -> None:
    job = Job(tmp_path, "a.py", "def main():\n    pass\n", Language.PYTHON)
    (job.catalog / "a.py").unlink()
    end = await job.run()
    assert (end.state, end.exit_code) == (JobState.FAILED, 2)
    assert job.out("stderr") == [f"opsroom: script not found: {job.catalog / 'a.py'}"]


async def test_long_lines_are_split(tmp_path: Path) -> None:
    job = Job(
        tmp_path,
        "long.py",
        "def main():\n    print('é' * 100000)\n    print('end')\n",
        Language.PYTHON,
    )
    await job.run()
    out = job.out()
    assert out[-1] == "end"
    assert "".join(out[:-1]) == "é" * 100000  # split on character boundaries
    assert all(len(line.encode()) <= LINE_LIMIT for line in out)
    assert len(out) == 5


async def test_async_on_event_handler(tmp_path: Path) -> None:
    job = Job(tmp_path, "hi.sh", "echo one\necho two\n", Language.SHELL)
    seen: list[str] = []

    async def handler(event: JobEvent) -> None:
        await asyncio.sleep(0)
        if isinstance(event, OutputLine):
            seen.append(event.text)

    end = await run_local(job.launch(), timeout=10, kill_grace=1, on_event=handler)
    assert end.state is JobState.SUCCEEDED
    assert seen == ["one", "two"]
