"""Many concurrent jobs streaming output through the real engine (issue: 500 jobs x 30 s).

A generated catalog holds one bash script that prints a numbered line every 0.1 s. The
engine (`opsroom.testing.Bot`: the real dispatcher, supervisor, runner and a SQLite store in
a temporary folder) runs in a child Python process, so its peak RSS is the engine's alone;
the child starts N jobs at once (N `Bot.say` tasks, `runner.concurrency` and `per_user` = N)
and measures, while they run:

- lines lost: every job's stored output (`Store.output`) must hold every line its script
  printed, in order (each line names its job, so a line stored under the wrong job counts);
- event-loop lag: a task sleeping 10 ms in a loop records how late each wake-up is;
- peak RSS of the engine process (`ru_maxrss`, children excluded), its threads, CPU time.

The script sleeps with bash's builtin `read -t` on a pipe nobody writes, not `sleep 0.1`:
500 jobs x 10 `sleep` processes a second is 5,000 forks a second, which on two cores takes
CPU from the engine being measured. `--sleep external` measures that variant.

    python bench/bench_jobs.py [--quick]                     # the figures, as in run.py
    python bench/bench_jobs.py --child --jobs 500 --seconds 30   # the engine side, JSON
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from figures import Figure

BUDGET_LAG_P99_MS = 20.0
BUDGET_RSS_MB = 150.0
BUDGET_LOST = 0.0
INTERVAL = 0.1  # seconds between two lines of one job
TICK = 0.01  # the lag monitor's sleep
COMMAND = "bench stream"

# `read -t` on a pipe that stays open (the shell holds both ends) and never gets data: a
# 0.1 s sleep without a child process.
_NAP = {
    "builtin": 'exec {nap}<> <(:)\nnap() { read -rt 0.1 -u "$nap" || true; }',
    "external": "nap() { sleep 0.1; }",
}

_SCRIPT = """#!/usr/bin/env bash
# @describe Print a numbered line every 0.1 s, as a long-running job streams its log.
# @option --count=300 <INT> How many lines to print
# @option --tag=0 <INT> Which job this is (printed on every line)
set -euo pipefail
count="${{OPSROOM_ARG_COUNT:-300}}"
tag="${{OPSROOM_ARG_TAG:-0}}"
{nap}
for ((i = 1; i <= count; i++)); do
  printf 'job %s line %d\\n' "$tag" "$i"
  nap
done
"""


def expected_lines(tag: int, count: int) -> list[tuple[str, str]]:
    """What job `tag` prints, as the store should keep it: (stream, text) in order."""
    return [("stdout", f"job {tag} line {i}") for i in range(1, count + 1)]


def write_catalog(root: Path, sleep: str) -> None:
    """A catalog with the one streaming script, `bench stream`."""
    folder = root / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "stream.sh"
    script.write_text(_SCRIPT.format(nap=_NAP[sleep]), encoding="utf-8")
    script.chmod(0o755)


def _proc_status() -> dict[str, int]:
    """VmRSS and VmHWM (KiB) and Threads of this process."""
    out: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    return out


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def _engine(jobs: int, seconds: float, sleep: str, tmp: Path) -> dict[str, Any]:
    """Run `jobs` streaming jobs through one engine and return the measured figures."""
    from opsroom.config import Settings
    from opsroom.model.jobs import JobState
    from opsroom.testing import Bot

    count = round(seconds / INTERVAL)
    catalog = tmp / "catalog"
    write_catalog(catalog, sleep)
    settings = Settings.model_validate(
        {"runner": {"concurrency": jobs, "per_user": jobs, "timeout": seconds * 10 + 600}}
    )
    lags: list[float] = []
    samples: list[tuple[float, int, int]] = []  # (t, VmRSS KiB, threads)
    stop = asyncio.Event()

    async def monitor(t0: float) -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(TICK)
            lags.append(max(0.0, time.perf_counter() - before - TICK))
            if len(lags) % 50 == 0:
                status = _proc_status()
                samples.append((before - t0, status["VmRSS"], status["Threads"]))

    async with Bot.open(
        catalog_dir=str(catalog), store_url=f"sqlite:///{tmp}/bench.db", settings=settings
    ) as bot:
        ready = _proc_status()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        watcher = asyncio.create_task(monitor(t0))
        said = await asyncio.gather(
            *(
                bot.say(f"!{COMMAND} --count {count} --tag {tag}", as_="local:bench")
                for tag in range(jobs)
            )
        )
        wall = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        stop.set()
        await watcher
        store = bot.app.store
        lost = disordered = failed = 0
        reasons: dict[str, int] = {}
        created: list[float] = []
        started: list[float] = []
        finished: list[float] = []
        for tag, s in enumerate(said):
            job_id = s.outcome.job_id
            if job_id is None or s.outcome.state is not JobState.SUCCEEDED:
                failed += 1
            if job_id is None:
                lost += count
                continue
            want = expected_lines(tag, count)
            got = await store.output(job_id)
            lost += len(set(want) - set(got))
            disordered += got != want and set(want) <= set(got)
            job = await store.get_job(job_id)
            if job is not None and job.state is not JobState.SUCCEEDED:
                why = f"{job.state.value}: {job.error or ''}"[:200]
                reasons[why] = reasons.get(why, 0) + 1
            if job is not None and job.started_at and job.finished_at:
                created.append(job.created_at.timestamp())
                started.append(job.started_at.timestamp())
                finished.append(job.finished_at.timestamp())
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    lags.sort()
    return {
        "jobs": jobs,
        "seconds": seconds,
        "sleep": sleep,
        "lines_expected": jobs * count,
        "lines_lost": lost,
        "jobs_disordered": disordered,
        "jobs_failed": failed,
        "failures": reasons,
        "wall_s": wall,
        "engine_cpu_s": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
        "children_cpu_s": children.ru_utime + children.ru_stime,
        "lag_ms_p50": statistics.median(lags) * 1e3,
        "lag_ms_p99": _percentile(lags, 0.99) * 1e3,
        "lag_ms_max": lags[-1] * 1e3,
        "lag_samples": len(lags),
        "rss_mb_ready": ready["VmRSS"] / 1024,
        "rss_mb_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads_peak": max((t for _, _, t in samples), default=0),
        "all_started_s": max(started) - min(created) if started else None,
        "last_finished_s": max(finished) - min(created) if finished else None,
        "rss_timeline": [(round(t, 1), round(r / 1024, 1)) for t, r, _ in samples[::10]],
    }


def measure(jobs: int, seconds: float, sleep: str = "builtin") -> dict[str, Any]:
    """Run the engine side in a fresh interpreter and return its JSON figures."""
    argv = [sys.executable, __file__, "--child", "--jobs", str(jobs), "--seconds", str(seconds)]
    done = subprocess.run(
        [*argv, "--sleep", sleep],
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds * 30 + 300,  # the engine may fall far behind (see README)
    )
    if done.returncode != 0:
        raise RuntimeError(f"the engine child failed:\n{done.stderr.strip()[-2000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def figures_of(m: dict[str, Any]) -> list[Figure]:
    """The table rows for one measurement."""
    label = f"{m['jobs']} jobs x {m['seconds']:g} s"
    lines = m["lines_expected"]
    per_line_us = m["engine_cpu_s"] / max(lines, 1) * 1e6
    return [
        Figure(
            f"{label}: output lines lost",
            float(m["lines_lost"]),
            "lines",
            BUDGET_LOST,
            f"of {lines:,}; {m['jobs_disordered']} jobs out of order, "
            f"{m['jobs_failed']} jobs failed {m['failures'] or ''}",
        ),
        Figure(
            f"{label}: event-loop lag p99",
            m["lag_ms_p99"],
            "ms",
            BUDGET_LAG_P99_MS,
            f"p50 {m['lag_ms_p50']:.2f} ms, max {m['lag_ms_max']:.0f} ms "
            f"({m['lag_samples']:,} wake-ups of a 10 ms ticker)",
        ),
        Figure(
            f"{label}: engine peak RSS",
            m["rss_mb_peak"],
            "MB",
            BUDGET_RSS_MB,
            f"{m['rss_mb_ready']:.0f} MB when ready; up to {m['threads_peak']} threads",
        ),
        Figure(
            f"{label}: wall time",
            m["wall_s"],
            "s",
            None,
            f"all jobs running after {m['all_started_s'] or 0:.1f} s; scripts' own run "
            f"{m['seconds']:g} s + sleep drift",
        ),
        Figure(
            f"{label}: engine CPU time",
            m["engine_cpu_s"],
            "s",
            None,
            f"{per_line_us:.0f} µs a line; the scripts used {m['children_cpu_s']:.1f} s",
        ),
    ]


def run(quick: bool = False) -> list[Figure]:
    """The concurrent-jobs figures: 500 jobs x 30 s (50 x 5 s with `quick`)."""
    jobs, seconds = (50, 5.0) if quick else (500, 30.0)
    return figures_of(measure(jobs, seconds))


def main(argv: list[str] | None = None) -> int:
    """Print the figures, or with `--child` run the engine side and print its JSON."""
    ap = argparse.ArgumentParser(prog="bench/bench_jobs.py", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="50 jobs x 5 s")
    ap.add_argument("--child", action="store_true", help="run the engine here, print JSON")
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--sleep", choices=sorted(_NAP), default="builtin")
    args = ap.parse_args(argv)
    jobs = args.jobs or (50 if args.quick else 500)
    seconds = args.seconds or (5.0 if args.quick else 30.0)
    if args.child:
        with tempfile.TemporaryDirectory(prefix="opsroom-bench-jobs-") as tmp:
            result = asyncio.run(_engine(jobs, seconds, args.sleep, Path(tmp)))
        print(json.dumps(result))
        return 0
    m = measure(jobs, seconds, args.sleep)
    for figure in figures_of(m):
        print(f"{figure.name}: {figure.shown} [{figure.verdict}] {figure.note}")
    print(f"RSS timeline (s, MB): {m['rss_timeline']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
