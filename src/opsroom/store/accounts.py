"""Accounts of the web console: local users, their sessions, and API tokens (SPEC §9).

Secrets never reach these tables in plain text: passwords arrive as salted hashes,
session cookies and API tokens as their sha256.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from opsroom.store.database import Part
from opsroom.store.engine import serialise
from opsroom.store.schema import api_tokens, utcnow, web_sessions, web_users

_FIRST_USER_LOCK_KEY = 0x6F707366697273  # "opsfirs": one first account, however many start


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


class Accounts(Part):
    """Local accounts, sessions and API tokens."""

    async def web_user_count(self) -> int:
        """How many local web accounts exist."""
        async with self._db.read("count accounts") as conn:
            return int(await conn.scalar(select(func.count()).select_from(web_users)) or 0)

    async def create_first_web_user(
        self, username: str, *, password_hash: str, admin: bool = False
    ) -> bool:
        """Create `username` only if no account exists yet; False when one already did.

        Bots starting together on a new store each try: one creates the account, and no
        other replaces the password that one printed.
        """
        async with self._db.write("create the first account") as conn:
            await serialise(conn, _FIRST_USER_LOCK_KEY)
            if await conn.scalar(select(func.count()).select_from(web_users)):
                return False
            await conn.execute(
                insert(web_users).values(
                    username=username, password_hash=password_hash, admin=admin, created_at=utcnow()
                )
            )
        return True

    async def web_user(self, username: str) -> WebUser | None:
        """The local account `username`, or None."""
        async with self._db.read("read an account") as conn:
            return await _get_user(conn, username)

    async def put_web_user(
        self, username: str, *, password_hash: str, admin: bool = False
    ) -> WebUser:
        """Create an account or set its password and admin flag (ending its sessions)."""
        async with self._db.write("save an account") as conn:
            if await _get_user(conn, username) is None:
                await conn.execute(
                    insert(web_users).values(
                        username=username,
                        password_hash=password_hash,
                        admin=admin,
                        created_at=utcnow(),
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
            user = await _get_user(conn, username)
        assert user is not None
        return user

    async def add_web_session(self, token_hash: str, *, username: str, ttl: float) -> None:
        """Record a session (by the hash of its cookie) that lasts `ttl` seconds.

        Expired sessions are swept on the way.
        """
        now = utcnow()
        async with self._db.write("open a session") as conn:
            await conn.execute(delete(web_sessions).where(web_sessions.c.expires_at <= now))
            await conn.execute(
                insert(web_sessions).values(
                    token_hash=token_hash,
                    username=username,
                    created_at=now,
                    expires_at=now + timedelta(seconds=ttl),
                )
            )

    async def web_session_user(self, token_hash: str) -> WebUser | None:
        """The account behind a live session, or None."""
        query = (
            select(web_users)
            .join(web_sessions, web_sessions.c.username == web_users.c.username)
            .where(web_sessions.c.token_hash == token_hash, web_sessions.c.expires_at > utcnow())
        )
        async with self._db.read("read a session") as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _user(row)

    async def drop_web_session(self, token_hash: str) -> None:
        """End one session (logout)."""
        async with self._db.write("end a session") as conn:
            await conn.execute(delete(web_sessions).where(web_sessions.c.token_hash == token_hash))

    async def add_api_token(self, *, name: str, username: str, token_hash: str) -> ApiToken:
        """Record an API token by its hash."""
        async with self._db.write("create an API token") as conn:
            now = utcnow()
            result = await conn.execute(
                insert(api_tokens).values(
                    name=name, username=username, token_hash=token_hash, created_at=now
                )
            )
            key = result.inserted_primary_key
        assert key is not None
        return ApiToken(int(key[0]), name, username, now, None)

    async def api_token_user(self, token_hash: str) -> WebUser | None:
        """The account an API token belongs to (noting its use), or None."""
        query = (
            select(web_users, api_tokens.c.id.label("token_id"))
            .join(api_tokens, api_tokens.c.username == web_users.c.username)
            .where(api_tokens.c.token_hash == token_hash)
        )
        async with self._db.write("check an API token") as conn:
            row = (await conn.execute(query)).first()
            if row is None:
                return None
            await conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == row.token_id)
                .values(last_used_at=utcnow())
            )
        return _user(row)

    async def api_tokens(self, *, username: str | None = None) -> list[ApiToken]:
        """API tokens, newest first (only `username`'s when given)."""
        query = select(api_tokens).order_by(api_tokens.c.id.desc())
        if username is not None:
            query = query.where(api_tokens.c.username == username)
        async with self._db.read("list API tokens") as conn:
            rows = (await conn.execute(query)).all()
        return [ApiToken(int(r.id), r.name, r.username, r.created_at, r.last_used_at) for r in rows]

    async def drop_api_token(self, token_id: int, *, username: str | None = None) -> bool:
        """Revoke an API token; False when there was none (of `username`)."""
        query = delete(api_tokens).where(api_tokens.c.id == token_id)
        if username is not None:
            query = query.where(api_tokens.c.username == username)
        async with self._db.write("revoke an API token") as conn:
            result = await conn.execute(query)
        return bool(result.rowcount)


async def _get_user(conn: AsyncConnection, username: str) -> WebUser | None:
    row = (await conn.execute(select(web_users).where(web_users.c.username == username))).first()
    return None if row is None else _user(row)


def _user(row: Row[Any]) -> WebUser:
    return WebUser(
        username=row.username,
        password_hash=row.password_hash,
        admin=bool(row.admin),
        created_at=row.created_at,
    )
