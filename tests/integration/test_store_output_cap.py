"""A job printing hundreds of megabytes does not fill the disk: the store keeps only the cap."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from opsroom.store import Store, owner_id

CAP = 1_000_000
STREAM = 300_000_000  # bytes printed, newlines included
LINE = "x" * 99  # 100 bytes with its newline
BATCH = 1000
MARGIN = 600_000  # the schema, row headers and indexes of ~10,000 kept lines


async def test_a_300_mb_stream_keeps_the_database_within_the_cap(tmp_path: Path) -> None:
    db = tmp_path / "opsroom.db"
    store = await Store.open(f"sqlite:///{db}")
    try:
        job = await store.create_job(command="noisy", params={}, requester="a", room="r")
        await store.start_job(job.id, owner=owner_id())
        batch = [("stdout", LINE)] * BATCH
        batches = STREAM // (len(LINE) + 1) // BATCH
        storing = [await store.record_output(job.id, batch, cap_bytes=CAP) for _ in range(batches)]

        kept = await store.output(job.id)
        done = await store.get_job(job.id)
    finally:
        await store.close()

    assert storing[0] is True
    assert storing[-1] is False
    assert kept == [("stdout", LINE)] * (CAP // (len(LINE) + 1))  # the first lines, whole
    assert done is not None
    assert done.output_lines == batches * BATCH
    assert done.output_truncated
    with sqlite3.connect(db) as raw:
        counted = raw.execute("SELECT output_bytes FROM jobs WHERE id = ?", (job.id,)).fetchone()
    raw.close()
    assert counted == (STREAM,)
    assert db.stat().st_size < CAP + MARGIN
