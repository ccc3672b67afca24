"""The one delivery-dedupe helper the Slack, Mattermost, Discord and Teams adapters share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from opsroom.adapters.deliveries import Deliveries
from opsroom.errors import StoreError
from opsroom.store import Store


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one database, as two opsroom processes behind one URL have."""
    url = f"sqlite:///{tmp_path}/opsroom.db"
    one = await Store.open(url)
    two = await Store.open(url)
    try:
        yield one, two
    finally:
        await one.close()
        await two.close()


async def test_a_delivery_is_first_only_once_across_processes(
    stores: tuple[Store, Store],
) -> None:
    one = Deliveries("slack", stores[0].first_delivery)
    two = Deliveries("slack", stores[1].first_delivery)
    assert await one.first("slack:msg:T:C:1.1")
    assert not await one.first("slack:msg:T:C:1.1"), "a retry to the same process"
    assert not await two.first("slack:msg:T:C:1.1"), "another process already had it"
    assert await two.first("slack:msg:T:C:1.2")


async def test_without_a_store_a_process_still_drops_repeats() -> None:
    deliveries = Deliveries("discord", None, remember=2)
    assert await deliveries.first("a")
    assert not await deliveries.first("a")
    assert await deliveries.first("b")
    assert await deliveries.first("c")
    # Memory is bounded: the oldest key is forgotten (the store remembers for days).
    assert await deliveries.first("a")


async def test_a_key_the_store_refused_is_recorded_once_it_is_back(
    stores: tuple[Store, Store],
) -> None:
    refusals = 2

    async def flaky(key: str) -> bool:
        """The real store, unwritable for its first two writes (a lock, a failover)."""
        nonlocal refusals
        if refusals:
            refusals -= 1
            raise StoreError("database is locked")
        return await stores[0].first_delivery(key)

    one = Deliveries("mattermost", flaky)
    assert await one.first("mattermost:post:p1"), "acted on: the request itself is audited"
    await one.settle(timeout=30)  # returns once the key is in the store
    assert refusals == 0
    other = Deliveries("mattermost", stores[1].first_delivery)
    assert not await other.first("mattermost:post:p1"), "a redelivery elsewhere is dropped"
