"""Schedules (SPEC §5.7): what runs when, and which due times were dealt with.

Every change is written with its audit entry in one transaction: no audit, no change.
A due time is claimed by moving the schedule's `cursor` past it with a compare-and-set on
`version`: of several processes that saw the same version, exactly one update matches a
row, so each due time is fired (or denied, or reported missed) by one process only.
Pausing, resuming and removing bump the version too, so a claim computed before such a
change matches nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from opsroom.model.audit import AuditEvent
from opsroom.model.schedules import Schedule
from opsroom.store.audit import audited, insert_audit
from opsroom.store.database import Part
from opsroom.store.schema import schedules

RESULT_CHARS = 500  # the column's width


class Schedules(Part):
    """Schedules, each change audited in the same transaction."""

    async def add_schedule(
        self,
        *,
        cron: str,
        tz: str,
        command: str,
        room: str,
        creator: str,
        now: datetime,
        audit: Callable[[Schedule], AuditEvent],
    ) -> Schedule:
        """Record a new schedule together with the audit entry `audit` makes of it."""
        async with audited(self._db, "record a schedule") as conn:
            schedule = await create(
                conn, cron=cron, tz=tz, command=command, room=room, creator=creator, now=now
            )
            await insert_audit(conn, audit(schedule))
        return schedule

    async def schedule(self, schedule_id: int) -> Schedule | None:
        """One schedule, or None."""
        async with self._db.read(f"read schedule {schedule_id}") as conn:
            return await get(conn, schedule_id)

    async def schedules(
        self, *, room: str | None = None, creator: str | None = None, active: bool = False
    ) -> list[Schedule]:
        """Schedules in id order, optionally of one room or creator, or only unpaused ones."""
        async with self._db.read("list schedules") as conn:
            return await find(conn, room=room, creator=creator, active=active)

    async def count_schedules(self, *, creator: str) -> int:
        """How many schedules `creator` has."""
        async with self._db.read("count schedules") as conn:
            return await count(conn, creator=creator)

    async def remove_schedule(self, schedule_id: int, *, audit: AuditEvent) -> bool:
        """Delete a schedule and record `audit`; False (nothing recorded) when it was gone."""
        async with audited(self._db, f"remove schedule {schedule_id}") as conn:
            removed = await remove(conn, schedule_id)
            if removed:
                await insert_audit(conn, audit)
        return removed

    async def pause_schedule(
        self, schedule_id: int, *, paused: bool, now: datetime, audit: AuditEvent
    ) -> Schedule | None:
        """Pause (or resume) and record `audit`; None, nothing recorded, when nothing changed."""
        async with audited(self._db, f"pause or resume schedule {schedule_id}") as conn:
            changed = await set_paused(conn, schedule_id, paused=paused, now=now)
            if changed is not None:
                await insert_audit(conn, audit)
        return changed

    async def claim_schedule(
        self,
        schedule_id: int,
        *,
        version: int,
        cursor: datetime,
        due: datetime | None,
        result: str,
        audit: Sequence[AuditEvent],
    ) -> bool:
        """Claim the due times up to `cursor` (see `claim`) and record `audit`.

        True for exactly one process per version; the others record nothing.
        """
        async with audited(self._db, f"claim schedule {schedule_id}") as conn:
            claimed = await claim(
                conn, schedule_id, version=version, cursor=cursor, due=due, result=result
            )
            if claimed:
                for event in audit:
                    await insert_audit(conn, event)
        return claimed

    async def schedule_ran(
        self, schedule_id: int, *, due: datetime, job_id: int | None, result: str
    ) -> None:
        """Record what came of the firing at `due`."""
        async with self._db.write(f"record what schedule {schedule_id} ran") as conn:
            await record_result(conn, schedule_id, due=due, job_id=job_id, result=result)


# --- the SQL, each inside the caller's transaction ----------------------------------------


async def create(
    conn: AsyncConnection,
    *,
    cron: str,
    tz: str,
    command: str,
    room: str,
    creator: str,
    now: datetime,
) -> Schedule:
    """Record a new, active schedule; nothing due at or before `now` ever fires."""
    result = await conn.execute(
        insert(schedules).values(
            cron=cron,
            tz=tz,
            command=command,
            room=room,
            creator=creator,
            created_at=now,
            paused=False,
            cursor=now,
            version=0,
            last_result="",
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    found = await get(conn, int(key[0]))
    assert found is not None
    return found


async def get(conn: AsyncConnection, schedule_id: int) -> Schedule | None:
    """One schedule, or None."""
    row = (await conn.execute(select(schedules).where(schedules.c.id == schedule_id))).first()
    return None if row is None else _schedule(row)


async def find(
    conn: AsyncConnection,
    *,
    room: str | None = None,
    creator: str | None = None,
    active: bool = False,
) -> list[Schedule]:
    """Schedules in id order: of `room`, made by `creator`, only unpaused ones (`active`)."""
    query = select(schedules).order_by(schedules.c.id)
    if room is not None:
        query = query.where(schedules.c.room == room)
    if creator is not None:
        query = query.where(schedules.c.creator == creator)
    if active:
        query = query.where(schedules.c.paused.is_(False))
    return [_schedule(row) for row in (await conn.execute(query)).all()]


async def count(conn: AsyncConnection, *, creator: str) -> int:
    """How many schedules `creator` has."""
    query = select(func.count()).select_from(schedules).where(schedules.c.creator == creator)
    return int((await conn.execute(query)).scalar_one())


async def remove(conn: AsyncConnection, schedule_id: int) -> bool:
    """Delete a schedule; False when it was already gone."""
    result = await conn.execute(delete(schedules).where(schedules.c.id == schedule_id))
    return bool(result.rowcount)


async def set_paused(
    conn: AsyncConnection, schedule_id: int, *, paused: bool, now: datetime
) -> Schedule | None:
    """Pause or resume; None when the schedule is gone or already in that state.

    Resuming moves the cursor to `now`: what fell due while it was paused is neither run
    nor reported missed — pausing said not to.
    """
    current = await get(conn, schedule_id)
    if current is None or current.paused == paused:
        return None
    values: dict[str, Any] = {"paused": paused, "version": current.version + 1}
    if not paused:
        values["cursor"] = max(current.cursor, now)
    result = await conn.execute(
        update(schedules)
        .where(schedules.c.id == schedule_id, schedules.c.version == current.version)
        .values(**values)
    )
    if not result.rowcount:
        return None
    return await get(conn, schedule_id)


async def claim(
    conn: AsyncConnection,
    schedule_id: int,
    *,
    version: int,
    cursor: datetime,
    due: datetime | None,
    result: str,
) -> bool:
    """Move the cursor to `cursor` if the schedule is unpaused and still at `version`.

    True for exactly one of the processes that read that version. `due` is the time that
    fires (or is denied) now, None when the claim only reports missed times.
    """
    values: dict[str, Any] = {"cursor": cursor, "version": version + 1}
    if due is not None:
        values.update(last_due=due, last_job_id=None, last_result=result[:RESULT_CHARS])
    updated = await conn.execute(
        update(schedules)
        .where(
            schedules.c.id == schedule_id,
            schedules.c.version == version,
            schedules.c.paused.is_(False),
        )
        .values(**values)
    )
    return bool(updated.rowcount)


async def record_result(
    conn: AsyncConnection, schedule_id: int, *, due: datetime, job_id: int | None, result: str
) -> None:
    """What came of the firing at `due` (left alone once a later firing replaced it)."""
    await conn.execute(
        update(schedules)
        .where(schedules.c.id == schedule_id, schedules.c.last_due == due)
        .values(last_job_id=job_id, last_result=result[:RESULT_CHARS])
    )


def _schedule(row: Row[Any]) -> Schedule:
    return Schedule(
        id=row.id,
        cron=row.cron,
        tz=row.tz,
        command=row.command,
        room=row.room,
        creator=row.creator,
        created_at=row.created_at,
        paused=bool(row.paused),
        cursor=row.cursor,
        version=int(row.version),
        last_due=row.last_due,
        last_job_id=row.last_job_id,
        last_result=row.last_result or "",
    )
