"""Delivery keys recorded in opsroom's store (for adapters run outside `opsroom serve`)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opsroom.store import Store


class StoreDeliveries:
    """`first(key)` backed by `Store.first_delivery`, so dedupe holds across processes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._store: Store | None = None
        self._lock = asyncio.Lock()

    async def first(self, key: str) -> bool:
        """True only for the first delivery of `key` in this installation."""
        async with self._lock:
            if self._store is None:
                from opsroom.store import Store

                self._store = await Store.open(self.url)
        return await self._store.first_delivery(key)

    async def close(self) -> None:
        """Release the store's connections."""
        if self._store is not None:
            await self._store.close()
            self._store = None
