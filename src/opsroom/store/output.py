"""What jobs produce: output lines kept within a cap and counted, structured events, and
the files jobs offer (attachments).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import BigInteger, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from opsroom.errors import StoreError
from opsroom.store.database import Part
from opsroom.store.prepared import Prepared
from opsroom.store.schema import attachments, job_events, job_output, jobs, utcnow


class Output(Part):
    """Output lines, events and attachments of jobs."""

    async def record_outputs(
        self,
        batches: Mapping[int, Sequence[tuple[str, str]]],
        *,
        cap_bytes: int,
        pids: Mapping[int, int] | None = None,
    ) -> set[int]:
        """Add (stream, text) lines of many jobs in one transaction; the ids no longer kept.

        Each job's kept output stays within `cap_bytes`. Every line is counted
        (`output_lines`, `output_bytes`: UTF-8 text plus newline); from the first line
        that does not fit, nothing more is kept and the job is marked `output_truncated`.
        `pids` (job id: process) are recorded in the same transaction (`record_pids`).
        """
        done: set[int] = set()
        batches = {job_id: lines for job_id, lines in batches.items() if lines}
        if not batches and not pids:
            return done
        async with self._db.write(f"keep output of {len(batches)} jobs") as conn:
            for job_id, lines in batches.items():
                if not await record_lines(conn, job_id, lines, cap_bytes):
                    done.add(job_id)
            if pids:
                await record_pids(conn, pids)
        return done

    async def output(self, job_id: int, *, tail: int | None = None) -> list[tuple[str, str]]:
        """The job's output lines in order; with `tail`, only the last so many."""
        query = select(job_output.c.stream, job_output.c.text).where(job_output.c.job_id == job_id)
        if tail is None:
            query = query.order_by(job_output.c.seq)
        else:
            query = query.order_by(job_output.c.seq.desc()).limit(max(tail, 0))
        async with self._db.read(f"read output of job {job_id}") as conn:
            rows = [(str(r.stream), str(r.text)) for r in await conn.execute(query)]
        return rows if tail is None else rows[::-1]

    async def append_events(self, job_id: int, events: Sequence[Mapping[str, Any]]) -> None:
        """Add structured events (progress, table, status, ...) as JSON objects, in order."""
        if not events:
            return
        async with self._db.write(f"keep events of job {job_id}") as conn:
            first = await _next_event_seq(conn, job_id)
            await conn.execute(
                insert(job_events),
                [
                    {
                        "job_id": job_id,
                        "seq": first + i,
                        "data": json.dumps(dict(ev), ensure_ascii=False, default=str),
                    }
                    for i, ev in enumerate(events)
                ],
            )

    async def events(self, job_id: int) -> list[dict[str, Any]]:
        """The job's structured events in the order they were added."""
        query = (
            select(job_events.c.data)
            .where(job_events.c.job_id == job_id)
            .order_by(job_events.c.seq)
        )
        async with self._db.read(f"read events of job {job_id}") as conn:
            return [json.loads(data) for data in (await conn.scalars(query))]

    async def add_attachment(
        self, job_id: int, *, name: str, content_type: str, data: bytes
    ) -> int:
        """Keep a file the job offered; returns the attachment's id."""
        async with self._db.write(f"keep a file of job {job_id}") as conn:
            if await conn.scalar(select(jobs.c.id).where(jobs.c.id == job_id)) is None:
                raise StoreError(f"job {job_id} does not exist")
            result = await conn.execute(
                insert(attachments).values(
                    job_id=job_id,
                    name=name,
                    content_type=content_type,
                    size=len(data),
                    data=data,
                    created_at=utcnow(),
                )
            )
            key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    async def attachments(self, job_id: int) -> list[tuple[int, str, str, int]]:
        """The job's files as (id, name, content_type, size), in the order they came."""
        query = (
            select(
                attachments.c.id,
                attachments.c.name,
                attachments.c.content_type,
                attachments.c.size,
            )
            .where(attachments.c.job_id == job_id)
            .order_by(attachments.c.id)
        )
        async with self._db.read(f"list files of job {job_id}") as conn:
            rows = (await conn.execute(query)).all()
        return [(int(r.id), str(r.name), str(r.content_type), int(r.size)) for r in rows]

    async def attachment_data(self, attachment_id: int) -> bytes | None:
        """The content of one attachment, or None when there is no such attachment."""
        query = select(attachments.c.data).where(attachments.c.id == attachment_id)
        async with self._db.read(f"read attachment {attachment_id}") as conn:
            data = await conn.scalar(query)
        return None if data is None else bytes(data)


async def _next_event_seq(conn: AsyncConnection, job_id: int) -> int:
    # Lock the job row where the backend can (PostgreSQL), so two appenders to one job
    # cannot pick the same sequence number; SQLite is already serialised by BEGIN IMMEDIATE.
    await conn.execute(_LOCK_JOB, {"job_id": job_id})
    last = await conn.scalar(_LAST_EVENT, {"job_id": job_id})
    return 1 if last is None else int(last) + 1


# The statements of keeping a job's lines, built once: values are bound at execution, so
# each run finds its compiled form in the cache without building or keying it anew.
_JOB_ID = bindparam("job_id", type_=jobs.c.id.type)
_LOCK_JOB = select(jobs.c.id).where(jobs.c.id == _JOB_ID).with_for_update()
_LAST_EVENT = select(func.max(job_events.c.seq)).where(job_events.c.job_id == _JOB_ID)
# What the cap leaves of a job's output, and its last kept line's number: one statement.
_CAP = Prepared(
    select(
        jobs.c.output_stored_bytes,
        jobs.c.output_truncated,
        select(func.max(job_output.c.seq))
        .where(job_output.c.job_id == jobs.c.id)
        .scalar_subquery()
        .label("last_seq"),
    )
    .where(jobs.c.id == _JOB_ID)
    .with_for_update(of=jobs)
)
_INSERT_LINES = Prepared(insert(job_output))
_SET_PID = Prepared(update(jobs).where(jobs.c.id == _JOB_ID))  # SET pid, from the values
# Adds to the counters; `output_truncated` is set too when the values at execution say so.
_COUNT = Prepared(
    update(jobs)
    .where(jobs.c.id == _JOB_ID)
    .values(
        output_lines=jobs.c.output_lines + bindparam("n_lines", type_=BigInteger),
        output_bytes=jobs.c.output_bytes + bindparam("n_bytes", type_=BigInteger),
        output_stored_bytes=jobs.c.output_stored_bytes + bindparam("n_kept", type_=BigInteger),
    )
)


async def record_lines(
    conn: AsyncConnection, job_id: int, lines: Sequence[tuple[str, str]], cap_bytes: int
) -> bool:
    """Keep what fits of `lines` under the cap, count them all; True while still keeping.

    Inside the caller's write transaction (a job's last lines are kept with its end).
    """
    sizes = [line_bytes(line) for _, line in lines]
    # The job row locked (PostgreSQL): the next sequence number is ours alone.
    row = await _CAP.first(conn, {"job_id": job_id})
    if row is None:
        raise StoreError(f"job {job_id} does not exist")
    truncated = bool(row.output_truncated)
    keep, room = 0, cap_bytes - int(row.output_stored_bytes)
    if not truncated:
        for size in sizes:
            if size > room:
                truncated = True
                break
            room -= size
            keep += 1
    if keep:
        first = 1 if row.last_seq is None else int(row.last_seq) + 1
        await _INSERT_LINES.many(
            conn,
            [
                {"job_id": job_id, "seq": first + i, "stream": stream, "text": line}
                for i, (stream, line) in enumerate(lines[:keep])
            ],
        )
    values: dict[str, Any] = {
        "job_id": job_id,
        "n_lines": len(lines),
        "n_bytes": sum(sizes),
        "n_kept": sum(sizes[:keep]),
    }
    if truncated:
        values["output_truncated"] = True
    await _COUNT.all(conn, values)
    return not truncated


async def record_pids(conn: AsyncConnection, pids: Mapping[int, int]) -> None:
    """Record running jobs' processes (group leaders) inside the caller's transaction.

    Informational (shown with the job, a hint for what ends it should its owner die): a
    job gone meanwhile is skipped, not an error. Written with a batch of output or with
    the job's end (`engine/output.py`), never in a transaction of its own.
    """
    if pids:
        await _SET_PID.many(conn, [{"job_id": i, "pid": pid} for i, pid in pids.items()])


def line_bytes(line: str) -> int:
    """What a line costs against the cap: its UTF-8 bytes and the newline it came with."""
    if line.isascii():
        return len(line) + 1
    return len(line.encode("utf-8", "surrogatepass")) + 1
