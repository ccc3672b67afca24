"""The outbox: replies kept while a chat platform is unreachable (SPEC §5.2).

Rows are delivered oldest first and deleted once delivered. A live view of a job (its
status message, or its latest progress) replaces the undelivered older views of the same
job in the same room, so a job that ran while the platform was away is summarised by its
last view rather than replayed update by update.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from opsroom.store.database import Part
from opsroom.store.schema import outbox, utcnow

LIMIT = 500  # replies kept per adapter; the oldest go first when more arrive


@dataclass(frozen=True, slots=True)
class KeptReply:
    """A reply waiting for its platform: where it goes and what it says (wire JSON)."""

    id: int
    adapter: str
    room: str
    thread_id: str | None
    job_id: int | None
    live: bool
    reply: Mapping[str, Any]
    created_at: datetime


class Outbox(Part):
    """Replies waiting for their chat platform."""

    async def outbox_put(
        self,
        adapter: str,
        room: str,
        thread_id: str | None,
        reply: Mapping[str, Any],
        *,
        job_id: int | None = None,
        live: bool = False,
    ) -> int:
        """Keep a reply (wire JSON) for `adapter`; a live view replaces older ones of its job."""
        async with self._db.write(f"keep a reply for {adapter}") as conn:
            return await put(
                conn,
                adapter=adapter,
                room=room,
                thread_id=thread_id,
                reply=reply,
                job_id=job_id,
                live=live,
                now=utcnow(),
            )

    async def outbox_pending(self, adapter: str, *, limit: int = 100) -> list[KeptReply]:
        """Replies waiting for `adapter`, oldest first."""
        async with self._db.read(f"read the replies kept for {adapter}") as conn:
            return await pending(conn, adapter=adapter, limit=limit)

    async def outbox_count(self, adapter: str) -> int:
        """How many replies wait for `adapter`."""
        async with self._db.read(f"count the replies kept for {adapter}") as conn:
            return await count(conn, adapter=adapter)

    async def outbox_done(self, ids: Collection[int]) -> None:
        """Forget kept replies that were delivered."""
        async with self._db.write("forget delivered replies") as conn:
            await done(conn, ids)


# --- the SQL, each inside the caller's transaction ----------------------------------------


async def put(
    conn: AsyncConnection,
    *,
    adapter: str,
    room: str,
    thread_id: str | None,
    reply: Mapping[str, Any],
    job_id: int | None,
    live: bool,
    now: datetime,
    limit: int = LIMIT,
) -> int:
    """Keep one reply; a live view drops the older undelivered views it replaces."""
    if live and job_id is not None:
        await conn.execute(
            delete(outbox).where(
                outbox.c.adapter == adapter,
                outbox.c.room == room,
                outbox.c.job_id == job_id,
                outbox.c.live.is_(True),
            )
        )
    result = await conn.execute(
        insert(outbox).values(
            adapter=adapter,
            room=room,
            thread_id=thread_id,
            job_id=job_id,
            live=live,
            reply=json.dumps(reply, ensure_ascii=False, separators=(",", ":")),
            created_at=now,
        )
    )
    kept_id = result.inserted_primary_key
    assert kept_id is not None
    # The limit bounds a long outage; beyond it the oldest replies are the least useful.
    oldest_kept = (
        select(outbox.c.id)
        .where(outbox.c.adapter == adapter)
        .order_by(outbox.c.id.desc())
        .offset(limit - 1)
        .limit(1)
        .scalar_subquery()
    )
    await conn.execute(delete(outbox).where(outbox.c.adapter == adapter, outbox.c.id < oldest_kept))
    return int(kept_id[0])


async def pending(conn: AsyncConnection, *, adapter: str, limit: int) -> list[KeptReply]:
    """Replies waiting for `adapter`, oldest first."""
    query = select(outbox).where(outbox.c.adapter == adapter).order_by(outbox.c.id).limit(limit)
    return [_kept(row) for row in (await conn.execute(query)).all()]


async def count(conn: AsyncConnection, *, adapter: str) -> int:
    """How many replies wait for `adapter`."""
    query = select(func.count()).select_from(outbox).where(outbox.c.adapter == adapter)
    return int((await conn.execute(query)).scalar_one())


async def done(conn: AsyncConnection, ids: Collection[int]) -> None:
    """Forget delivered replies (ids already gone are ignored)."""
    if ids:
        await conn.execute(delete(outbox).where(outbox.c.id.in_(list(ids))))


def _kept(row: Row[Any]) -> KeptReply:
    return KeptReply(
        id=row.id,
        adapter=row.adapter,
        room=row.room,
        thread_id=row.thread_id,
        job_id=row.job_id,
        live=bool(row.live),
        reply=json.loads(row.reply),
        created_at=row.created_at,
    )
