"""POST /hooks/teams on its own: what the endpoint answers and which events it makes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.fake_teams import ALICE, BOB, FakeTeams
from adapters.teams_support import make_adapter
from opsroom.adapters.base import Interaction
from opsroom.adapters.teams.adapter import TeamsAdapter
from opsroom.config import Settings
from opsroom.model.messages import Inbound


@pytest.fixture
async def fake() -> AsyncIterator[FakeTeams]:
    server = await FakeTeams.start()
    yield server
    await server.stop()


@pytest.fixture
async def adapter(fake: FakeTeams, tmp_path: Path) -> AsyncIterator[TeamsAdapter]:
    settings = Settings.model_validate({"store": {"url": f"sqlite:///{tmp_path}/opsroom.db"}})
    made = make_adapter(fake, settings)
    await made.connect()
    yield made
    await made.close()


async def test_universal_action_invoke_is_answered_and_becomes_an_interaction(
    fake: FakeTeams, adapter: TeamsAdapter
) -> None:
    events = adapter.events()
    invoke = fake.activity(
        BOB,
        kind="invoke",
        name="adaptiveCard/action",
        replyToId="1700000000099",
        value={"action": {"type": "Action.Execute", "data": {"opsroom": "deny:4"}}},
    )
    response = await fake.post(invoke)
    assert response.status_code == 200
    assert response.json()["statusCode"] == 200
    event = await asyncio.wait_for(anext(events), 5)
    assert isinstance(event, Interaction)
    assert (event.value, event.principal) == ("deny:4", f"teams:{BOB.aad}")


async def test_a_key_that_does_not_endorse_the_channel_is_refused(
    fake: FakeTeams, adapter: TeamsAdapter
) -> None:
    events = adapter.events()
    elsewhere = fake.activity(ALICE, text="!help", channelId="skype")
    assert (await fake.post(elsewhere)).status_code == 401
    teams = fake.activity(ALICE, text="!version")
    assert (await fake.post(teams)).status_code == 200
    event = await asyncio.wait_for(anext(events), 5)
    assert isinstance(event, Inbound)
    assert event.text == "!version", "the refused activity made no event"


async def test_body_is_not_read_without_a_valid_token(
    fake: FakeTeams, adapter: TeamsAdapter
) -> None:
    # Not JSON at all: with no token the answer is 401 (the body is never parsed) ...
    assert (await fake.post_raw(b"{not json", token=None)).status_code == 401
    # ... and with a valid token the same body is a 400.
    assert (await fake.post_raw(b"{not json")).status_code == 400
