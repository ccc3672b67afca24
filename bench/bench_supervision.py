"""What supervising a job costs, and how soon a job ends when it must.

These figures were wall-clock assertions in the test suite; the tests now assert what
happens (the state, who is gone, what was reported) and the timings live here:

- masking: one 100-character output line against 10 secrets (every line a job prints is
  masked);
- finding a job's processes by its token on a host running 300 other processes;
- cancel → ended, for a script that sleeps (the runner, in process);
- timeout → ended, for a tree that ignores TERM (grace 1 s, then KILL): seconds past the
  timeout;
- a normal exit that leaves a TERM-ignoring daemon behind: exit → ended and reported;
- the tree of a job whose opsroom was killed -9, ended by the next opsroom
  (`end_orphaned_job`, grace 1 s);
- `opsroom run "!cancel N"` from a second process → the first `opsroom run` returns;
- `!cancel N` → its reply, for a job this process runs and for one a second `opsroom run`
  runs (SQLite: the two hear of the request and of the end by its doorbell, store/bell.py);
- SIGTERM to `opsroom serve` while a job runs (shutdown grace 1 s) → the server exits;
- the event loop's longest stall while a job that leaves 20,000 files in its folder runs
  and the folder is removed (off the loop: a walk of it takes ~0.3 s).

    python bench/bench_supervision.py [--quick]
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

from bench_serve import start_serve
from bench_startup import console_script
from figures import Figure, median
from opsroom.config import RunnerSettings
from opsroom.model.commands import CommandSpec, Invocation, Language
from opsroom.model.jobs import ExitEvent, JobEvent, OutputLine
from opsroom.policy.masking import Masker
from opsroom.runner.argv import build_launch
from opsroom.runner.local import run_local
from opsroom.runner.tree import TOKEN_VAR, end_orphaned_job, job_processes, new_token

GRACE = 1.0
BUDGET_MASK_US = 20.0
BUDGET_SCAN_MS = 50.0
BUDGET_CANCEL_S = 3.0
BUDGET_KILL_S = GRACE + 2  # the grace, then a KILL and the kernel's clean-up
BUDGET_SHUTDOWN_S = 1 + 5 + 5  # shutdown grace + the runner's kill grace + margin
BUDGET_STALL_S = 0.02  # the event loop's lag budget (p99 < 20 ms, bench_jobs.py)
LITTER = """#!/usr/bin/env bash
# @describe Leave 20,000 files in 100 folders.
for d in $(seq 100); do mkdir "d$d"; (cd "d$d" && touch $(seq -f f%g 200)); done
"""

NAP = """\
#!/usr/bin/env bash
# @describe Sleep for a while.
# @option --seconds=60 <FLOAT> How long to sleep
echo napping
sleep "${OPSROOM_ARG_SECONDS}"
"""

SLEEPER = """
echo napping
sleep 60
"""

# Ignores TERM, holds stdout and never ends by itself: only a KILL after the grace ends it.
STUBBORN = """
trap '' TERM
bash -c 'trap "" TERM; exec sleep 300' &
echo ready
while true; do sleep 0.1; done
"""

DAEMON = f"""
{sys.executable} -c '
import os, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        print("daemon", flush=True)
        while True:
            time.sleep(1)
    os._exit(0)
os.wait()
'
echo finished
"""


def _wait(cond: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.005)


# -- in process ------------------------------------------------------------------------


def mask_us() -> float:
    """Microseconds to mask one 100-character line against 10 secrets (fastest of 5)."""
    masker = Masker({f"S{i}": f"Secret-Value-{i:02d}-xyz" for i in range(10)})
    line = "INFO 2024-05-01 12:00:00 connected to filer01.example.org as admin; 3 volumes ok"
    line = line.ljust(100, ".")
    n = 20_000
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            masker.mask(line)
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


def scan_ms() -> float:
    """Milliseconds for `job_processes(token)` with 300 unrelated processes running."""
    env = {"PATH": "/usr/bin:/bin"}
    others = [subprocess.Popen(["sleep", "60"], env=env) for _ in range(300)]
    token = new_token()
    mine = subprocess.Popen(["sleep", "60"], env={**env, TOKEN_VAR: token})
    try:
        if job_processes(token) != [mine.pid]:
            raise RuntimeError("the scan did not find exactly the job's process")
        start = time.perf_counter()
        for _ in range(10):
            job_processes(token)
        return (time.perf_counter() - start) / 10 * 1e3
    finally:
        for p in [*others, mine]:
            p.kill()
            p.wait()


class _Job:
    """A shell script in a catalog of its own, run through build_launch + run_local."""

    def __init__(self, folder: Path, text: str) -> None:
        (folder / "catalog").mkdir()
        (folder / "job").mkdir()
        (folder / "catalog" / "job.sh").write_text(textwrap.dedent(text), encoding="utf-8")
        self.folder = folder
        self.token = new_token()
        self.events: list[JobEvent] = []

    async def run(self, *, timeout: float = 60, cancel: asyncio.Event | None = None) -> ExitEvent:
        launch = build_launch(
            CommandSpec(name="t", path="job.sh", language=Language.SHELL),
            Invocation("t", MappingProxyType({})),
            catalog_root=self.folder / "catalog",
            job_id=1,
            requester="local:bench",
            room="local:bench",
            settings=RunnerSettings(),
            workdir=self.folder / "job",
            token=self.token,
        )
        return await run_local(
            launch,
            timeout=timeout,
            kill_grace=GRACE,
            cancel=cancel,
            on_event=self.events.append,
            token=self.token,
        )

    def printed(self, text: str) -> bool:
        return any(isinstance(e, OutputLine) and e.text == text for e in self.events)


async def _until_printed(job: _Job, text: str, task: asyncio.Future[ExitEvent]) -> None:
    while not job.printed(text):
        if task.done():
            raise RuntimeError(f"the job ended before printing {text!r}: {task.result()}")
        await asyncio.sleep(0.005)


async def cancel_s(folder: Path) -> float:
    """Seconds from pressing cancel to the end of a job that sleeps."""
    job = _Job(folder, SLEEPER)
    cancel = asyncio.Event()
    task = asyncio.ensure_future(job.run(cancel=cancel))
    await _until_printed(job, "napping", task)
    start = time.perf_counter()
    cancel.set()
    end = await task
    took = time.perf_counter() - start
    if end.state.value != "cancelled":
        raise RuntimeError(f"not cancelled: {end}")
    return took


async def timeout_overshoot_s(folder: Path) -> float:
    """Seconds past a 1 s timeout until a TERM-ignoring tree has ended."""
    job = _Job(folder, STUBBORN)
    start = time.perf_counter()
    end = await job.run(timeout=1.0)
    took = time.perf_counter() - start - 1.0
    if end.state.value != "timed_out":
        raise RuntimeError(f"not timed out: {end}")
    return took


async def leftover_s(folder: Path) -> float:
    """Seconds from the script's last line to the end of a job whose daemon ignores TERM."""
    job = _Job(folder, DAEMON)
    task = asyncio.ensure_future(job.run())
    await _until_printed(job, "finished", task)
    start = time.perf_counter()
    end = await task
    took = time.perf_counter() - start
    if end.state.value != "succeeded":
        raise RuntimeError(f"not succeeded: {end}")
    return took


async def orphan_s(folder: Path) -> float:
    """Seconds for `end_orphaned_job` to end the TERM-ignoring tree of a killed opsroom."""
    script = folder / "tree.sh"
    script.write_text(textwrap.dedent(STUBBORN), encoding="utf-8")
    token = new_token()
    env = {"PATH": "/usr/bin:/bin", TOKEN_VAR: token}
    tree = subprocess.Popen(
        ["bash", str(script)], env=env, stdout=subprocess.PIPE, start_new_session=True
    )
    assert tree.stdout is not None
    if tree.stdout.readline() != b"ready\n":
        raise RuntimeError("the tree did not start")
    start = time.perf_counter()
    ended = await end_orphaned_job(token, tree.pid, grace=GRACE)
    took = time.perf_counter() - start
    tree.wait()
    tree.stdout.close()
    if tree.pid not in ended or job_processes(token):
        raise RuntimeError("the orphaned tree was not ended")
    return took


# -- through the console script ----------------------------------------------------------


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}


def _catalog(folder: Path) -> Path:
    catalog = folder / "catalog"
    (catalog / "bench").mkdir(parents=True)
    (catalog / "bench" / "nap.sh").write_text(NAP, encoding="utf-8")
    return catalog


def _running_job(db: Path) -> int:
    found: list[int] = []

    def running() -> bool:
        try:
            with sqlite3.connect(db) as conn:
                row = conn.execute("SELECT id FROM jobs WHERE state = 'running'").fetchone()
        except sqlite3.OperationalError:
            return False  # the tables are still being made
        if row is not None:
            found.append(int(row[0]))
        return bool(found)

    _wait(running, 60, "a running job")
    return found[0]


def cli_cancel_s(folder: Path) -> float:
    """Seconds from starting `opsroom run "!cancel N"` to the end of the first `opsroom run`."""
    catalog = _catalog(folder)
    run = [*console_script(), "run", "--catalog", str(catalog)]
    first = subprocess.Popen(
        [*run, "!bench nap"], cwd=folder, env=_env(), stdout=subprocess.DEVNULL
    )
    try:
        job = _running_job(folder / "opsroom.db")
        start = time.perf_counter()
        subprocess.run(
            [*run, f"!cancel {job}"], cwd=folder, env=_env(), check=True, capture_output=True
        )
        first.wait(timeout=60)
        return time.perf_counter() - start
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


async def _chat_cancel_s(folder: Path, catalog: Path, job: int) -> float:
    """Seconds from `!cancel job` (this process's bot) to its reply."""
    from opsroom.testing import Bot

    url = f"sqlite:///{folder / 'opsroom.db'}"
    async with Bot.open(catalog_dir=str(catalog), store_url=url) as bot:
        start = time.perf_counter()
        said = await bot.say(f"!cancel {job}")
        took = time.perf_counter() - start
    if not said.text.endswith(": cancelled"):
        raise RuntimeError(f"not answered cancelled: {said.text}")
    return took


async def _own_cancel_s(folder: Path, catalog: Path) -> float:
    from opsroom.testing import Bot

    url = f"sqlite:///{folder / 'opsroom.db'}"
    async with Bot.open(catalog_dir=str(catalog), store_url=url) as bot:
        running = asyncio.ensure_future(bot.say("!bench nap"))

        async def started() -> int:
            while True:
                if running.done():
                    raise RuntimeError(f"the job ended first: {running.result().text}")
                jobs = await bot.app.store.list_jobs(limit=1)
                if jobs and jobs[0].pid:
                    return jobs[0].id
                await asyncio.sleep(0.005)

        job = await started()
        start = time.perf_counter()
        said = await bot.say(f"!cancel {job}")
        took = time.perf_counter() - start
        await running
    if not said.text.endswith(": cancelled"):
        raise RuntimeError(f"not answered cancelled: {said.text}")
    return took


async def _litter_stall_s(folder: Path) -> float:
    from opsroom.testing import Bot

    catalog = folder / "catalog"
    (catalog / "bench").mkdir(parents=True)
    (catalog / "bench" / "litter.sh").write_text(LITTER, encoding="utf-8")
    loop = asyncio.get_running_loop()
    longest = 0.0
    url = f"sqlite:///{folder / 'opsroom.db'}"
    async with Bot.open(catalog_dir=str(catalog), store_url=url) as bot:
        job = asyncio.ensure_future(bot.say("!bench litter"))
        last = loop.time()
        while not job.done():
            await asyncio.sleep(0.001)
            now = loop.time()
            longest, last = max(longest, now - last - 0.001), now
        said = await job
    if not said.succeeded:
        raise RuntimeError(f"the job failed: {said.text}")
    return longest


def litter_stall_s(folder: Path) -> float:
    """The event loop's longest stall while a job that leaves 20,000 files in its folder
    runs and its folder is removed."""
    return asyncio.run(_litter_stall_s(folder))


def own_chat_cancel_s(folder: Path) -> float:
    """Seconds from `!cancel N` to its reply, for a sleeping job this same process runs."""
    return asyncio.run(_own_cancel_s(folder, _catalog(folder)))


def other_chat_cancel_s(folder: Path) -> float:
    """Seconds from `!cancel N` to its reply, for a sleeping job a second process runs."""
    catalog = _catalog(folder)
    run = [*console_script(), "run", "--catalog", str(catalog)]
    first = subprocess.Popen(
        [*run, "!bench nap"], cwd=folder, env=_env(), stdout=subprocess.DEVNULL
    )
    try:
        job = _running_job(folder / "opsroom.db")
        return asyncio.run(_chat_cancel_s(folder, catalog, job))
    finally:
        try:
            first.wait(timeout=60)  # it ends with its cancelled job
        except subprocess.TimeoutExpired:
            first.kill()
            first.wait()


def shutdown_s(folder: Path) -> float:
    """Seconds from SIGTERM to the exit of `opsroom serve` while a job runs."""
    catalog = _catalog(folder)
    env = {**_env(), "OPSROOM_WEB_SHUTDOWN_GRACE": "1"}
    serve, _ = start_serve(str(folder), env, "--catalog", str(catalog))
    try:
        subprocess.run(
            [*console_script(), "run", "--no-wait", "--catalog", str(catalog), "!bench nap"],
            cwd=folder,
            env=_env(),
            check=True,
            capture_output=True,
        )
        _running_job(folder / "opsroom.db")
        start = time.perf_counter()
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
        return time.perf_counter() - start
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        if serve.stdout is not None:
            serve.stdout.close()


def _samples(measure: Callable[[Path], float], rounds: int) -> list[float]:
    found = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="opsroom-bench-supervision-") as tmp:
            found.append(measure(Path(tmp)))
    return found


def run(quick: bool = False) -> list[Figure]:
    """The figures: the two per-call costs, then median seconds over a few runs each."""
    rounds = 1 if quick else 3
    figures = [
        Figure("mask one 100-char line, 10 secrets", mask_us(), "µs", BUDGET_MASK_US),
        Figure("find a job's processes among 300 others", scan_ms(), "ms", BUDGET_SCAN_MS),
    ]
    # (name, measure in seconds, budget in seconds, shown in ms?)
    timed: list[tuple[str, Callable[[Path], float], float, bool]] = [
        ("cancel → ended (runner)", lambda f: asyncio.run(cancel_s(f)), BUDGET_CANCEL_S, True),
        (
            "timeout → TERM-ignoring tree ended, past the timeout",
            lambda f: asyncio.run(timeout_overshoot_s(f)),
            BUDGET_KILL_S,
            False,
        ),
        (
            "exit → TERM-ignoring daemon ended",
            lambda f: asyncio.run(leftover_s(f)),
            BUDGET_KILL_S,
            False,
        ),
        (
            "orphaned tree ended by the next opsroom",
            lambda f: asyncio.run(orphan_s(f)),
            BUDGET_KILL_S,
            False,
        ),
        (
            "`opsroom run !cancel` → the job's `opsroom run` returns",
            cli_cancel_s,
            BUDGET_CANCEL_S,
            False,
        ),
        ("`!cancel` → its reply, a job of this process", own_chat_cancel_s, BUDGET_CANCEL_S, True),
        (
            "`!cancel` → its reply, a job of another `opsroom run` (SQLite)",
            other_chat_cancel_s,
            BUDGET_CANCEL_S,
            True,
        ),
        ("SIGTERM → `opsroom serve` exits, a job running", shutdown_s, BUDGET_SHUTDOWN_S, False),
        (
            "longest loop stall, a job leaving 20,000 files in its folder",
            litter_stall_s,
            BUDGET_STALL_S,
            True,
        ),
    ]
    for name, measure, budget, in_ms in timed:
        samples = _samples(measure, rounds)
        scale, unit = (1e3, "ms") if in_ms else (1.0, "s")
        note = f"min {min(samples) * scale:.2f} / max {max(samples) * scale:.2f} {unit}"
        note += f" over {len(samples)}"
        figures.append(
            Figure(f"{name}, median", median(samples) * scale, unit, budget * scale, note)
        )
    return figures


if __name__ == "__main__":
    for figure in run(quick="--quick" in sys.argv):
        print(f"{figure.name}: {figure.shown} [{figure.verdict}] {figure.note}")
