"""The shared adapter contract, against the real Mattermost adapter and the fake Mattermost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.contract import AdapterContract
from adapters.fake_mattermost import FakeMattermost
from adapters.mattermost_support import (
    MattermostHarness,
    hooks_app,
    make_adapter,
    store_settings,
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeMattermost]:
    server = await FakeMattermost.start()
    yield server
    await server.stop()


@pytest.fixture
async def harness(fake: FakeMattermost, tmp_path: Path) -> AsyncIterator[MattermostHarness]:
    adapter = make_adapter(fake, store_settings(tmp_path))
    fake.hooks = hooks_app(adapter)
    await adapter.connect()
    yield MattermostHarness(adapter, fake)
    await adapter.close()


class TestMattermostContract(AdapterContract):
    pass
