"""Deliveries already received from chat platforms: a retried or redelivered event runs once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete

from opsroom.store.database import Part
from opsroom.store.engine import insert_new
from opsroom.store.schema import deliveries, utcnow

KEEP = timedelta(days=2)  # platforms retry for minutes; older keys can never come back


class Deliveries(Part):
    """Delivery keys of chat platforms, kept long enough to recognise a retry."""

    async def first_delivery(self, key: str) -> bool:
        """Record a platform delivery `key`; False when it was already received."""
        async with self._db.write("record a delivery") as conn:
            now = utcnow()
            result = await conn.execute(
                insert_new(conn, deliveries, {"key": key, "received_at": now}, key="key")
            )
            await conn.execute(delete(deliveries).where(deliveries.c.received_at < now - KEEP))
        return bool(result.rowcount)
