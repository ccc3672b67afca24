"""Across OS processes: one-at-a-time commands run strictly in turn, in request order."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
from pathlib import Path

from opsroom.model.jobs import JobState
from opsroom.store import Store

WORKER = """
import asyncio, sys, time
from pathlib import Path
from opsroom.store import Limits, Store, owner_id

db, go, name, count = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
LIMITS = Limits(total=8, per_command=1, per_user=8)

async def main():
    store = await Store.open(f"sqlite:///{db}")
    while not go.exists():  # start together, to collide as much as possible
        time.sleep(0.001)
    for _ in range(count):
        job = await store.create_job(command="storage migrate", params={}, requester=name,
                                     room="r")
        while not (await store.claim_job(job.id, owner=owner_id(), limits=LIMITS)).claimed:
            await asyncio.sleep(0.01)
        start = time.time()
        await asyncio.sleep(0.05)  # "runs"
        end = time.time()
        await store.finish_job(job.id, state="succeeded", exit_code=0)
        print(job.id, start, end, flush=True)
    await store.close()

asyncio.run(main())
"""

RUNS_EACH = 5


async def test_two_processes_with_concurrency_one_run_in_turn_in_request_order(
    tmp_path: Path,
) -> None:
    db, go = tmp_path / "opsroom.db", tmp_path / "go"
    await (await Store.open(f"sqlite:///{db}")).close()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(db), str(go), f"local:p{n}", str(RUNS_EACH)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    time.sleep(0.5)  # let both import and wait at the start line
    go.touch()
    results = await asyncio.gather(*(asyncio.to_thread(c.communicate, None, 60) for c in children))

    runs: list[tuple[float, float, int]] = []
    for child, (out, err) in zip(children, results, strict=True):
        assert child.returncode == 0, err
        for line in out.split("\n"):
            if line:
                job_id, began, ended = line.split()
                runs.append((float(began), float(ended), int(job_id)))
    runs.sort()
    assert len(runs) == 2 * RUNS_EACH
    # Start order is request (id) order, and each run ends before the next begins.
    assert [job_id for _, _, job_id in runs] == sorted(job_id for _, _, job_id in runs)
    for (_, end, _), (start, _, _) in itertools.pairwise(runs):
        assert end <= start
    # The two processes took turns rather than one running all of its jobs first.
    store = await Store.open(f"sqlite:///{db}")
    try:
        jobs = [await store.get_job(job_id) for _, _, job_id in runs]
    finally:
        await store.close()
    assert [job.state if job else None for job in jobs] == [JobState.SUCCEEDED] * len(runs)
    requesters = [job.requester for job in jobs if job is not None]
    assert sum(a != b for a, b in itertools.pairwise(requesters)) >= RUNS_EACH
