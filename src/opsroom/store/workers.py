"""Workers (SPEC §8): who serves which queue and whether it still beats, the jobs handed to
a queue, and what a worker says in a job's room until the bot has passed it on.

Heartbeats are written and judged with the database's clock, never a host's: workers on
hosts whose clocks disagree are still compared fairly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from opsroom.errors import StoreError
from opsroom.model.audit import AuditEvent
from opsroom.model.jobs import Job, JobState
from opsroom.model.workers import Worker
from opsroom.store.audit import audited, insert_audit
from opsroom.store.database import Part
from opsroom.store.engine import insert_new
from opsroom.store.jobs import fetch_job, job_from_row
from opsroom.store.notify import Topic, send_notices
from opsroom.store.schema import UTCDateTime, job_replies, jobs, remote_jobs, utcnow, workers


class Workers(Part):
    """The worker registry, jobs handed to queues, and the replies workers leave."""

    # -- the registry and heartbeats ---------------------------------------------------------

    async def register_worker(
        self,
        *,
        name: str,
        queue: str,
        host: str,
        os: str,
        version: str,
        catalog_commit: str | None,
        owner: str,
    ) -> Worker:
        """Record a worker that starts now; earlier stopped or lost workers of that name go."""
        async with self._db.write(f"register worker {name}") as conn:
            now = await _db_now(conn)
            # A restarted worker takes its name back; a live namesake is left to be listed.
            await conn.execute(
                workers.delete().where(
                    workers.c.name == name,
                    (workers.c.stopped_at.is_not(None)) | (workers.c.lost_at.is_not(None)),
                )
            )
            result = await conn.execute(
                insert(workers).values(
                    name=name,
                    queue=queue,
                    host=host,
                    os=os,
                    version=version,
                    catalog_commit=catalog_commit,
                    owner=owner,
                    started_at=now,
                    last_heartbeat=now,
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return await _fetch_worker(conn, int(key[0]))

    async def worker_beat(self, worker_id: int, *, catalog_commit: str | None) -> Worker:
        """Record a heartbeat (and the catalog commit the worker has now); returns its row.

        A worker already declared lost stays lost (`Worker.lost`): its jobs were interrupted
        and it must not carry on as if nothing happened.
        """
        async with self._db.write(f"record a heartbeat of worker {worker_id}") as conn:
            now = await _db_now(conn)
            await conn.execute(
                update(workers)
                .where(workers.c.id == worker_id, workers.c.lost_at.is_(None))
                .values(last_heartbeat=now, catalog_commit=catalog_commit)
            )
            return await _fetch_worker(conn, worker_id)

    async def stop_worker(self, worker_id: int) -> None:
        """Record that a worker stopped cleanly (it ran nothing more after this)."""
        async with self._db.write(f"record worker {worker_id} stopped") as conn:
            now = await _db_now(conn)
            await conn.execute(
                update(workers)
                .where(workers.c.id == worker_id, workers.c.stopped_at.is_(None))
                .values(stopped_at=now)
            )

    async def list_workers(self, *, stopped: bool = False) -> list[Worker]:
        """Workers by queue and name, each with the jobs it runs now; `stopped` ones too."""
        query = select(workers).order_by(workers.c.queue, workers.c.name, workers.c.id)
        if not stopped:
            query = query.where(workers.c.stopped_at.is_(None))
        async with self._db.read("list workers") as conn:
            rows = (await conn.execute(query)).all()
            owners = [str(r.owner) for r in rows]
            running: dict[str, list[int]] = {}
            if owners:
                found = await conn.execute(
                    select(jobs.c.id, jobs.c.owner)
                    .where(jobs.c.state == JobState.RUNNING.value, jobs.c.owner.in_(owners))
                    .order_by(jobs.c.id)
                )
                for job_id, owner in found:
                    running.setdefault(str(owner), []).append(int(job_id))
        return [_worker(r, tuple(running.get(str(r.owner), ()))) for r in rows]

    async def live_workers(self, queue: str, *, lost_after: float) -> int:
        """How many workers of `queue` beat within the last `lost_after` seconds."""
        async with self._db.read(f"count the workers of queue {queue}") as conn:
            cutoff = await _db_now(conn) - timedelta(seconds=lost_after)
            count = await conn.scalar(
                select(func.count()).where(
                    workers.c.queue == queue,
                    workers.c.stopped_at.is_(None),
                    workers.c.lost_at.is_(None),
                    workers.c.last_heartbeat >= cutoff,
                )
            )
        return int(count or 0)

    async def interrupt_lost_workers(self, *, lost_after: float) -> list[Job]:
        """Workers silent for `lost_after` s are lost; their running jobs become `interrupted`.

        Each job's end and its audit entry commit together, and only a job still `running`
        under that worker is touched, so however many processes look at once, each job is
        interrupted once. Returns the jobs this call interrupted.
        """
        async with self._db.write("look for lost workers") as conn:
            now = await _db_now(conn)
            await conn.execute(
                update(workers)
                .where(
                    workers.c.stopped_at.is_(None),
                    workers.c.lost_at.is_(None),
                    workers.c.last_heartbeat < now - timedelta(seconds=lost_after),
                )
                .values(lost_at=now)
            )
        async with self._db.read("list the jobs of lost workers") as conn:
            rows = (
                await conn.execute(
                    select(jobs.c.id, workers.c.owner, workers.c.name, workers.c.host)
                    .join(workers, workers.c.owner == jobs.c.owner)
                    .where(jobs.c.state == JobState.RUNNING.value, workers.c.lost_at.is_not(None))
                    .order_by(jobs.c.id)
                )
            ).all()
        interrupted = []
        for job_id, owner, name, host in rows:
            why = (
                f"worker {name} on {host} stopped sending heartbeats while running it; "
                "it was not re-run"
            )
            async with audited(self._db, f"mark job {job_id} interrupted") as conn:
                result = await conn.execute(
                    update(jobs)
                    .where(
                        jobs.c.id == job_id,
                        jobs.c.state == JobState.RUNNING.value,
                        jobs.c.owner == owner,
                    )
                    .values(state=JobState.INTERRUPTED.value, finished_at=utcnow(), error=why)
                )
                job = await fetch_job(conn, int(job_id)) if result.rowcount == 1 else None
                if job is not None:
                    await insert_audit(conn, _interrupted(job, why))
                    await send_notices(conn, Topic.END, [int(job_id)])  # a `cancel` waits for it
            if job is not None:
                interrupted.append(job)
        return interrupted

    async def jobs_of_lost_workers(self, host: str) -> list[Job]:
        """Interrupted jobs of the workers on `host` found lost (to end what they left)."""
        query = (
            select(jobs)
            .join(workers, workers.c.owner == jobs.c.owner)
            .where(
                workers.c.host == host,
                workers.c.lost_at.is_not(None),
                jobs.c.state == JobState.INTERRUPTED.value,
            )
            .order_by(jobs.c.id)
        )
        async with self._db.read(f"list the jobs of lost workers on {host}") as conn:
            return [job_from_row(row) for row in (await conn.execute(query)).all()]

    # -- jobs handed to a queue ----------------------------------------------------------------

    async def hand_to_queue(self, job_id: int, queue: str) -> bool:
        """Record that a job goes to `queue`; False when it was handed over before."""
        values = {"job_id": job_id, "queue": queue, "deferred_at": utcnow()}
        async with self._db.write(f"hand job {job_id} to queue {queue}") as conn:
            result = await conn.execute(insert_new(conn, remote_jobs, values, "job_id"))
        return result.rowcount == 1

    async def set_task(self, job_id: int, task_id: int) -> None:
        """Record the job's task in the workers' job queue (to abort it)."""
        async with self._db.write(f"record the task of job {job_id}") as conn:
            await conn.execute(
                update(remote_jobs).where(remote_jobs.c.job_id == job_id).values(task_id=task_id)
            )

    async def remote_job(self, job_id: int) -> tuple[str, int | None] | None:
        """(queue, task id) of a job handed to a queue; None for a job that runs locally."""
        query = select(remote_jobs.c.queue, remote_jobs.c.task_id).where(
            remote_jobs.c.job_id == job_id
        )
        async with self._db.read(f"read the queue of job {job_id}") as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return str(row.queue), None if row.task_id is None else int(row.task_id)

    # -- what a worker says in the job's room ---------------------------------------------------

    async def add_job_reply(self, job_id: int, reply: Mapping[str, Any] | None) -> None:
        """Keep one reply (wire form) for the bot to pass on; None: the worker is done."""
        await self.add_job_replies([(job_id, reply)])

    async def add_job_replies(
        self, replies: Sequence[tuple[int, Mapping[str, Any] | None]]
    ) -> None:
        """Keep replies of any jobs (in order) in one transaction, and tell the bots.

        Each job's replies are numbered after those kept before; None says its worker is
        done. One notice per job goes out when the transaction commits, so a bot woken
        by it finds them (`notify.py`).
        """
        if not replies:
            return
        ids = sorted({job_id for job_id, _ in replies})
        async with self._db.write(f"keep replies of jobs {_some(ids)}") as conn:
            # The job rows are locked first (in id order), so two writers of one job's
            # replies cannot take the same numbers.
            await conn.execute(
                select(jobs.c.id).where(jobs.c.id.in_(ids)).order_by(jobs.c.id).with_for_update()
            )
            kept = await conn.execute(
                select(job_replies.c.job_id, func.max(job_replies.c.seq))
                .where(job_replies.c.job_id.in_(ids))
                .group_by(job_replies.c.job_id)
            )
            last = {int(job_id): int(seq) for job_id, seq in kept}
            rows = []
            for job_id, reply in replies:
                seq = last[job_id] = last.get(job_id, 0) + 1
                data = None if reply is None else json.dumps(dict(reply), ensure_ascii=False)
                rows.append({"job_id": job_id, "seq": seq, "reply": data})
            await conn.execute(insert(job_replies), rows)
            await send_notices(conn, Topic.REPLIES, ids)

    async def job_replies(
        self, job_id: int, *, after: int = 0
    ) -> list[tuple[int, dict[str, Any] | None]]:
        """The replies kept for a job after number `after`, in order (None: the worker is done)."""
        query = (
            select(job_replies.c.seq, job_replies.c.reply)
            .where(job_replies.c.job_id == job_id, job_replies.c.seq > after)
            .order_by(job_replies.c.seq)
        )
        async with self._db.read(f"read the replies of job {job_id}") as conn:
            rows = (await conn.execute(query)).all()
        return [(int(seq), None if data is None else json.loads(data)) for seq, data in rows]


async def _db_now(conn: AsyncConnection) -> datetime:
    """The database's clock (every host's heartbeat is measured against the same one)."""
    now = await conn.scalar(select(func.now(type_=UTCDateTime())))
    if not isinstance(now, datetime):
        raise StoreError("the database did not say what time it is")
    return now


async def _fetch_worker(conn: AsyncConnection, worker_id: int) -> Worker:
    row = (await conn.execute(select(workers).where(workers.c.id == worker_id))).first()
    if row is None:
        raise StoreError(f"worker {worker_id} is not registered")
    return _worker(row, ())


def _some(ids: list[int]) -> str:
    """Job ids for an error message: the first few, and how many more."""
    shown = ", ".join(str(i) for i in ids[:5])
    return shown if len(ids) <= 5 else f"{shown} and {len(ids) - 5} more"


def _worker(row: Row[Any], running: tuple[int, ...]) -> Worker:
    return Worker(
        id=int(row.id),
        name=str(row.name),
        queue=str(row.queue),
        host=str(row.host),
        os=str(row.os),
        version=str(row.version),
        catalog_commit=row.catalog_commit,
        owner=str(row.owner),
        started_at=row.started_at,
        last_heartbeat=row.last_heartbeat,
        running_jobs=running,
        lost=row.lost_at,
        stopped=row.stopped_at,
    )


def _interrupted(job: Job, why: str) -> AuditEvent:
    """The `job.end` entry of a job whose worker was lost before it could write one."""
    return AuditEvent(
        action="job.end",
        principal=job.requester,
        room=job.room,
        command=job.command,
        job_id=job.id,
        outcome=JobState.INTERRUPTED.value,
        reason=why,
        catalog_commit=job.catalog_commit,
        script_hash=job.script_hash,
    )
