"""Jobs through workers (SPEC §8): how soon a handed-over job starts, and how fast they go.

Two `opsroom worker` processes (concurrency 4 each) on one queue, a throwaway PostgreSQL
(OPSROOM_TEST_PG_URL's, else one started here), and the bot in this process:

- defer → start: from the job handed to its queue to a worker starting it (both times
  as the store recorded them), p50 and p99 over N trivial jobs sent 8 at a time;
- throughput: those N jobs, first request to last answer;
- cancel → ended on a worker, for a job that sleeps;
- 300 lines printed on a worker: how many reach the store (must be all).

    python bench/bench_workers.py [--quick]
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1] / "tests"
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))  # the throwaway PostgreSQL helper the tests use

from bench_startup import console_script  # noqa: E402
from figures import Figure  # noqa: E402
from opsroom.config import Settings, StoreSettings, WorkersSettings  # noqa: E402
from opsroom.model.blocks import Reply  # noqa: E402
from opsroom.testing import Bot  # noqa: E402
from pg_cluster import session_cluster  # noqa: E402

BUDGET_START_P99_MS = 500.0
BUDGET_CANCEL_S = 2.0
SCRIPTS = {
    "bench/noop.sh": 'runs_on = "bench"',
    "bench/sleep.sh": 'runs_on = "bench"\nbackground = true',
    "bench/lines.sh": 'runs_on = "bench"',
}
BODIES = {
    "bench/noop.sh": "echo ok",
    "bench/sleep.sh": "echo started; exec sleep 600",
    "bench/lines.sh": 'for i in $(seq 1 300); do echo "line $i"; done',
}


def _catalog(root: Path) -> Path:
    for rel, directives in SCRIPTS.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        head = "".join(f"# opsroom: {d}\n" for d in directives.splitlines())
        path.write_text(f"#!/usr/bin/env bash\n{head}# @describe bench\n{BODIES[rel]}\n")
    return root


@contextmanager
def _workers(url: str, catalog: Path, folder: Path, count: int) -> Iterator[None]:
    """`count` workers on queue `bench`, registered before this yields."""
    import psycopg

    procs = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}
    for n in range(count):
        config = folder / f"w{n}.toml"
        config.write_text(
            f'[store]\nurl = "{url}"\n[catalog]\npath = "{catalog}"\ncache = false\n'
            '[workers]\nheartbeat = "1s"\nlost_after = "5s"\n'
            # One requester sends 8 at a time: the per-user limit (4) would hold half back.
            "[runner]\nper_user = 8\n"
        )
        log = (folder / f"w{n}.log").open("wb")
        argv = ["worker", "--queue", "bench", "--concurrency", "4", "--name", f"bench-{n}"]
        procs.append(
            subprocess.Popen(
                [*console_script(), *argv, "--config", str(config)],
                env=env,
                cwd=folder,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            with psycopg.connect(url) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM workers WHERE stopped_at IS NULL AND lost_at IS NULL"
                ).fetchone()
            if row is not None and row[0] >= count:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not register")
            time.sleep(0.1)
        yield
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


async def _measure(url: str, catalog: Path, jobs: int) -> list[Figure]:
    settings = Settings(
        store=StoreSettings(url=url),
        workers=WorkersSettings.model_validate({"heartbeat": "1s", "lost_after": "5s"}),
    )
    async with Bot.open(catalog_dir=str(catalog), store_url=url, settings=settings) as bot:
        await bot.say("!bench noop")  # warm: the job queue's tables and connections
        gate = asyncio.Semaphore(8)

        async def one() -> int | None:
            async with gate:
                return (await bot.say("!bench noop")).job_id

        began = time.perf_counter()
        ids = [i for i in await asyncio.gather(*(one() for _ in range(jobs))) if i]
        took = time.perf_counter() - began
        waits = []
        for job_id in ids:
            job = await bot.job(job_id)
            remote = await bot.app.store.remote_job(job_id)
            assert remote is not None
            assert job.started_at is not None
            deferred = await _deferred_at(bot, job_id)
            waits.append((job.started_at - deferred).total_seconds() * 1000)
        waits.sort()
        p50 = statistics.median(waits)
        p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))]

        replies: list[Reply] = []

        async def keep(reply: Reply) -> None:
            replies.append(reply)

        task = asyncio.create_task(bot.handle("!bench sleep", keep))
        while True:
            newest = await bot.app.store.list_jobs(limit=1)
            if newest and newest[0].command == "bench sleep" and newest[0].output_lines:
                break
            await asyncio.sleep(0.01)
        asked = time.perf_counter()
        await bot.app.store.request_cancel(newest[0].id, by="bench")
        await task
        cancel_s = time.perf_counter() - asked

        lines = await bot.say("!bench lines")
        kept = await bot.app.store.output(lines.job_id or 0)
        lost = 300 - sum(1 for _, t in kept if t.startswith("line "))
    return [
        Figure(f"defer → start on a worker, p50 ({len(ids)} jobs)", p50, "ms"),
        Figure("defer → start on a worker, p99", p99, "ms", BUDGET_START_P99_MS),
        Figure("jobs through 2 workers (8 at a time)", len(ids) / took, "jobs/s"),
        Figure("cancel → ended on a worker", cancel_s, "s", BUDGET_CANCEL_S),
        Figure("lines lost of 300 printed on a worker", float(lost), "lines", 0.0),
    ]


async def _deferred_at(bot: Bot, job_id: int) -> datetime:
    from sqlalchemy import select

    from opsroom.store.schema import remote_jobs

    async with bot.app.store._db.read("bench") as conn:  # a benchmark may look inside
        at = await conn.scalar(
            select(remote_jobs.c.deferred_at).where(remote_jobs.c.job_id == job_id)
        )
    assert isinstance(at, datetime)
    return at


def run(quick: bool = False) -> list[Figure]:
    """The figures, on a throwaway PostgreSQL with two workers."""
    jobs = 40 if quick else 400
    with tempfile.TemporaryDirectory(prefix="opsroom-bench-workers-") as tmp:
        folder = Path(tmp)
        catalog = _catalog(folder / "catalog")
        with session_cluster() as cluster:
            url = cluster.new_database()
            try:
                with _workers(url, catalog, folder, 2):
                    return asyncio.run(_measure(url, catalog, jobs))
            finally:
                cluster.drop_database(url)


if __name__ == "__main__":
    for figure in run(quick="--quick" in sys.argv):
        print(f"{figure.name}: {figure.shown} [{figure.verdict}] {figure.note}")
