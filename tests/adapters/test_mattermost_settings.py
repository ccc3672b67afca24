"""`[adapters.mattermost]`: each key's effect, and bad tables named by key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.fake_mattermost import TOKEN, FakeMattermost
from adapters.mattermost_support import ENV, make_adapter, store_settings
from opsroom.adapters.base import ConnectionState
from opsroom.adapters.mattermost import create
from opsroom.adapters.mattermost.settings import parse
from opsroom.config import Settings
from opsroom.errors import ConfigError
from opsroom.model.blocks import Actions, Reply, Text


@pytest.fixture
async def fake() -> AsyncIterator[FakeMattermost]:
    server = await FakeMattermost.start()
    yield server
    await server.stop()


def test_defaults_and_secrets_resolved_never_shown() -> None:
    config = parse({"url": "https://mm.example.org/", "token": "env:MM_TOKEN"}, ENV)
    assert config.url == "https://mm.example.org", "one form of the server address"
    assert config.token == TOKEN
    assert config.command_token is None
    assert config.actions_url is None
    assert TOKEN not in repr(config)
    assert config.action_secret not in repr(config)
    assert config.action_secret != TOKEN


def test_actions_url_defaults_to_the_web_base_url() -> None:
    table = {"url": "https://mm.example.org", "token": "env:MM_TOKEN"}
    derived = parse(table, ENV, base_url="https://ops.example.org/")
    assert derived.actions_url == "https://ops.example.org/hooks/mattermost/actions"
    given = parse({**table, "actions_url": "https://hooks.example.org/mm"}, ENV, base_url="x")
    assert given.actions_url == "https://hooks.example.org/mm"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"token": "env:MM_TOKEN"}, "adapters.mattermost.url: Field required"),
        ({"url": "mm.example.org", "token": "env:MM_TOKEN"}, "adapters.mattermost.url: expected"),
        ({"url": "https://mm", "token": "pasted-token-value"}, "adapters.mattermost.token: "),
        ({"url": "https://mm", "token": "env:MISSING"}, "adapters.mattermost.token: "),
        (
            {"url": "https://mm", "token": "env:MM_TOKEN", "command_token": "pasted-token-value"},
            "adapters.mattermost.command_token: ",
        ),
        (
            {"url": "https://mm", "token": "env:MM_TOKEN", "actions_url": "/hooks"},
            "adapters.mattermost.actions_url: expected an http(s) URL",
        ),
        ({"url": "https://mm", "token": "env:MM_TOKEN", "team": "x"}, "mattermost.team: unknown"),
    ],
)
def test_bad_tables_name_the_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(table, ENV)
    assert message in str(caught.value)
    assert "pasted-token-value" not in str(caught.value), "a pasted token is never echoed"


async def test_the_token_is_what_the_server_accepts(fake: FakeMattermost, tmp_path: Path) -> None:
    adapter = create(
        {"url": fake.url, "token": "env:WRONG"}, store_settings(tmp_path), environ={"WRONG": "x"}
    )
    await adapter.transport.start()
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while not fake.calls_of("GET users/me"):
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        assert fake.calls_of("GET users/me")[0].status == 401
        assert adapter.state is not ConnectionState.CONNECTED
        assert fake.connections == 0
    finally:
        await adapter.close()


async def test_without_an_actions_url_there_are_no_buttons(
    fake: FakeMattermost, tmp_path: Path
) -> None:
    settings = Settings.model_validate({"store": {"url": f"sqlite:///{tmp_path}/o.db"}})
    adapter = make_adapter(fake, settings, actions_url=None)
    assert not adapter.capabilities.buttons
    await adapter.connect()
    try:
        card = Reply((Text("approve with `!approve 3`"), Actions((("Approve", "approve:3"),))))
        ref = await adapter.send("mattermost:chan", card)
        assert fake.find(ref.id).attachments == []
        assert fake.find(ref.id).message == "approve with `!approve 3`"
    finally:
        await adapter.close()

    with_web = Settings.model_validate(
        {"store": {"url": f"sqlite:///{tmp_path}/o.db"}, "web": {"base_url": "https://ops.ex"}}
    )
    adapter = make_adapter(fake, with_web, actions_url=None)
    assert adapter.capabilities.buttons
    await adapter.connect()
    try:
        ref = await adapter.send("mattermost:chan", card)
        (attachment,) = fake.find(ref.id).attachments
        assert attachment["actions"][0]["integration"]["url"] == (
            "https://ops.ex/hooks/mattermost/actions"
        )
    finally:
        await adapter.close()
