"""Run every opsroom benchmark and print one table: figure, result, budget, verdict.

    python bench/run.py            # full sizes (500 and 10,000 scripts, 500 jobs x 30 s)
    python bench/run.py --quick    # small sizes (50 jobs x 5 s), a sanity check in ~25 s

`opsroom bench` runs this file from a source checkout. Budgets (bench/README.md):
`opsroom --help` < 300 ms, 10,000 scripts load < 5 s cold, built-in parse+dispatch
< 0.1 ms with 10,000 commands; 500 concurrent streaming jobs: no line lost, event-loop lag
p99 < 20 ms, engine RSS < 150 MB.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

# The sibling modules import each other by plain name, whether this file runs as a script
# or through `opsroom bench` (runpy), so the folder goes on the path first.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from figures import Figure  # noqa: E402

_SUITES: tuple[tuple[str, str], ...] = (
    ("startup", "bench_startup"),
    ("serve", "bench_serve"),
    ("catalog", "bench_catalog"),
    ("powershell", "bench_powershell"),
    ("python", "bench_python_adopt"),
    ("dispatch", "bench_dispatch"),
    ("jobs", "bench_jobs"),
    ("queue", "bench_queue"),
    ("patterns", "bench_patterns"),
    ("deploy", "bench_deploy"),
    ("supervision", "bench_supervision"),
    ("workers", "bench_workers"),
)

PEERS = (
    "Peers (research/peer-performance.md, same machine kind): start->ready Errbot 288 ms, "
    "opsdroid 374 ms, Hubot 78 ms; message round trip at 500 commands Errbot 0.25 ms, "
    "opsdroid 36 ms, Hubot 0.08 ms."
)


def _suite(module: str) -> Callable[[bool], list[Figure]]:
    """The `run(quick)` function of one benchmark module."""
    loaded = __import__(module)
    fn: Callable[[bool], list[Figure]] = loaded.run
    return fn


def collect(quick: bool, only: list[str] | None = None) -> list[Figure]:
    """Run the chosen suites; a suite that fails becomes an `error` row, not a crash."""
    figures: list[Figure] = []
    for name, module in _SUITES:
        if only and name not in only:
            continue
        try:
            figures.extend(_suite(module)(quick))
        except Exception as e:  # a missing room or a failing child must not hide the rest
            detail = traceback.format_exception_only(e)[-1].strip()
            figures.append(Figure(f"{name} suite", None, "", None, f"did not run: {detail}"))
    return figures


def format_table(figures: list[Figure]) -> str:
    """The figures as an aligned plain-text table."""
    rows = [("benchmark", "result", "budget", "verdict", "notes")]
    for f in figures:
        budget = "—" if f.budget is None else f"< {f.budget:g} {f.unit}"
        rows.append((f.name, f.shown, budget, f.verdict, f.note))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for i, r in enumerate(rows):
        cells = [r[c].ljust(widths[c]) for c in range(4)] + [r[4]]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  -----")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print the table; 1 with `--check` when a budget is missed."""
    ap = argparse.ArgumentParser(prog="bench/run.py", description="opsroom benchmarks")
    ap.add_argument("--quick", action="store_true", help="small sizes, a fast sanity check")
    ap.add_argument(
        "--only",
        action="append",
        choices=[n for n, _ in _SUITES],
        help="run only this suite (repeatable)",
    )
    ap.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    ap.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when a figure is over its budget or a suite failed",
    )
    args = ap.parse_args(argv)
    started = time.perf_counter()
    figures = collect(args.quick, args.only)
    if args.json:
        for f in figures:
            print(
                json.dumps(
                    {
                        "name": f.name,
                        "value": f.value,
                        "unit": f.unit,
                        "budget": f.budget,
                        "verdict": f.verdict,
                        "note": f.note,
                    }
                )
            )
    else:
        mode = "quick" if args.quick else "full"
        print(f"opsroom benchmarks ({mode}, {time.perf_counter() - started:.0f} s)\n")
        print(format_table(figures))
        print(f"\n{PEERS}")
    failed = any(f.verdict in ("OVER", "error") for f in figures)
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
