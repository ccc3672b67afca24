"""`opsroom --help` start time: the console script run as a child process, hyperfine-style.

Each run is a fresh process, so the figure includes the interpreter's own start (about
24 ms on this machine kind, research/peer-performance.md) and every import the CLI makes
before it can print its help. Peers: Errbot 288 ms and opsdroid 374 ms from start to ready.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from figures import Figure, median

BUDGET_MS = 300.0


def console_script() -> list[str]:
    """The installed `opsroom` console script, next to this interpreter or on PATH."""
    beside = Path(sys.executable).with_name("opsroom")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("opsroom")
    if found:
        return [found]
    return [sys.executable, "-m", "opsroom"]


def time_runs(argv: list[str], runs: int, warmup: int = 2) -> list[float]:
    """Wall times in ms of `runs` runs of `argv`, after `warmup` untimed ones."""
    samples: list[float] = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, check=False, timeout=60)
        elapsed = (time.perf_counter() - start) * 1000
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr!r}")
        if i >= warmup:
            samples.append(elapsed)
    return samples


def run(quick: bool = False) -> list[Figure]:
    """Median and minimum of `opsroom --help`, with `python -c pass` as the floor."""
    runs = 5 if quick else 20
    argv = [*console_script(), "--help"]
    samples = time_runs(argv, runs)
    floor = time_runs([sys.executable, "-c", "pass"], runs)
    note = (
        f"min {min(samples):.0f} / max {max(samples):.0f} ms over {runs} runs; "
        f"python -c pass median {median(floor):.0f} ms"
    )
    return [Figure("`opsroom --help` start-up, median", median(samples), "ms", BUDGET_MS, note)]


if __name__ == "__main__":
    for figure in run(quick="--quick" in sys.argv):
        print(f"{figure.name}: {figure.shown} [{figure.verdict}] {figure.note}")
