"""A worker's replies are kept in batches, in order, and none is lost (SPEC §8), on SQLite and
PostgreSQL alike (the writer is the worker's; the store under it is real)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from opsroom.model.jobs import JobState
from opsroom.store import Store
from opsroom.worker.replies import ReplyWriter


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    store = await Store.open(store_url)
    yield store
    await store.close()


async def new_job(store: Store) -> int:
    job = await store.create_job(
        command="storage migrate",
        params={},
        requester="local:alice",
        room="local:ops",
        state=JobState.RUNNING,
    )
    return job.id


async def test_a_reply_whose_sender_is_cancelled_is_kept_before_those_sent_after(
    store: Store,
) -> None:
    job_id = await new_job(store)
    writer = ReplyWriter(store)
    # As a job's live-output ticker, stopped as the job ends, while its batch is written.
    ticker = asyncio.create_task(writer.send(job_id, {"n": "live batch"}))
    await asyncio.sleep(0)  # one turn of the loop: the ticker has sent, and now waits
    ticker.cancel()
    await writer.send(job_id, {"n": "final reply"})
    await writer.send(job_id, None)
    with pytest.raises(asyncio.CancelledError):
        await ticker
    kept = await store.job_replies(job_id)
    assert kept == [(1, {"n": "live batch"}), (2, {"n": "final reply"}), (3, None)]


async def test_many_jobs_replies_share_transactions_and_keep_each_jobs_order(
    store: Store,
) -> None:
    jobs = [await new_job(store) for _ in range(10)]
    writer = ReplyWriter(store)

    async def job_says(job_id: int) -> None:
        for n in range(1, 21):  # a job sends one reply after another, as the collector does
            await writer.send(job_id, {"n": n})
        await writer.send(job_id, None)

    await asyncio.gather(*(job_says(j) for j in jobs))
    for job_id in jobs:
        kept = await store.job_replies(job_id)
        assert kept == [(n, {"n": n}) for n in range(1, 21)] + [(21, None)]
    assert writer.batches <= 21 + 1, "ten jobs' replies went together, not one transaction each"
    # Later replies are numbered after those kept, whoever keeps them.
    await store.add_job_reply(jobs[0], {"n": "late"})
    assert (await store.job_replies(jobs[0], after=21)) == [(22, {"n": "late"})]
