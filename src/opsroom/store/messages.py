"""The web chat's history, room by room: each event a room shows, in order.

A room's events are committed in `seq` order, whichever processes write them: a writer
holds the room's lock from before its row takes a number until it commits. Without it two
bots on PostgreSQL could commit 8 after 9, and a stream that resumed after 9 (SSE
`Last-Event-ID`) would never see 8.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, insert, select

from opsroom.store.database import Part
from opsroom.store.engine import serialise
from opsroom.store.schema import messages, utcnow


@dataclass(frozen=True, slots=True)
class WebMessage:
    """One event of a room's history; `seq` orders a room and resumes an SSE stream."""

    seq: int
    room: str
    author: str
    kind: str
    payload: Mapping[str, Any]
    created_at: datetime


class Messages(Part):
    """The history of the web chat's rooms."""

    async def add_web_message(
        self, *, room: str, author: str, kind: str, payload: Mapping[str, Any]
    ) -> WebMessage:
        """Append an event to a room's history; its `seq` orders the room."""
        async with self._db.write(f"keep a message of {room}") as conn:
            await serialise(conn, room_lock_key(room))
            now = utcnow()
            result = await conn.execute(
                insert(messages).values(
                    room=room,
                    author=author,
                    kind=kind,
                    payload=json.dumps(dict(payload), ensure_ascii=False, default=str),
                    created_at=now,
                )
            )
            key = result.inserted_primary_key
        assert key is not None
        return WebMessage(int(key[0]), room, author, kind, dict(payload), now)

    async def web_messages(
        self, room: str, *, after: int = 0, limit: int = 200
    ) -> list[WebMessage]:
        """A room's events after `after` (oldest first); with after=0 the newest `limit`."""
        query = select(messages).where(messages.c.room == room, messages.c.id > after)
        async with self._db.read(f"read messages of {room}") as conn:
            if after > 0:
                rows = (await conn.execute(query.order_by(messages.c.id).limit(limit))).all()
            else:
                newest = query.order_by(messages.c.id.desc()).limit(limit)
                rows = (await conn.execute(newest)).all()[::-1]
        return [_message(r) for r in rows]

    async def web_rooms(self, *, prefix: str = "web:", limit: int = 100) -> list[str]:
        """Rooms with history under `prefix`, most recently active first."""
        last = func.max(messages.c.id)
        query = (
            select(messages.c.room)
            .where(messages.c.room.startswith(prefix, autoescape=True))
            .group_by(messages.c.room)
            .order_by(last.desc())
            .limit(limit)
        )
        async with self._db.read("list rooms") as conn:
            return [str(r) for r in await conn.scalars(query)]


def room_lock_key(room: str) -> int:
    """The lock a room's writers take turns under: 64 bits of the room's hash, signed.

    Two rooms that share a key only take turns needlessly; nothing is wrong for it.
    """
    digest = hashlib.sha256(b"opsroom web chat room\0" + room.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _message(row: Row[Any]) -> WebMessage:
    return WebMessage(
        seq=int(row.id),
        room=row.room,
        author=row.author,
        kind=row.kind,
        payload=json.loads(row.payload),
        created_at=row.created_at,
    )
