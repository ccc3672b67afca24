"""Bots sharing one store (SPEC §8): each `opsroom serve` process and its heartbeats, and
which process passes on each worker job's replies to its room.

A bot that stops beating for `[workers] lost_after` is lost, as a worker would be: the
others interrupt the jobs it ran itself and take over following the jobs it followed on
workers, from the last reply it passed on. Heartbeats are written and judged with the
database's clock, never a host's.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from opsroom.errors import StoreError
from opsroom.store.database import Part
from opsroom.store.engine import insert_new
from opsroom.store.schema import UTCDateTime, bots, followers

KEEP_GONE = timedelta(days=1)  # a gone bot's row, kept until what it left was taken over


@dataclass(frozen=True, slots=True)
class BotRow:
    """One registered bot: the process (`owner`), its host, and whether it is gone."""

    id: int
    owner: str
    host: str
    last_heartbeat: datetime
    gone: bool  # lost (stopped beating) or stopped cleanly


@dataclass(frozen=True, slots=True)
class Follow:
    """A worker job whose replies a process passes on: who, and the last reply passed."""

    job_id: int
    follower: str
    passed: int


class Bots(Part):
    """The bots' registry and heartbeats, and who follows which job on a worker."""

    # -- the registry and heartbeats ---------------------------------------------------------

    async def register_bot(self, *, owner: str, host: str, version: str) -> int:
        """Record a bot that starts now; returns its id.

        A bot found lost while it still ran registers again: its old row goes, so what it
        runs from now on is not taken for what the lost one left.
        """
        async with self._db.write("register this bot") as conn:
            now = await _db_now(conn)
            await conn.execute(delete(bots).where(bots.c.owner == owner))
            result = await conn.execute(
                insert(bots).values(
                    owner=owner, host=host, version=version, started_at=now, last_heartbeat=now
                )
            )
            key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    async def bot_beat(self, bot_id: int) -> bool:
        """Record a heartbeat; False when the bot was found lost meanwhile (it stays lost)."""
        async with self._db.write("record this bot's heartbeat") as conn:
            now = await _db_now(conn)
            result = await conn.execute(
                update(bots)
                .where(bots.c.id == bot_id, bots.c.lost_at.is_(None), bots.c.stopped_at.is_(None))
                .values(last_heartbeat=now)
            )
        return bool(result.rowcount)

    async def stop_bot(self, bot_id: int) -> None:
        """Record that a bot stopped cleanly."""
        async with self._db.write("record this bot stopped") as conn:
            now = await _db_now(conn)
            await conn.execute(
                update(bots)
                .where(bots.c.id == bot_id, bots.c.stopped_at.is_(None))
                .values(stopped_at=now)
            )

    async def list_bots(self) -> list[BotRow]:
        """Every registered bot, oldest first."""
        async with self._db.read("list bots") as conn:
            rows = (await conn.execute(select(bots).order_by(bots.c.id))).all()
        return [
            BotRow(
                id=int(r.id),
                owner=str(r.owner),
                host=str(r.host),
                last_heartbeat=r.last_heartbeat,
                gone=r.lost_at is not None or r.stopped_at is not None,
            )
            for r in rows
        ]

    async def lose_bots(self, *, lost_after: float, dead: Collection[str] = ()) -> set[str]:
        """Bots silent for `lost_after` s, and those whose process is known `dead`, are lost.

        Returns the owners of every bot gone (lost or stopped): what they ran is left to
        the others. Rows of bots gone for a day are dropped.
        """
        async with self._db.write("look for lost bots") as conn:
            now = await _db_now(conn)
            silent = bots.c.last_heartbeat < now - timedelta(seconds=lost_after)
            cond = silent if not dead else silent | bots.c.owner.in_(list(dead))
            await conn.execute(
                update(bots)
                .where(bots.c.lost_at.is_(None), bots.c.stopped_at.is_(None), cond)
                .values(lost_at=now)
            )
            await conn.execute(
                delete(bots).where(
                    func.coalesce(bots.c.stopped_at, bots.c.lost_at) < now - KEEP_GONE
                )
            )
            gone = await conn.scalars(
                select(bots.c.owner).where(
                    bots.c.lost_at.is_not(None) | bots.c.stopped_at.is_not(None)
                )
            )
            return {str(o) for o in gone}

    # -- who follows a job on a worker -----------------------------------------------------

    async def follow_job(self, job_id: int, *, follower: str) -> int:
        """Record that `follower` passes on the job's replies; the last one passed before."""
        async with self._db.write(f"record who follows job {job_id}") as conn:
            result = await conn.execute(
                insert_new(conn, followers, {"job_id": job_id, "follower": follower}, "job_id")
            )
            if result.rowcount == 1:
                return 0
            await conn.execute(
                update(followers).where(followers.c.job_id == job_id).values(follower=follower)
            )
            passed = await conn.scalar(
                select(followers.c.passed).where(followers.c.job_id == job_id)
            )
        return int(passed or 0)

    async def followed_to(self, job_id: int, *, follower: str, passed: int) -> bool:
        """Record how far `follower` passed the job's replies on; False if another took over."""
        async with self._db.write(f"record how far job {job_id} was followed") as conn:
            result = await conn.execute(
                update(followers)
                .where(followers.c.job_id == job_id, followers.c.follower == follower)
                .values(passed=passed)
            )
        return bool(result.rowcount)

    async def unfollow(self, job_id: int, *, follower: str) -> None:
        """The job's end was told: nobody needs to follow it any more."""
        async with self._db.write(f"record job {job_id} followed to its end") as conn:
            await conn.execute(
                delete(followers).where(
                    followers.c.job_id == job_id, followers.c.follower == follower
                )
            )

    async def follows_of(self, owners: Collection[str]) -> list[Follow]:
        """Jobs followed by any of `owners` whose end was not told yet, oldest first."""
        if not owners:
            return []
        query = (
            select(followers.c.job_id, followers.c.follower, followers.c.passed)
            .where(followers.c.follower.in_(list(owners)))
            .order_by(followers.c.job_id)
        )
        async with self._db.read("list followed jobs") as conn:
            rows = (await conn.execute(query)).all()
        return [Follow(int(r.job_id), str(r.follower), int(r.passed)) for r in rows]

    async def take_follow(self, follow: Follow, *, follower: str) -> bool:
        """Take over following a job from a gone process; False when another was first."""
        async with self._db.write(f"take over following job {follow.job_id}") as conn:
            result = await conn.execute(
                update(followers)
                .where(
                    followers.c.job_id == follow.job_id,
                    followers.c.follower == follow.follower,
                )
                .values(follower=follower)
            )
        return bool(result.rowcount)


async def _db_now(conn: AsyncConnection) -> datetime:
    """The database's clock (every host's heartbeat is measured against the same one)."""
    now = await conn.scalar(select(func.now(type_=UTCDateTime())))
    if not isinstance(now, datetime):
        raise StoreError("the database did not say what time it is")
    return now
