"""The shared adapter contract, against the real Slack adapter (Bolt) and the fake Slack."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.contract import AdapterContract
from adapters.fake_slack import FakeSlack
from adapters.slack_support import SlackHarness, make_adapter, store_settings


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    server = await FakeSlack.start()
    yield server
    await server.stop()


@pytest.fixture
async def harness(fake: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackHarness]:
    adapter = make_adapter(fake, store_settings(tmp_path))
    await adapter.connect()
    yield SlackHarness(adapter, fake)
    await adapter.close()


class TestSlackContract(AdapterContract):
    pass
