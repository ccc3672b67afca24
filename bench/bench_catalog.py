"""Catalog load time: generated catalogs of 500 and 10,000 scripts, loaded cold.

"Cold" means a fresh Python process that imports `opsroom.catalog.scan` and calls
`load_catalog` once, as `opsroom serve` does at start-up. The scripts were just written, so
the operating system's file cache is warm; dropping it would need root and would disturb
everything else on the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import Figure, median
from generate import generate_catalog

# Runs in the child: prints one JSON object with its own timings.
_CHILD = """
import json, sys, time
t0 = time.perf_counter()
from pathlib import Path
from opsroom.catalog.scan import load_catalog
t1 = time.perf_counter()
catalog = load_catalog(Path(sys.argv[1]))
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1,
                  "commands": len(catalog.commands), "issues": len(catalog.issues),
                  "errors": len(catalog.errors)}))
"""

BUDGET_10K_S = 5.0


def cold_load(root: Path) -> dict[str, float]:
    """Load `root` in a fresh interpreter; the child's timings plus the process wall time."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"load_catalog failed in the child:\n{done.stderr.strip()}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["wall_s"] = wall
    return figures


def measure(sizes: tuple[int, ...], runs: int) -> list[Figure]:
    """Generate one catalog per size and load each `runs` times cold; medians reported."""
    out: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="opsroom-bench-") as tmp:
        for n in sizes:
            root = Path(tmp) / f"catalog-{n}"
            generate_catalog(root, n, seed=n)
            samples = [cold_load(root) for _ in range(runs)]
            wall = median([s["wall_s"] for s in samples])
            load = median([s["load_s"] for s in samples])
            imp = median([s["import_s"] for s in samples])
            last = samples[-1]
            note = (
                f"load_catalog {load:.2f} s + import {imp * 1000:.0f} ms; "
                f"{int(last['commands'])} commands, {int(last['errors'])} errors"
                f" (median of {runs})"
            )
            budget = BUDGET_10K_S if n >= 10_000 else None
            out.append(
                Figure(f"catalog load, {n:,} scripts, cold process", wall, "s", budget, note)
            )
    return out


def run(quick: bool = False) -> list[Figure]:
    """The catalog figures: 500 and 10,000 scripts (100 and 500 with `quick`)."""
    return measure((100, 500), runs=1) if quick else measure((500, 10_000), runs=3)


if __name__ == "__main__":
    for figure in run(quick="--quick" in sys.argv):
        print(f"{figure.name}: {figure.shown} [{figure.verdict}] {figure.note}")
