"""Deliveries already received from chat platforms: a retried or redelivered event runs once."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from opsroom.store.schema import deliveries

KEEP = timedelta(days=2)  # platforms retry for minutes; older keys can never come back


async def first(conn: AsyncConnection, key: str, *, now: datetime) -> bool:
    """Record `key`; True only for the first delivery of it."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(deliveries)
        .values(key=key, received_at=now)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    result = await conn.execute(statement)
    await conn.execute(delete(deliveries).where(deliveries.c.received_at < now - KEEP))
    return bool(result.rowcount)
