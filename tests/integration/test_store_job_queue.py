"""Across OS processes: one-at-a-time commands run strictly in turn, in request order."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys

from opsroom.model.jobs import JobState
from opsroom.store import Store

WORKER = """
import asyncio, sys, time
from pathlib import Path
from opsroom.store import Limits, Store, owner_id

url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
LIMITS = Limits(total=8, per_command=1, per_user=8)

async def main():
    store = await Store.open(url)
    print("ready", flush=True)
    sys.stdin.readline()  # the start line: all workers go at once, to collide the most
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


def _release_together(children: list[subprocess.Popen[str]]) -> None:
    """Wait until every worker stands at the start line, then let them all go at once."""
    for child in children:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n", child.communicate(timeout=60)[1]
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()


async def test_two_processes_with_concurrency_one_run_in_turn_in_request_order(
    store_url: str,
) -> None:
    await (await Store.open(store_url)).close()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, store_url, f"local:p{n}", str(RUNS_EACH)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    _release_together(children)
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
    store = await Store.open(store_url)
    try:
        jobs = [await store.get_job(job_id) for _, _, job_id in runs]
    finally:
        await store.close()
    assert [job.state if job else None for job in jobs] == [JobState.SUCCEEDED] * len(runs)
    requesters = [job.requester for job in jobs if job is not None]
    assert sum(a != b for a, b in itertools.pairwise(requesters)) >= RUNS_EACH
