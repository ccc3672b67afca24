"""A job's claim on PostgreSQL reads the job before it waits for the store's lock (issue 14):
a job cancelled while its claim waits is never started, with or without its start entry.

The lock is held here by a plain connection, as another process's batch of job starts and
ends would hold it; the claim is the store's own, the cancel too.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from opsroom.model.audit import AuditEvent
from opsroom.model.jobs import Job, JobState
from opsroom.store import Store
from opsroom.store.audit import _AUDIT_LOCK_KEY
from opsroom.store.queue import Limits, Start
from pg_cluster import Cluster
from stores import new_store_url, sync_engine
from support import async_wait_for

WAITING = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def _entry(job: Job) -> AuditEvent:
    return AuditEvent(action="job.start", principal=job.requester, job_id=job.id)


def _someone_waits(holder: Connection) -> bool:
    return bool(holder.execute(text(WAITING)).scalar())


@pytest.mark.parametrize("audited", [True, False], ids=["with-entry", "without-entry"])
async def test_a_job_cancelled_while_its_claim_waits_for_the_lock_never_starts(
    postgres: Cluster, tmp_path: Path, audited: bool
) -> None:
    with new_store_url("postgresql", tmp_path, postgres) as url:
        async with await Store.open(url) as store:
            job = await store.create_job(
                command="c", params={}, requester="p", room="r", owner="me"
            )
            start = Start(token="t", audit=_entry if audited else None)
            with sync_engine(url) as engine, engine.connect() as holder:
                holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _AUDIT_LOCK_KEY})
                claim = asyncio.create_task(
                    store.claim_job(job.id, owner="me", limits=Limits(8, None, 8), start=start)
                )
                await async_wait_for(
                    lambda: _someone_waits(holder), 30, what="the claim to wait for the lock"
                )
                cancelled = await store.request_cancel(job.id, by="p")
                holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _AUDIT_LOCK_KEY})
                result = await asyncio.wait_for(claim, 30)
            stored = await store.get_job(job.id)
            trail = [r.event for r in await store.audit()]
    assert cancelled.state is JobState.CANCELLED
    assert not result.claimed
    assert result.job.state is JobState.CANCELLED, "the claim says why: it was cancelled"
    assert stored is not None
    assert (stored.state, stored.started_at, stored.process_token) == (
        JobState.CANCELLED,
        None,
        None,
    )
    assert [e for e in trail if e.job_id == job.id] == [], "no start entry for it"
