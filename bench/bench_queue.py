"""Bursts of jobs beyond the concurrency limits: how fast the queue drains.

Each process keeps one line of its queued jobs and claims the next the moment a place
frees (engine/line.py); before, every queued job claimed itself again every half second.
Two bursts of `true` from one requester, in process (`opsroom.testing.Bot`, SQLite):

- 200 over the default limits (8 at once, 4 per requester): 196 of them queue;
- 1,500 over 500 places (500 per requester): 1,000 queue, each claim counts 500 running.

With `--quick`, 50 and 300 over 100. Figures are milliseconds per job (wall time of the
burst over its size) with the rate in the note.

    python bench/bench_queue.py [--quick]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from figures import Figure


def _catalog(root: Path) -> Path:
    (root / "bench").mkdir(parents=True)
    (root / "bench" / "true.sh").write_text("#!/usr/bin/env bash\n# @describe Nothing.\ntrue\n")
    return root


async def _burst(n: int, concurrency: int, per_user: int) -> float:
    """Seconds for `n` `!bench true` sent at once to end, under these limits."""
    from opsroom.config import Settings
    from opsroom.testing import Bot

    settings = Settings.model_validate(
        {"runner": {"concurrency": concurrency, "per_user": per_user}}
    )
    with tempfile.TemporaryDirectory(prefix="opsroom-bench-queue-") as tmp:
        catalog = _catalog(Path(tmp) / "catalog")
        async with Bot.open(
            catalog_dir=str(catalog), store_url=f"sqlite:///{tmp}/store.db", settings=settings
        ) as bot:
            await bot.say("!bench true")  # warm: the spawner, the catalog's first job
            t = time.perf_counter()
            said = await asyncio.gather(*(bot.say("!bench true") for _ in range(n)))
            wall = time.perf_counter() - t
    failed = [s.text for s in said if s.outcome.outcome != "succeeded"]
    if failed:
        raise RuntimeError(f"{len(failed)} of {n} jobs failed: {failed[0]}")
    return wall


def _figure(name: str, n: int, wall: float) -> Figure:
    return Figure(name, wall / n * 1e3, "ms/job", note=f"{n / wall:,.0f} jobs/s")


def run(quick: bool = False) -> list[Figure]:
    """The two bursts (smaller with `quick`)."""
    small, large, places = (50, 300, 100) if quick else (200, 1500, 500)
    return [
        _figure(
            f"burst of {small} `true`, default limits (8, 4 per user)",
            small,
            asyncio.run(_burst(small, 8, 4)),
        ),
        _figure(
            f"burst of {large} `true` over {places} places",
            large,
            asyncio.run(_burst(large, places, places)),
        ),
    ]


if __name__ == "__main__":
    for figure in run(quick="--quick" in sys.argv):
        print(f"{figure.name}: {figure.shown} [{figure.verdict}] {figure.note}")
