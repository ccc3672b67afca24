"""The least the issue's unmet rows can cost on this machine, with no opsroom code at all.

Each goal of issue 15 keeps something opsroom must do (a durable audit record before the
reply, a script run by its interpreter, a cgroup per job, the chosen libraries), and that
part alone has a cost on this machine that no work on opsroom's own code can remove:

- `true` one at a time: two durable SQLite commits (the job's start, its end: WAL,
  `synchronous=FULL`, one small row each), `bash true.sh` started and waited for, the job's
  folder and a cgroup in each hierarchy opsroom uses made and removed;
- `true`, many at once: the CPU `bash true.sh` costs (the child's own and its start in the
  parent), so the most jobs all cores could run in a second; commits are shared then;
- restart: a fresh interpreter importing asyncio, SQLAlchemy's asyncio engine (without its
  ORM, as the store loads it) with the SQLite dialect, and pydantic (ARCHITECTURE.md's store
  and config), and building one pydantic model.

Beside them, what Errbot's own command does in the same way (`subprocess.run(["/bin/true"])`).
`opsroom bench --compare` prints these below its table, divided by Errbot's figures of the
same run: a floor over Errbot's figure beyond the goal means the goal cannot be met here.

    python bench/peers/floors.py [--n 50] [--folder DIR]    # one JSON line
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def _median_ms(n: int, step: Callable[[], object]) -> float:
    """The median wall time of `step` over n calls (after one untimed call), in ms."""
    step()
    took = []
    for _ in range(n):
        t = time.perf_counter()
        step()
        took.append(time.perf_counter() - t)
    return statistics.median(took) * 1e3


def durable_commit_ms(folder: Path, n: int) -> float:
    """One small row committed durably, as a job's start or end is."""
    db = sqlite3.connect(folder / "floor.db", isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT)")
        body = "x" * 200

        def commit() -> None:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t (body) VALUES (?)", (body,))
            db.execute("COMMIT")

        return _median_ms(n, commit)
    finally:
        db.close()


def spawn(argv: list[str], n: int) -> tuple[float, float]:
    """`argv` started and waited for: median wall ms, and CPU ms per run (child and parent)."""
    subprocess.run(argv, check=True)  # untimed: the program's pages into the cache
    took = []
    before_self = resource.getrusage(resource.RUSAGE_SELF)
    before_kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(argv, check=True)
        took.append(time.perf_counter() - t)
    after_self = resource.getrusage(resource.RUSAGE_SELF)
    after_kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    kids = (after_kids.ru_utime - before_kids.ru_utime) + (
        after_kids.ru_stime - before_kids.ru_stime
    )
    own = after_self.ru_stime - before_self.ru_stime  # the fork and exec; Python's own is not
    return statistics.median(took) * 1e3, (kids + own) / n * 1e3


def folders_ms(folder: Path, n: int) -> tuple[float, float, list[str]]:
    """A job's folder made and removed; the same for a cgroup in each hierarchy opsroom would
    use here (none when it makes no cgroups); and which hierarchies those are."""
    workdir = _median_ms(n, lambda: os.rmdir(tempfile.mkdtemp(prefix="floor-", dir=folder)))
    from opsroom.runner.cgroup import host

    h = host()
    parents = [
        (name, path)
        for name, path in (("v2", h.v2), ("memory v1", h.memory_v1), ("pids v1", h.pids_v1))
        if path is not None
    ]
    made = 0

    def cgroups() -> None:
        nonlocal made
        made += 1
        for _, parent in parents:
            path = os.path.join(parent, f"opsroom-floor-{os.getpid()}-{made}")
            os.mkdir(path)
            os.rmdir(path)

    try:
        cgroup = _median_ms(n, cgroups) if parents else 0.0
    except OSError:
        cgroup, parents = 0.0, []
    return workdir, cgroup, [name for name, _ in parents]


def imports_ms(n: int) -> float:
    """A fresh interpreter importing what opsroom's start cannot do without, median of n;
    timed from its first statement, as the peers' start-up figures are."""
    import opsroom

    # The store's way to load SQLAlchemy's asyncio engine without its ORM, run on its own
    # (imported as opsroom.store.sa_async it would bring the whole store package along).
    lean = os.path.join(os.path.dirname(opsroom.__file__), "store", "sa_async.py")
    code = (
        "import time\n"
        "t = time.perf_counter()\n"
        "import asyncio, importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('lean', {lean!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "import sqlalchemy.dialects.sqlite.aiosqlite\n"
        "import pydantic\n"
        "class M(pydantic.BaseModel):\n    a: int = 0\n"
        "M.model_validate({'a': 1})\n"
        "print((time.perf_counter() - t) * 1e3)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    argv = [sys.executable, "-c", code]
    took = [
        float(subprocess.run(argv, check=True, env=env, capture_output=True, text=True).stdout)
        for _ in range(n + 1)
    ]
    return statistics.median(took[1:])  # the first may have written bytecode


def measure(folder: Path, n: int) -> dict[str, object]:
    """Every floor, as one JSON-ready object."""
    script = folder / "true.sh"
    script.write_text("#!/usr/bin/env bash\ntrue\n")
    commit = durable_commit_ms(folder, n)
    bash_wall, bash_cpu = spawn(["bash", str(script)], n)
    true_wall, true_cpu = spawn(["/bin/true"], n)
    workdir, cgroup, hierarchies = folders_ms(folder, n)
    cores = os.cpu_count() or 1
    return {
        "durable_commit_ms": commit,
        "bash_true_ms": bash_wall,
        "bash_true_cpu_ms": bash_cpu,
        "workdir_ms": workdir,
        "cgroups_ms": cgroup,
        "cgroup_hierarchies": hierarchies,
        "true_job_ms": 2 * commit + bash_wall + workdir + cgroup,
        "true_jobs_per_s": cores / (bash_cpu / 1e3),
        "restart_ms": imports_ms(max(3, n // 10)),
        "errbot_true_ms": true_wall,
        "errbot_true_cpu_ms": true_cpu,
        "cores": cores,
    }


def main() -> None:
    """Measure in a scratch folder (or --folder, on the file system the store would use)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--folder", type=Path, help="where the commits and folders are made")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsroom-floors-", dir=a.folder) as tmp:
        print(json.dumps(measure(Path(tmp), a.n)), flush=True)


if __name__ == "__main__":
    main()
