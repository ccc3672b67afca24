"""The runner alone (build_launch + run_local, no store, no chat): what one job costs.

- `true` (bash), with a cgroup per job and in the fallback: start, wait, know that nothing is
  left, clean up;
- a script that leaves a child obeying TERM (`sleep 300 &`): its exit → the child ended and
  reported (the end used to be found by polling every 50 ms);
- a Python `main()` printing `hi`: a fresh interpreter, and forked from the warm pool
  (`[runner] python_pool`);
- 200 Python jobs at once from the pool;
- `true` through the spawner and a Python `main()` from the warm pool, one every 0.2 s (a
  person typing commands): what starting a job alone costs, where the kernel's lock for
  cgroup moves has gone idle between jobs;
- `true` with a cgroup, one at a time and 64 at once: how late a 1 ms ticker on the event
  loop wakes meanwhile (p50, p99, max) — a job's start must not stop the loop every room
  shares.

Medians of N runs (default 50), in milliseconds; one JSON object per figure.

    python bench/bench_runner.py [--n 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from figures import Figure, median
from opsroom.config import RunnerSettings
from opsroom.model.commands import CommandSpec, Invocation, Language
from opsroom.model.jobs import JobEvent, JobState
from opsroom.runner.argv import Launch, build_launch
from opsroom.runner.local import run_local
from opsroom.runner.tree import new_token

T = TypeVar("T")
SCRIPTS = {
    "true.sh": "true\n",
    "leaves.sh": "sleep 300 >/dev/null 2>&1 &\necho started\n",
    "hi.py": 'def main():\n    print("hi")\n',
}


def _launch(root: Path, name: str, settings: RunnerSettings) -> Launch:
    language = Language.PYTHON if name.endswith(".py") else Language.SHELL
    work = Path(tempfile.mkdtemp(dir=root))
    return build_launch(
        CommandSpec(name="b", path=name, language=language),
        Invocation("b", MappingProxyType({})),
        catalog_root=root / "catalog",
        job_id=1,
        requester="local:bench",
        room="local:bench",
        settings=settings,
        workdir=work,
        token=new_token(),
    )


async def _one(launch: Launch, pool: object) -> float:
    events: list[JobEvent] = []
    started = time.perf_counter()
    # Only given when there is one: the same file measures a tree from before the pool.
    extra = {} if pool is None else {"pool": pool}
    end = await run_local(
        launch,
        timeout=60,
        kill_grace=5,
        on_event=events.append,
        **extra,  # type: ignore[arg-type]
    )
    took = time.perf_counter() - started
    if end.state is not JobState.SUCCEEDED:
        raise RuntimeError(f"{launch.argv}: {end}")
    return took * 1e3


async def _ticking(work: Awaitable[T]) -> tuple[T, list[float]]:
    """Await `work` while a 1 ms ticker runs on the loop; how late it woke (ms, sorted)."""
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(max(0.0, time.perf_counter() - before - 0.001) * 1e3)

    ticking = asyncio.create_task(ticker())
    try:
        result = await work
    finally:
        done.set()
        await ticking
    return result, sorted(lags)


def _lag_figure(name: str, lags: list[float], extra: str = "") -> Figure:
    p99 = lags[min(len(lags) - 1, int(0.99 * len(lags)))]
    note = f"p50 {median(lags):.2f} ms, p99 {p99:.1f} ms, max {lags[-1]:.1f} ms{extra}"
    return Figure(f"{name}: event-loop lag p99", p99, "ms", note=note)


async def _in_turn(launches: list[Launch]) -> list[float]:
    return [await _one(launch, None) for launch in launches]


async def _at_once(launches: list[Launch]) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(_one(launch, None) for launch in launches))
    return len(launches) / (time.perf_counter() - started)


async def measure(n: int) -> list[Figure]:
    """Every figure of this file."""
    # Imported here: a tree without the pool still measures the rest.
    try:
        from opsroom.runner.pool import PythonPool
    except ImportError:
        PythonPool = None  # type: ignore[assignment,misc]
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "catalog").mkdir()
        for name, text in SCRIPTS.items():
            (root / "catalog" / name).write_text(textwrap.dedent(text))
        for mode in ("cgroup", "fallback"):
            settings = RunnerSettings(cgroups=mode == "cgroup")
            for name, what in (("true.sh", "`true`"), ("leaves.sh", "leaves a TERM-obeying child")):
                runs = [await _one(_launch(root, name, settings), None) for _ in range(n)]
                figures.append(Figure(f"{what}, {mode}", median(runs), "ms"))
        cgroups = RunnerSettings(cgroups=True)
        _, lags = await _ticking(_in_turn([_launch(root, "true.sh", cgroups) for _ in range(n)]))
        figures.append(_lag_figure("`true` one at a time, cgroup", lags))
        for _ in range(3):
            burst = [_launch(root, "true.sh", cgroups) for _ in range(64)]
            rate, lags = await _ticking(_at_once(burst))
            figures.append(_lag_figure("64 `true` at once, cgroup", lags, f"; {rate:.0f} jobs/s"))
        settings = RunnerSettings()
        cold = [await _one(_launch(root, "hi.py", settings), None) for _ in range(n)]
        figures.append(Figure("Python `hi`, fresh interpreter", median(cold), "ms"))
        if PythonPool is not None:
            pool = PythonPool(4)
            try:
                await _one(_launch(root, "hi.py", settings), pool)  # starts the server
                warm = [await _one(_launch(root, "hi.py", settings), pool) for _ in range(n)]
                figures.append(Figure("Python `hi`, from the warm pool", median(warm), "ms"))
                started = time.perf_counter()
                launches = [_launch(root, "hi.py", settings) for _ in range(200)]
                await asyncio.gather(*(_one(launch, pool) for launch in launches))
                rate = 200 / (time.perf_counter() - started)
                figures.append(Figure("200 Python jobs at once, from the pool", rate, "/s"))
            finally:
                await pool.close()
            figures += await _apart(root, PythonPool, min(n, 25))
    return figures


async def _apart(root: Path, pool_class: type, n: int) -> list[Figure]:
    """`true` (the spawner) and `hi` (the warm pool) one every 0.2 s, each in a cgroup."""
    pool = pool_class(4, spawner=True)
    figures = []
    try:
        settings = RunnerSettings(cgroups=True)
        for name, what in (("true.sh", "`true`, the spawner"), ("hi.py", "Python `hi`, the pool")):
            await _one(_launch(root, name, settings), pool)  # starts the server
            runs = []
            for _ in range(n):
                await asyncio.sleep(0.2)
                runs.append(await _one(_launch(root, name, settings), pool))
            runs.sort()
            note = f"p90 {runs[int(0.9 * (len(runs) - 1))]:.1f} ms"
            figures.append(Figure(f"{what}, one every 0.2 s", median(runs), "ms", note=note))
    finally:
        await pool.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    """Print the figures as JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    args = parser.parse_args(argv)
    for figure in asyncio.run(measure(args.n)):
        row = {"name": figure.name, "value": figure.value, "unit": figure.unit}
        print(json.dumps({**row, **({"note": figure.note} if figure.note else {})}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
