"""The audit trail's table: appending chained entries durably, reading and checking them.

The chain's rules (hashing, what a break means) are in `audit_chain.py`; this module
writes and reads the rows. Other parts that change something and audit it in one
transaction (a job marked interrupted, a schedule) use `audited` and `insert_audit`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from opsroom.errors import StoreError
from opsroom.model.audit import AuditEvent, AuditRecord
from opsroom.store.audit_chain import (
    RELINKED,
    AuditVerdict,
    ChainCheck,
    anchor_break,
    entry_hash,
    link_break,
    params_json,
    unreadable,
)
from opsroom.store.database import Database, Part
from opsroom.store.engine import serialise
from opsroom.store.prepared import Prepared
from opsroom.store.schema import GENESIS_HASH, UTCDateTime, audit, utcnow

_AUDIT_LOCK_KEY = 0x6F7073726F6F6D  # "opsroom": serialises audit appends across processes
_PAGE = 1000


class Audit(Part):
    """The hash-chained audit trail (SPEC §8)."""

    async def append_audit(self, event: AuditEvent) -> AuditRecord:
        """Append one hash-chained entry, durably; StoreError when it cannot be written.

        Appends are serialised across processes (SQLite: BEGIN IMMEDIATE; PostgreSQL: an
        advisory lock), so each entry's previous hash is really the last one. The commit
        is flushed to disk before this returns (SQLite: synchronous=FULL for this
        transaction only; PostgreSQL: synchronous_commit=on), so an entry that was
        acknowledged survives a power loss.
        """
        async with audited(self._db, "write the audit entry") as conn:
            return await insert_audit(conn, event)

    async def audit(self, *, limit: int = 100) -> list[AuditRecord]:
        """The latest audit entries, newest first."""
        query = select(audit).order_by(audit.c.id.desc()).limit(limit)
        async with self._db.read("read the audit trail") as conn:
            return [_audit_record(row) for row in await conn.execute(query)]

    async def iter_audit(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> AsyncIterator[AuditRecord]:
        """Audit entries in id order with `since <= at < until`, read a page at a time."""
        after: int | None = None  # not 0: a forged entry #0 or #-1 must show up too
        while True:
            query = select(audit).order_by(audit.c.id).limit(_PAGE)
            if after is not None:
                query = query.where(audit.c.id > after)
            if since is not None:
                query = query.where(audit.c.at >= literal(since, UTCDateTime()))
            if until is not None:
                query = query.where(audit.c.at < literal(until, UTCDateTime()))
            async with self._db.read("read the audit trail") as conn:
                rows = (await conn.execute(query)).all()
            for row in rows:
                try:
                    record = _audit_record(row)
                except (TypeError, ValueError) as e:
                    raise StoreError(f"audit entry #{row.id} cannot be read: {e}") from None
                yield record
            if len(rows) < _PAGE:
                return
            after = int(rows[-1].id)

    async def check_audit(self, *, anchor: tuple[int, str] | None = None) -> AuditVerdict:
        """Recompute the whole chain, and compare it with `anchor` when one is given.

        The anchor is an entry id and its hash (or a prefix of it) kept outside the
        database; a chain alone cannot tell that its last entries were deleted.
        """
        check = ChainCheck()
        after: int | None = None  # not 0: a forged entry #0 or #-1 must show up too
        async with self._db.read("read the audit trail") as conn:
            while check.problem is None:
                query = select(audit).order_by(audit.c.id).limit(_PAGE)
                if after is not None:
                    query = query.where(audit.c.id > after)
                rows = (await conn.execute(query)).all()
                for row in rows:
                    try:
                        record = _audit_record(row)
                    except (TypeError, ValueError) as e:
                        check.fail(unreadable(int(row.id), e))
                        break
                    if not check.feed(record):
                        break
                if len(rows) < _PAGE:
                    break
                after = int(rows[-1].id)
            problem = check.problem
            if problem is not None and problem.problem == RELINKED:
                # Where does the broken link point now? That tells reordering from insertion.
                prev = await conn.scalar(
                    select(audit.c.prev_hash).where(audit.c.id == problem.entry_id)
                )
                follows = await conn.scalar(
                    select(func.min(audit.c.id)).where(
                        audit.c.hash == prev, audit.c.id != problem.entry_id
                    )
                )
                check.problem = link_break(
                    problem.entry_id, None if follows is None else int(follows)
                )
            elif problem is None and anchor is not None:
                anchor_id, anchor_hash = anchor
                found = await conn.scalar(select(audit.c.hash).where(audit.c.id == anchor_id))
                verdict = check.verdict()
                mismatch = anchor_break(anchor_id, anchor_hash, found, verdict.last_id)
                if mismatch is not None:
                    check.fail(mismatch)
        return check.verdict()


@asynccontextmanager
async def audited(db: Database, doing: str) -> AsyncIterator[AsyncConnection]:
    """A durable transaction holding the audit append lock (see `Audit.append_audit`).

    A change and its audit entry written in it commit together: no audit, no change.
    """
    async with db.durable(doing) as conn:
        await lock_audit(conn)
        yield conn


async def lock_audit(conn: AsyncConnection) -> None:
    """Take the audit append lock in the caller's transaction (held until it ends).

    For a durable transaction that does some reading before it appends (`queue.py`).
    """
    await serialise(conn, _AUDIT_LOCK_KEY)


@dataclass(frozen=True, slots=True)
class LastEntry:
    """The trail's last entry as a statement under the audit lock read it (`last_entry`)."""

    id: int | None  # None: the trail is empty
    hash: str | None


def last_entry() -> tuple[Any, Any]:
    """The last entry's id and hash, as two columns another statement can read along.

    Only under the audit lock, in a statement after the one that took it (its snapshot
    then holds every committed entry); pass them on as `insert_audit(..., last=)`.
    """
    newest = audit.c.id.desc()
    return (
        select(audit.c.id).order_by(newest).limit(1).scalar_subquery().label("audit_last_id"),
        select(audit.c.hash).order_by(newest).limit(1).scalar_subquery().label("audit_last_hash"),
    )


async def insert_audit(
    conn: AsyncConnection, event: AuditEvent, *, last: LastEntry | None = None
) -> AuditRecord:
    """Append one chained entry inside a transaction from `audited`.

    `last`: the last entry, already read under the lock in this transaction (saves a
    round trip while the lock is held); read here when not given.
    """
    try:
        params = params_json(event.params)
    except (TypeError, ValueError) as e:
        raise StoreError(f"audit entry could not be written: parameters: {e}") from None
    if last is None:
        row = await _LAST.first(conn, {})
        last = LastEntry(None, None) if row is None else LastEntry(int(row.id), row.hash)
    if last.id is None or last.hash is None:
        entry_id, prev = 1, GENESIS_HASH
    else:
        entry_id, prev = last.id + 1, last.hash
    at = utcnow()
    digest = entry_hash(prev, entry_id, at, event)
    await _INSERT.all(
        conn,
        {
            "id": entry_id,
            "at": at,
            "action": event.action,
            "principal": event.principal,
            "room": event.room,
            "command": event.command,
            "params": params,
            "job_id": event.job_id,
            "outcome": event.outcome,
            "reason": event.reason,
            "catalog_commit": event.catalog_commit,
            "script_hash": event.script_hash,
            "prev_hash": prev,
            "hash": digest,
        },
    )
    return AuditRecord(id=entry_id, at=at, event=event, prev_hash=prev, hash=digest)


# Built once, values bound at execution: an append finds its compiled form in the cache.
_INSERT = Prepared(insert(audit))
_LAST = Prepared(select(audit.c.id, audit.c.hash).order_by(audit.c.id.desc()).limit(1))


def _audit_record(row: Row[Any]) -> AuditRecord:
    event = AuditEvent(
        action=row.action,
        principal=row.principal,
        room=row.room,
        command=row.command,
        params=None if row.params is None else json.loads(row.params),
        job_id=row.job_id,
        outcome=row.outcome,
        reason=row.reason,
        catalog_commit=row.catalog_commit,
        script_hash=row.script_hash,
    )
    return AuditRecord(id=row.id, at=row.at, event=event, prev_hash=row.prev_hash, hash=row.hash)
