"""A job printing hundreds of megabytes does not fill the disk: the store keeps only the cap."""

from __future__ import annotations

from pathlib import Path

from opsroom.store import Limits, Store, owner_id
from opsroom.store.url import sqlite_path
from stores import backend_of, scalar_sql

CAP = 1_000_000
STREAM = 300_000_000  # bytes printed, newlines included
LINE = "x" * 99  # 100 bytes with its newline
BATCH = 1000
# The schema, row headers and indexes of ~10,000 kept lines: a SQLite file; PostgreSQL's
# job_output table (its rows carry bigger headers) with its index.
MARGIN = {"sqlite": 600_000, "postgresql": 1_000_000}


def store_size(url: str) -> int:
    """Bytes the store takes for output: the SQLite file, or PostgreSQL's output table."""
    if backend_of(url) == "sqlite":
        path = sqlite_path(url)
        assert path is not None
        return Path(path).stat().st_size
    return int(scalar_sql(url, "SELECT pg_total_relation_size('job_output')"))


async def test_a_300_mb_stream_keeps_the_database_within_the_cap(store_url: str) -> None:
    store = await Store.open(store_url)
    try:
        job = await store.create_job(command="noisy", params={}, requester="a", room="r")
        limits = Limits(total=1, per_command=None, per_user=1)
        assert (await store.claim_job(job.id, owner=owner_id(), limits=limits)).claimed
        batch = {job.id: [("stdout", LINE)] * BATCH}
        batches = STREAM // (len(LINE) + 1) // BATCH
        cut = [await store.record_outputs(batch, cap_bytes=CAP) for _ in range(batches)]

        kept = await store.output(job.id)
        done = await store.get_job(job.id)
    finally:
        await store.close()

    assert cut[0] == set()
    assert cut[-1] == {job.id}
    assert kept == [("stdout", LINE)] * (CAP // (len(LINE) + 1))  # the first lines, whole
    assert done is not None
    assert done.output_lines == batches * BATCH
    assert done.output_truncated
    counted = scalar_sql(store_url, "SELECT output_bytes FROM jobs WHERE id = :id", id=job.id)
    assert counted == STREAM
    assert store_size(store_url) < CAP + MARGIN[backend_of(store_url)]
