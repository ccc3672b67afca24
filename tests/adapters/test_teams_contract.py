"""The shared adapter contract, against the real Teams adapter and the fake Bot Framework."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.contract import AdapterContract
from adapters.fake_teams import FakeTeams
from adapters.teams_support import TeamsHarness, make_adapter
from opsroom.config import Settings


@pytest.fixture
async def fake() -> AsyncIterator[FakeTeams]:
    server = await FakeTeams.start()
    yield server
    await server.stop()


@pytest.fixture
async def harness(fake: FakeTeams, tmp_path: Path) -> AsyncIterator[TeamsHarness]:
    settings = Settings.model_validate({"store": {"url": f"sqlite:///{tmp_path}/opsroom.db"}})
    adapter = make_adapter(fake, settings)
    await adapter.connect()
    installed = await fake.install()  # the app added to the team: the channel is known
    assert installed.status_code == 200
    yield TeamsHarness(adapter, fake)
    await adapter.close()


class TestTeamsContract(AdapterContract):
    pass
