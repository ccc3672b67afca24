"""The shared adapter contract, against the real Discord adapter and the fake Discord."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.contract import AdapterContract
from adapters.discord_support import DiscordHarness, make_adapter, store_settings
from adapters.fake_discord import FakeDiscord


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = await FakeDiscord.start()
    yield server
    await server.stop()


@pytest.fixture
async def harness(fake: FakeDiscord, tmp_path: Path) -> AsyncIterator[DiscordHarness]:
    adapter = make_adapter(fake, store_settings(tmp_path))
    await adapter.connect()
    yield DiscordHarness(adapter, fake)
    await adapter.close()


class TestDiscordContract(AdapterContract):
    pass
