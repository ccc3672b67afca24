"""Jobs through workers (SPEC §8), beside the same jobs in embedded mode.

The store of both modes is a throwaway PostgreSQL (OPSROOM_TEST_PG_URL's cluster, else one
started here). Workers: two `opsroom worker` processes on queue `bench`; embedded: the bot
runs the same scripts itself (commands without `runs_on`).

1. Trivial jobs: N `echo ok` jobs (1,000; 40 with `--quick`) sent 8 at a time by the bot in
   this process, through 2 workers of concurrency 4 (8 slots, as the bot's default
   `[runner] concurrency = 8` in embedded mode): throughput (first request to last answer),
   defer → start (the job handed to its queue → a worker starting it, as the store
   recorded both) and request → start (the message → the job's recorded start), p50/p99.
   With every slot busy a start may wait for a slot, so then 100 (20) jobs one at a time:
   the latency of a start alone. The max and the starts over 1 s catch a job whose
   notification its workers missed (it waits for their next poll, `[workers] recheck`).
2. `cancel` → ended on a worker, for a job that sleeps; lines lost of 300 printed at once.
3. Streaming: M jobs at once (200; 20 with `--quick`), each printing a line every 100 ms
   for S seconds (10; 3). The bot runs in a child interpreter so its peak RSS is its own;
   two fresh workers of concurrency M/2 take the jobs. Lines lost in the store (each job's
   kept output must be what it printed, in order) and in the room (the live and final
   replies must account for every line, in order); the bot's and each worker's peak RSS.

    python bench/bench_workers.py [--quick] [--mode both|workers|embedded] [--json]
    python bench/bench_workers.py --stream-child --url URL --catalog DIR --mode MODE \
        --jobs M --seconds S   # the streaming bot alone, JSON
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
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
from typing import Any

_TESTS = Path(__file__).resolve().parents[1] / "tests"
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))  # the throwaway PostgreSQL helper the tests use

from bench_startup import console_script  # noqa: E402
from figures import Figure  # noqa: E402
from opsroom.config import Settings  # noqa: E402
from opsroom.model.blocks import Code, Reply  # noqa: E402
from opsroom.testing import Bot  # noqa: E402
from pg_cluster import session_cluster  # noqa: E402

BUDGET_START_P99_MS = 500.0
BUDGET_CANCEL_S = 2.0
AT_ONCE = 8  # trivial jobs in flight at a time: the 8 slots of two workers of concurrency 4
INTERVAL = 0.1  # seconds between two lines of a streaming job
HEARTBEAT = {"heartbeat": "1s", "lost_after": "5s"}

# `read -t` on a pipe nobody writes: a 0.1 s nap without a `sleep` child (see bench_jobs.py).
_STREAM = """exec {nap}<> <(:)
count="${OPSROOM_ARG_COUNT:-100}"; tag="${OPSROOM_ARG_TAG:-0}"
for ((i = 1; i <= count; i++)); do
  printf 'job %s line %d\\n' "$tag" "$i"
  read -rt 0.1 -u "$nap" || true
done"""
_STREAM_ARGS = (
    "# @option --count=100 <INT> How many lines to print\n"
    "# @option --tag=0 <INT> Which job this is (printed on every line)\n"
)
SCRIPTS = {  # path -> (directives, body); `bench/*` run on the workers, `local/*` in the bot
    "bench/noop.sh": ('runs_on = "bench"', "echo ok"),
    "bench/sleep.sh": ('runs_on = "bench"\nbackground = true', "echo started; exec sleep 600"),
    "bench/lines.sh": ('runs_on = "bench"', 'for i in $(seq 1 300); do echo "line $i"; done'),
    "bench/stream.sh": ('runs_on = "bench"\nbackground = true', _STREAM),
    "local/noop.sh": ("", "echo ok"),
    "local/stream.sh": ("background = true", _STREAM),
}


def _catalog(root: Path) -> Path:
    for rel, (directives, body) in SCRIPTS.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        head = "".join(f"# opsroom: {d}\n" for d in directives.splitlines() if d)
        args = _STREAM_ARGS if rel.endswith("stream.sh") else ""
        path.write_text(f"#!/usr/bin/env bash\n{head}# @describe bench\n{args}{body}\n")
    return root


def _settings(url: str, slots: int) -> Settings:
    """The bot's settings: the bench store, quick heartbeats, `slots` jobs at once."""
    return Settings.model_validate(
        {
            "store": {"url": url},
            "workers": HEARTBEAT,
            "runner": {"concurrency": slots, "per_user": slots},
        }
    )


class _Workers:
    """`count` workers on queue `bench`, registered before the block starts."""

    def __init__(self, procs: list[subprocess.Popen[bytes]]) -> None:
        self.procs = procs

    def cpu_s(self) -> float:
        """The workers' CPU time so far (user and system, their scripts not counted), in s."""
        total = 0
        for proc in self.procs:
            with open(f"/proc/{proc.pid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
        return total / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> list[float]:
        """Each worker's peak resident memory so far (VmHWM), in MB."""
        peaks = []
        for proc in self.procs:
            with open(f"/proc/{proc.pid}/status", encoding="ascii") as f:
                hwm = next(line for line in f if line.startswith("VmHWM:"))
            peaks.append(int(hwm.split()[1]) / 1024)
        return peaks


@contextmanager
def _workers(url: str, catalog: Path, folder: Path, count: int, slots: int) -> Iterator[_Workers]:
    import psycopg

    procs = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}
    with psycopg.connect(url, autocommit=True) as conn:
        before = conn.execute("SELECT coalesce(max(id), 0) FROM workers").fetchone()
    first = int(before[0]) if before else 0
    for n in range(count):
        config = folder / f"w{n}-{slots}.toml"
        config.write_text(
            f'[store]\nurl = "{url}"\n[catalog]\npath = "{catalog}"\ncache = false\n'
            f'[workers]\nheartbeat = "{HEARTBEAT["heartbeat"]}"\n'
            f'lost_after = "{HEARTBEAT["lost_after"]}"\n'
            # One requester sends them all: its per-user limit must not hold half back.
            f"[runner]\nconcurrency = {slots * count}\nper_user = {slots * count}\n"
        )
        log = (folder / f"w{n}.log").open("ab")
        argv = ["worker", "--queue", "bench", "--concurrency", str(slots)]
        procs.append(
            subprocess.Popen(
                [*console_script(), *argv, "--name", f"bench-{n}-{slots}", "--config", str(config)],
                env=env,
                cwd=folder,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            with psycopg.connect(url, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM workers WHERE id > %s AND stopped_at IS NULL"
                    " AND lost_at IS NULL",
                    (first,),
                ).fetchone()
            if row is not None and row[0] >= count:
                break
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"the workers did not register (see {folder}/w*.log)")
            time.sleep(0.1)
        yield _Workers(procs)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _percentiles(values: list[float]) -> tuple[float, float]:
    """(p50, p99) of a non-empty list."""
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


# --------------------------------------------------------------------------- 1. trivial jobs


async def _trivial(bot: Bot, command: str, jobs: int, at_once: int) -> dict[str, Any]:
    """`jobs` runs of `command`, `at_once` at a time: throughput and start latencies."""
    await bot.say(f"!{command}")  # warm: the job queue's tables and connections
    gate = asyncio.Semaphore(at_once)
    asked: dict[int, float] = {}

    async def one() -> int | None:
        async with gate:
            at = time.time()
            job_id = (await bot.say(f"!{command}")).job_id
            if job_id is not None:
                asked[job_id] = at
            return job_id

    began = time.perf_counter()
    ids = [i for i in await asyncio.gather(*(one() for _ in range(jobs))) if i]
    took = time.perf_counter() - began
    deferred = await _deferred_at(bot, ids)
    to_start, from_defer, failed = [], [], 0
    for job_id in ids:
        job = await bot.job(job_id)
        if job.started_at is None or job.exit_code != 0:
            failed += 1
            continue
        to_start.append((job.started_at.timestamp() - asked[job_id]) * 1000)
        if job_id in deferred:
            from_defer.append((job.started_at - deferred[job_id]).total_seconds() * 1000)
    return {
        "jobs": len(ids),
        "at_once": at_once,
        "failed": failed + (jobs - len(ids)),
        "per_s": len(ids) / took,
        "request_start_ms": _percentiles(to_start),
        "defer_start_ms": _percentiles(from_defer) if from_defer else None,
        "defer_start_max_ms": max(from_defer, default=0.0),
        # A job whose notice its workers missed waits for their next poll (`recheck`).
        "defer_start_over_1s": sum(1 for ms in from_defer if ms > 1000),
    }


async def _deferred_at(bot: Bot, ids: list[int]) -> dict[int, datetime]:
    from sqlalchemy import select

    from opsroom.store.schema import remote_jobs

    query = select(remote_jobs.c.job_id, remote_jobs.c.deferred_at).where(
        remote_jobs.c.job_id.in_(ids)
    )
    async with bot.app.store._db.read("bench") as conn:  # a benchmark may look inside
        return {int(j): at for j, at in (await conn.execute(query)).all()}


async def _worker_extras(bot: Bot) -> tuple[float, int]:
    """(cancel → ended on a worker in s, lines lost of 300 printed on a worker)."""
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
    return cancel_s, 300 - sum(1 for _, t in kept if t.startswith("line "))


# --------------------------------------------------------------------------- 3. streaming


async def _stream(url: str, catalog: Path, mode: str, jobs: int, seconds: float) -> dict[str, Any]:
    """The bot side of the streaming phase (in a child interpreter): its figures, as JSON."""
    from opsroom.model.jobs import JobState

    count = round(seconds / INTERVAL)
    command = "bench stream" if mode == "workers" else "local stream"
    async with Bot.open(
        catalog_dir=str(catalog), store_url=url, settings=_settings(url, jobs)
    ) as bot:
        began, cpu = time.perf_counter(), _cpu_s()
        said = await asyncio.gather(
            *(bot.say(f"!{command} --count {count} --tag {tag}") for tag in range(jobs))
        )
        wall, cpu = time.perf_counter() - began, _cpu_s() - cpu
        stored_lost = disordered = room_lost = failed = 0
        created, started = [], []
        for tag, s in enumerate(said):
            want = [("stdout", f"job {tag} line {i}") for i in range(1, count + 1)]
            if s.job_id is None or s.outcome.state is not JobState.SUCCEEDED:
                failed += 1
            got = await bot.app.store.output(s.job_id) if s.job_id else []
            stored_lost += len(set(want) - set(got))
            disordered += got != want and set(want) <= set(got)
            room_lost += count - _accounted(s.replies, tag)
            job = await bot.app.store.get_job(s.job_id) if s.job_id else None
            if job is not None and job.started_at is not None:
                created.append(job.created_at.timestamp())
                started.append(job.started_at.timestamp())
    return {
        "mode": mode,
        "jobs": jobs,
        "seconds": seconds,
        "lines": jobs * count,
        "stored_lost": stored_lost,
        "disordered": disordered,
        "room_lost": room_lost,
        "failed": failed,
        "wall_s": wall,
        "all_running_s": max(started) - min(created) if started else None,
        "bot_cpu_s": cpu,
        "bot_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _cpu_s() -> float:
    """This process's CPU time so far, user and system, in seconds."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def _accounted(replies: tuple[Reply, ...], tag: int) -> int:
    """How many of job `tag`'s lines its replies account for, shown or counted, in order.

    Each output block shows the newest lines since the previous block and says how many
    came between; a block out of order, or lines not the job's, count for nothing.
    """
    last = 0  # the number of the last line accounted for
    for block in (b for r in replies for b in r.blocks if isinstance(b, Code)):
        numbers = []
        for line in block.lines:
            head, _, number = line.rpartition(" line ")
            if head != f"job {tag}" or not number.isdigit():
                return 0
            numbers.append(int(number))
        first = last + block.more + 1
        if numbers != list(range(first, first + len(numbers))):
            return 0
        last = first + len(numbers) - 1
    return last


def _stream_child(url: str, catalog: Path, mode: str, jobs: int, seconds: float) -> dict[str, Any]:
    """Run the streaming phase's bot in a fresh interpreter; its JSON figures."""
    argv = [sys.executable, __file__, "--stream-child", "--url", url, "--catalog", str(catalog)]
    argv += ["--mode", mode, "--jobs", str(jobs), "--seconds", str(seconds)]
    done = subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=seconds * 30 + 300
    )
    if done.returncode != 0:
        raise RuntimeError(f"the streaming bot failed:\n{done.stderr.strip()[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- the figures


def _measure(folder: Path, url: str, mode: str, quick: bool) -> list[Figure]:
    catalog = _catalog(folder / "catalog")
    jobs, alone = (40, 20) if quick else (1000, 100)
    streams, seconds = (20, 3.0) if quick else (200, 10.0)
    label = "workers" if mode == "workers" else "embedded"
    figures: list[Figure] = []

    async def trivial() -> tuple[list[dict[str, Any]], tuple[float, int] | None]:
        settings = _settings(url, AT_ONCE)
        async with Bot.open(catalog_dir=str(catalog), store_url=url, settings=settings) as bot:
            command = "bench noop" if mode == "workers" else "local noop"
            # Every slot busy (throughput; a start may wait for a slot), then one at a
            # time (the latency of a start alone).
            t = [
                await _trivial(bot, command, jobs, AT_ONCE),
                await _trivial(bot, command, alone, 1),
            ]
            extras = await _worker_extras(bot) if mode == "workers" else None
        return t, extras

    if mode == "workers":
        with _workers(url, catalog, folder, 2, AT_ONCE // 2):
            t, extras = asyncio.run(trivial())
        with _workers(url, catalog, folder, 2, streams // 2) as ws:
            before = ws.cpu_s()
            s = _stream_child(url, catalog, mode, streams, seconds)
            worker_rss, worker_cpu = ws.peak_rss_mb(), ws.cpu_s() - before
    else:
        t, extras = asyncio.run(trivial())
        s = _stream_child(url, catalog, mode, streams, seconds)
        worker_rss, worker_cpu = [], None
    for run in t:
        figures += _trivial_figures(label, run)
    if extras is not None:
        cancel_s, lost = extras
        figures.append(
            Figure(f"{label}: cancel → ended on a worker", cancel_s, "s", BUDGET_CANCEL_S)
        )
        figures.append(
            Figure(f"{label}: lines lost of 300 printed at once", float(lost), "lines", 0.0)
        )
    what = f"{label}: {s['jobs']} jobs x {s['seconds']:g} s, a line every 100 ms"
    note = (
        f"of {s['lines']:,}; {s['disordered']} jobs out of order, {s['failed']} failed; "
        f"all running after {s['all_running_s'] or 0:.1f} s, wall {s['wall_s']:.1f} s"
    )
    figures.append(
        Figure(f"{what}: lines lost (store)", float(s["stored_lost"]), "lines", 0.0, note)
    )
    figures.append(Figure(f"{what}: lines lost (room)", float(s["room_lost"]), "lines", 0.0))
    figures.append(Figure(f"{what}: bot peak RSS", s["bot_rss_mb"], "MB"))
    figures.append(Figure(f"{what}: bot CPU time", s["bot_cpu_s"], "s"))
    if worker_cpu is not None:
        figures.append(Figure(f"{what}: workers' CPU time (both)", worker_cpu, "s"))
    for n, rss in enumerate(worker_rss):
        figures.append(Figure(f"{what}: worker {n} peak RSS", rss, "MB"))
    return figures


def _trivial_figures(label: str, t: dict[str, Any]) -> list[Figure]:
    """The rows of one trivial-jobs run."""
    what = f"{label}: {t['jobs']} trivial jobs, {t['at_once']} at a time"
    failed = f"{t['failed']} failed" if t["failed"] else ""
    figures = [Figure(f"{what}: throughput", t["per_s"], "jobs/s", note=failed)]
    p50, p99 = t["request_start_ms"]
    figures.append(Figure(f"{what}: request → start, p50", p50, "ms"))
    figures.append(Figure(f"{what}: request → start, p99", p99, "ms"))
    if t["defer_start_ms"] is not None:
        p50, p99 = t["defer_start_ms"]
        note = f"max {t['defer_start_max_ms']:.0f} ms; {t['defer_start_over_1s']} over 1 s"
        figures.append(Figure(f"{what}: defer → start on a worker, p50", p50, "ms"))
        figures.append(
            Figure(f"{what}: defer → start on a worker, p99", p99, "ms", BUDGET_START_P99_MS, note)
        )
    return figures


def run(quick: bool = False, modes: tuple[str, ...] = ("workers", "embedded")) -> list[Figure]:
    """The figures, on a throwaway PostgreSQL: workers, then the same jobs embedded."""
    figures: list[Figure] = []
    with session_cluster() as cluster:
        for mode in modes:
            url = cluster.new_database()
            try:
                with tempfile.TemporaryDirectory(prefix=f"opsroom-bench-{mode}-") as tmp:
                    figures += _measure(Path(tmp), url, mode, quick)
            finally:
                cluster.drop_database(url)
    return figures


def main(argv: list[str] | None = None) -> int:
    """Print the figures; with `--stream-child`, run the streaming bot and print its JSON."""
    ap = argparse.ArgumentParser(prog="bench/bench_workers.py", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="40 trivial jobs; 20 streams x 3 s")
    ap.add_argument("--mode", choices=("both", "workers", "embedded"), default="both")
    ap.add_argument("--json", action="store_true", help="one JSON object a figure")
    ap.add_argument("--stream-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--catalog", help=argparse.SUPPRESS)
    ap.add_argument("--jobs", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.stream_child:
        result = asyncio.run(
            _stream(args.url, Path(args.catalog), args.mode, args.jobs, args.seconds)
        )
        print(json.dumps(result))
        return 0
    modes = ("workers", "embedded") if args.mode == "both" else (args.mode,)
    stamp = (
        f"{datetime.now():%Y-%m-%d %H:%M}, nproc {os.cpu_count()}, load {os.getloadavg()[0]:.1f}"
    )
    print(f"# bench_workers.py {'--quick ' if args.quick else ''}— {stamp}")
    for figure in run(quick=args.quick, modes=modes):
        if args.json:
            print(json.dumps({"name": figure.name, "value": figure.value, "unit": figure.unit}))
        else:
            print(f"{figure.name}: {figure.shown} [{figure.verdict}] {figure.note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
