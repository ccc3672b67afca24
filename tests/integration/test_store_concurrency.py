"""Several opsroom processes share one SQLite file: distinct ids, no "database is locked"."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from opsroom.store import Store

WORKER = """
import asyncio, sys, time
from pathlib import Path
from opsroom.model.audit import AuditEvent
from opsroom.store import Store

db, go, name, count = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])

async def main():
    while not go.exists():  # start together, to collide as much as possible
        time.sleep(0.001)
    store = await Store.open(f"sqlite:///{db}")
    ids = []
    for i in range(count):
        job = await store.create_job(command="c", params={"i": i}, requester=name, room="r")
        await store.start_job(job.id, owner=name)
        await store.append_output(job.id, [("stdout", f"{name} {i}")])
        await store.append_audit(AuditEvent(action="job.start", principal=name, job_id=job.id))
        await store.finish_job(job.id, state="succeeded", exit_code=0)
        ids.append(job.id)
    await store.close()
    print(" ".join(map(str, ids)))

asyncio.run(main())
"""

PROCESSES = 4
JOBS_EACH = 25


async def test_processes_sharing_a_new_file_get_distinct_ids_and_an_intact_chain(
    tmp_path: Path,
) -> None:
    db, go = tmp_path / "opsroom.db", tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(db), str(go), f"local:p{n}", str(JOBS_EACH)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCESSES)
    ]
    time.sleep(0.3)  # let them all import and wait at the start line
    go.touch()
    results = await asyncio.gather(*(asyncio.to_thread(c.communicate, None, 60) for c in children))

    ids: list[int] = []
    for child, (out, err) in zip(children, results, strict=True):
        assert child.returncode == 0, err
        assert "locked" not in err
        ids += [int(x) for x in out.split()]
    assert len(ids) == PROCESSES * JOBS_EACH
    assert sorted(ids) == list(range(1, PROCESSES * JOBS_EACH + 1))

    store = await Store.open(f"sqlite:///{db}")
    try:
        assert await store.verify_audit() is None
        assert len(await store.audit(limit=1000)) == PROCESSES * JOBS_EACH
        job = await store.get_job(ids[-1])
        assert job is not None
        assert await store.output(job.id) == [("stdout", f"{job.requester} {job.params['i']}")]
    finally:
        await store.close()
