"""`[adapters.discord]`: every key's effect, against the fake Discord."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.discord_support import ENV, make_adapter, store_settings
from adapters.fake_discord import APPLICATION, FakeDiscord
from opsroom.adapters.base import AdapterServices
from opsroom.adapters.discord import create, translate
from opsroom.adapters.discord.adapter import DiscordAdapter
from opsroom.adapters.discord.settings import parse
from opsroom.config import load_settings
from opsroom.engine.adapters import create_adapters
from opsroom.errors import ConfigError


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = await FakeDiscord.start()
    yield server
    await server.stop()


async def until(predicate: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not in time: {what}"
        await asyncio.sleep(0.02)


def test_defaults() -> None:
    config = parse({"token": "env:DISCORD_TOKEN"}, ENV)
    assert config.api_url == "https://discord.com/api/v10"
    assert config.gateway_url == ""
    assert config.register_command is False
    assert config.token == ENV["DISCORD_TOKEN"]
    assert ENV["DISCORD_TOKEN"] not in repr(config)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "adapters.discord.token: Field required"),
        ({"token": "MTE4.inline-token"}, "adapters.discord.token: expected a reference"),
        ({"token": "env:MISSING"}, "adapters.discord.token: env:MISSING"),
        ({"token": "env:DISCORD_TOKEN", "tokn": 1}, "adapters.discord.tokn: unknown key"),
        ({"token": "env:DISCORD_TOKEN", "api_url": "discord.com"}, "adapters.discord.api_url"),
        (
            {"token": "env:DISCORD_TOKEN", "gateway_url": "https://gateway.discord.gg"},
            "adapters.discord.gateway_url: expected a ws(s) URL",
        ),
        (
            {"token": "env:DISCORD_TOKEN", "register_command": "maybe"},
            "adapters.discord.register_command",
        ),
    ],
)
def test_bad_tables_name_the_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(table, ENV)
    assert message in str(caught.value)
    assert "inline-token" not in str(caught.value), "a pasted token is never echoed"


async def test_token_is_sent_and_intents_are_the_documented_three(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    adapter = make_adapter(fake, store_settings(tmp_path))
    try:
        await adapter.connect()
        assert adapter.state.value == "connected"
        (identify,) = fake.identifies
        intents = identify["intents"]
        for bit in (9, 12, 15):  # GUILD_MESSAGES, DIRECT_MESSAGES, MESSAGE_CONTENT
            assert intents & (1 << bit)
    finally:
        await adapter.close()


async def test_a_wrong_token_stops_with_a_clear_error(
    fake: FakeDiscord, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "opsroom.adapters.discord")
    adapter = create(
        {"token": "env:WRONG", "api_url": fake.api_url},
        store_settings(tmp_path),
        environ={"WRONG": "not-the-token"},
    )
    try:
        await adapter.gateway.start()
        await until(lambda: "authentication failed" in caplog.text, "the error is logged")
        assert adapter.state.value == "disconnected"
        assert len(fake.calls_of("GET", "/gateway/bot")) == 1, "no retry loop on a bad token"
        assert "not-the-token" not in caplog.text
    finally:
        await adapter.close()


async def test_missing_message_content_intent_is_named(
    fake: FakeDiscord, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "opsroom.adapters.discord")
    fake.intents_needed |= 1 << 1  # the fake now wants an intent opsroom does not ask for
    adapter = make_adapter(fake, store_settings(tmp_path), gateway_url=fake.gateway_url)
    try:
        await adapter.gateway.start()
        await until(lambda: "MESSAGE CONTENT INTENT" in caplog.text, "the error is logged")
        assert len(fake.identifies) == 1
    finally:
        await adapter.close()


async def test_api_url_is_where_every_call_goes(fake: FakeDiscord, tmp_path: Path) -> None:
    adapter = make_adapter(fake, store_settings(tmp_path))
    try:
        await adapter.connect()
        assert fake.calls_of("GET", "/gateway/bot"), "asked the API at api_url"
    finally:
        await adapter.close()


async def test_gateway_url_given_is_used_without_asking(fake: FakeDiscord, tmp_path: Path) -> None:
    adapter = make_adapter(fake, store_settings(tmp_path), gateway_url=fake.gateway_url)
    try:
        await adapter.connect()
        assert adapter.state.value == "connected"
        assert fake.calls_of("GET", "/gateway/bot") == []
    finally:
        await adapter.close()


@pytest.mark.parametrize("register", [True, False])
async def test_register_command_puts_ops(fake: FakeDiscord, tmp_path: Path, register: bool) -> None:
    adapter = make_adapter(fake, store_settings(tmp_path), register_command=register)
    try:
        await adapter.connect()  # connected once READY is handled, registration included
        puts = fake.calls_of("PUT", f"/applications/{APPLICATION}/commands")
        if register:
            assert [c.body for c in puts] == [[translate.command_definition()]]
            assert fake.commands == [translate.command_definition()]
        else:
            assert puts == []
    finally:
        await adapter.close()


def test_serve_builds_the_adapter_from_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", ENV["DISCORD_TOKEN"])  # serve reads the environment
    (tmp_path / "opsroom.toml").write_text('[adapters.discord]\ntoken = "env:DISCORD_TOKEN"\n')
    settings = load_settings(environ=ENV, cwd=tmp_path)
    assert settings.adapters["discord"]["api_url"] == "https://discord.com/api/v10"
    (adapter,) = create_adapters(settings, AdapterServices())
    assert isinstance(adapter, DiscordAdapter)
    assert adapter.config.gateway_url == ""
