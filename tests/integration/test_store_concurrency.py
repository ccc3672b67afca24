"""Several opsroom processes share one new store: distinct ids, no "database is locked", and
an audit chain written by all of them at once that is intact and in order."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys

from opsroom.store import Store

WORKER = """
import asyncio, sys, time
from pathlib import Path
from opsroom.model.audit import AuditEvent
from opsroom.store import Limits, Store

NO_LIMITS = Limits(total=1000, per_command=None, per_user=1000)
url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])

async def main():
    print("ready", flush=True)
    sys.stdin.readline()  # the start line: all workers go at once, to collide the most
    store = await Store.open(url)
    ids = []
    for i in range(count):
        job = await store.create_job(command="c", params={"i": i}, requester=name, room="r")
        assert (await store.claim_job(job.id, owner=name, limits=NO_LIMITS)).claimed
        await store.record_outputs({job.id: [("stdout", f"{name} {i}")]}, cap_bytes=1000)
        await store.append_audit(AuditEvent(action="job.start", principal=name, job_id=job.id))
        await store.finish_job(job.id, state="succeeded", exit_code=0)
        ids.append(job.id)
    await store.close()
    print(" ".join(map(str, ids)))

asyncio.run(main())
"""

PROCESSES = 4
JOBS_EACH = 25


def _release_together(children: list[subprocess.Popen[str]]) -> None:
    """Wait until every worker stands at the start line, then let them all go at once."""
    for child in children:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n", child.communicate(timeout=60)[1]
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()


async def test_processes_sharing_a_new_store_get_distinct_ids_and_an_intact_chain(
    empty_store_url: str,
) -> None:
    # Every process opens the store at once: they also race to create its tables.
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, empty_store_url, f"local:p{n}", str(JOBS_EACH)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCESSES)
    ]
    _release_together(children)
    results = await asyncio.gather(*(asyncio.to_thread(c.communicate, None, 60) for c in children))

    ids: list[int] = []
    for child, (out, err) in zip(children, results, strict=True):
        assert child.returncode == 0, err
        assert "locked" not in err
        ids += [int(x) for x in out.split()]
    assert len(ids) == PROCESSES * JOBS_EACH
    assert sorted(ids) == list(range(1, PROCESSES * JOBS_EACH + 1))

    store = await Store.open(empty_store_url)
    try:
        assert (await store.check_audit()).intact
        trail = await store.audit(limit=1000)
        assert len(trail) == PROCESSES * JOBS_EACH
        # Entries were chained in the order they were written: ids and times agree.
        for newer, older in itertools.pairwise(trail):
            assert (newer.id, newer.prev_hash) == (older.id + 1, older.hash)
            assert newer.at >= older.at
        assert {r.event.principal for r in trail} == {f"local:p{n}" for n in range(PROCESSES)}
        job = await store.get_job(ids[-1])
        assert job is not None
        assert await store.output(job.id) == [("stdout", f"{job.requester} {job.params['i']}")]
    finally:
        await store.close()
