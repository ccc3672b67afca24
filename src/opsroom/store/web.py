"""The SQL of the web console: chat history per room, local accounts, sessions, API tokens.

Every function takes a connection inside the caller's transaction. Secrets never reach
these tables in plain text: passwords arrive as salted hashes, session cookies and API
tokens as their sha256.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from opsroom.model.jobs import JobState
from opsroom.store.schema import api_tokens, jobs, messages, web_sessions, web_users


@dataclass(frozen=True, slots=True)
class WebMessage:
    """One event of a room's history; `seq` orders a room and resumes an SSE stream."""

    seq: int
    room: str
    author: str
    kind: str
    payload: Mapping[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class WebUser:
    """A local account of the web console."""

    username: str
    password_hash: str
    admin: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An API token as listed (its value is shown once, at creation, and never stored)."""

    id: int
    name: str
    username: str
    created_at: datetime
    last_used_at: datetime | None


# --- messages -----------------------------------------------------------------------------


async def add_message(
    conn: AsyncConnection,
    *,
    room: str,
    author: str,
    kind: str,
    payload: Mapping[str, Any],
    now: datetime,
) -> WebMessage:
    """Append one event to a room's history."""
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


async def list_messages(
    conn: AsyncConnection, *, room: str, after: int, limit: int
) -> list[WebMessage]:
    """Events of `room` after `after`: the oldest first; with after=0, the newest `limit`."""
    query = select(messages).where(messages.c.room == room, messages.c.id > after)
    if after > 0:
        rows = (await conn.execute(query.order_by(messages.c.id).limit(limit))).all()
    else:
        rows = (await conn.execute(query.order_by(messages.c.id.desc()).limit(limit))).all()
        rows = rows[::-1]
    return [_message(r) for r in rows]


async def list_rooms(conn: AsyncConnection, *, prefix: str, limit: int) -> list[str]:
    """Rooms with history whose name starts with `prefix`, most recently active first."""
    last = func.max(messages.c.id)
    query = (
        select(messages.c.room)
        .where(messages.c.room.startswith(prefix, autoescape=True))
        .group_by(messages.c.room)
        .order_by(last.desc())
        .limit(limit)
    )
    return [str(r) for r in await conn.scalars(query)]


def _message(row: Row[Any]) -> WebMessage:
    return WebMessage(
        seq=int(row.id),
        room=row.room,
        author=row.author,
        kind=row.kind,
        payload=json.loads(row.payload),
        created_at=row.created_at,
    )


# --- accounts and sessions ----------------------------------------------------------------


async def count_users(conn: AsyncConnection) -> int:
    """How many local accounts exist."""
    return int(await conn.scalar(select(func.count()).select_from(web_users)) or 0)


async def get_user(conn: AsyncConnection, username: str) -> WebUser | None:
    """The account `username`, or None."""
    row = (await conn.execute(select(web_users).where(web_users.c.username == username))).first()
    return None if row is None else _user(row)


async def put_user(
    conn: AsyncConnection, *, username: str, password_hash: str, admin: bool, now: datetime
) -> WebUser:
    """Create the account, or set its password (and admin flag) when it exists."""
    existing = await get_user(conn, username)
    if existing is None:
        await conn.execute(
            insert(web_users).values(
                username=username, password_hash=password_hash, admin=admin, created_at=now
            )
        )
    else:
        await conn.execute(
            update(web_users)
            .where(web_users.c.username == username)
            .values(password_hash=password_hash, admin=admin)
        )
        # A new password ends every session opened with the old one.
        await conn.execute(delete(web_sessions).where(web_sessions.c.username == username))
    user = await get_user(conn, username)
    assert user is not None
    return user


async def add_session(
    conn: AsyncConnection, *, token_hash: str, username: str, now: datetime, expires_at: datetime
) -> None:
    """Record a new session; expired ones are swept on the way."""
    await conn.execute(delete(web_sessions).where(web_sessions.c.expires_at <= now))
    await conn.execute(
        insert(web_sessions).values(
            token_hash=token_hash, username=username, created_at=now, expires_at=expires_at
        )
    )


async def session_user(conn: AsyncConnection, *, token_hash: str, now: datetime) -> WebUser | None:
    """The account behind a live session, or None."""
    query = (
        select(web_users)
        .join(web_sessions, web_sessions.c.username == web_users.c.username)
        .where(web_sessions.c.token_hash == token_hash, web_sessions.c.expires_at > now)
    )
    row = (await conn.execute(query)).first()
    return None if row is None else _user(row)


async def drop_session(conn: AsyncConnection, *, token_hash: str) -> None:
    """End one session (logout)."""
    await conn.execute(delete(web_sessions).where(web_sessions.c.token_hash == token_hash))


def _user(row: Row[Any]) -> WebUser:
    return WebUser(
        username=row.username,
        password_hash=row.password_hash,
        admin=bool(row.admin),
        created_at=row.created_at,
    )


# --- API tokens ---------------------------------------------------------------------------


async def add_token(
    conn: AsyncConnection, *, name: str, username: str, token_hash: str, now: datetime
) -> ApiToken:
    """Record a new API token (by its hash) for `username`."""
    result = await conn.execute(
        insert(api_tokens).values(
            name=name, username=username, token_hash=token_hash, created_at=now
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return ApiToken(int(key[0]), name, username, now, None)


async def token_user(conn: AsyncConnection, *, token_hash: str, now: datetime) -> WebUser | None:
    """The account an API token belongs to (noting its use), or None."""
    query = (
        select(web_users, api_tokens.c.id.label("token_id"))
        .join(api_tokens, api_tokens.c.username == web_users.c.username)
        .where(api_tokens.c.token_hash == token_hash)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    await conn.execute(
        update(api_tokens).where(api_tokens.c.id == row.token_id).values(last_used_at=now)
    )
    return _user(row)


async def list_tokens(conn: AsyncConnection, *, username: str | None) -> list[ApiToken]:
    """API tokens, newest first; only those of `username` when given."""
    query = select(api_tokens).order_by(api_tokens.c.id.desc())
    if username is not None:
        query = query.where(api_tokens.c.username == username)
    return [
        ApiToken(int(r.id), r.name, r.username, r.created_at, r.last_used_at)
        for r in (await conn.execute(query)).all()
    ]


async def drop_token(conn: AsyncConnection, *, token_id: int, username: str | None) -> bool:
    """Revoke a token (of `username` when given); False when there was none."""
    query = delete(api_tokens).where(api_tokens.c.id == token_id)
    if username is not None:
        query = query.where(api_tokens.c.username == username)
    result = await conn.execute(query)
    return bool(result.rowcount)


# --- jobs as the console lists them -------------------------------------------------------


async def job_ids(
    conn: AsyncConnection,
    *,
    states: Collection[JobState] | None,
    command: str | None,
    requester: str | None,
    before: int | None,
    limit: int,
) -> list[int]:
    """Ids of matching jobs, newest first."""
    query = select(jobs.c.id).order_by(jobs.c.id.desc()).limit(limit)
    if states:
        query = query.where(jobs.c.state.in_([JobState(s).value for s in states]))
    if command is not None:
        query = query.where(jobs.c.command == command)
    if requester is not None:
        query = query.where(jobs.c.requester == requester)
    if before is not None:
        query = query.where(jobs.c.id < before)
    return [int(i) for i in await conn.scalars(query)]


async def job_counts(conn: AsyncConnection) -> dict[str, int]:
    """How many jobs are in each state."""
    query = select(jobs.c.state, func.count()).group_by(jobs.c.state)
    return {str(state): int(n) for state, n in (await conn.execute(query)).all()}
