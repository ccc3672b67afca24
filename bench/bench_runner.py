"""The runner alone (build_launch + run_local, no store, no chat): what one job costs.

- `true` (bash), with a cgroup per job and in the fallback: start, wait, know that nothing is
  left, clean up;
- a script that leaves a child obeying TERM (`sleep 300 &`): its exit → the child ended and
  reported (the end used to be found by polling every 50 ms);
- a Python `main()` printing `hi`: a fresh interpreter, and forked from the warm pool
  (`[runner] python_pool`);
- 200 Python jobs at once from the pool.

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
from pathlib import Path
from types import MappingProxyType

from figures import Figure, median
from opsroom.config import RunnerSettings
from opsroom.model.commands import CommandSpec, Invocation, Language
from opsroom.model.jobs import JobEvent, JobState
from opsroom.runner.argv import Launch, build_launch
from opsroom.runner.local import run_local
from opsroom.runner.tree import new_token

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
    return figures


def main(argv: list[str] | None = None) -> int:
    """Print the figures as JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    args = parser.parse_args(argv)
    for figure in asyncio.run(measure(args.n)):
        print(json.dumps({"name": figure.name, "value": figure.value, "unit": figure.unit}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
