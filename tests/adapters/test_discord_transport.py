"""The Discord REST client's rate limits and the gateway's heartbeats, RESUME and opcodes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from adapters.discord_support import ALICE, CHANNEL, DiscordHarness, make_adapter, store_settings
from adapters.fake_discord import FakeDiscord
from opsroom.adapters.discord.adapter import DiscordAdapter
from opsroom.model.messages import Inbound

MESSAGES = f"/channels/{CHANNEL}/messages"


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = await FakeDiscord.start()
    yield server
    await server.stop()


@pytest.fixture
async def adapter(fake: FakeDiscord, tmp_path: Path) -> AsyncIterator[DiscordAdapter]:
    connected = make_adapter(fake, store_settings(tmp_path))
    await connected.connect()
    yield connected
    await connected.close()


async def until(predicate: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not in time: {what}"
        await asyncio.sleep(0.02)


async def test_a_spent_bucket_is_waited_for_without_a_429(
    fake: FakeDiscord, adapter: DiscordAdapter
) -> None:
    fake.exhaust_bucket(MESSAGES, reset_after=1.0)
    body = {"content": "one"}
    await adapter.rest.request("POST", MESSAGES, json_body=body)
    await adapter.rest.request("POST", MESSAGES, json_body={"content": "two"})
    first, second = fake.calls_of("POST", MESSAGES)
    assert (first.status, second.status) == (200, 200), "never ran into a 429"
    assert second.at - first.at >= 1.0, "waited for X-RateLimit-Reset-After"


async def test_a_global_429_holds_back_other_routes(
    fake: FakeDiscord, adapter: DiscordAdapter
) -> None:
    fake.rate_limit("POST", MESSAGES, retry_after=1.0, global_=True)
    first = asyncio.create_task(adapter.rest.request("POST", MESSAGES, json_body={"content": "a"}))
    await until(lambda: any(c.status == 429 for c in fake.calls), "the 429")
    other = f"/channels/{CHANNEL}/messages/123/reactions/✅/@me"
    await adapter.rest.request("PUT", other)
    await first
    limited = next(c for c in fake.calls if c.status == 429)
    (reaction,) = fake.calls_of("PUT", "/channels/")
    assert reaction.at - limited.at >= 1.0, "a global limit holds back every route"
    assert [c.status for c in fake.calls_of("POST", MESSAGES)] == [429, 200]


async def test_heartbeats_are_sent_and_a_silent_link_is_replaced(
    fake: FakeDiscord, adapter: DiscordAdapter
) -> None:
    await until(lambda: fake.heartbeats >= 2, "heartbeats")
    fake.ack_heartbeats = False  # a zombie connection: nothing comes back
    await until(lambda: len(fake.resumes) == 1, "a RESUME on a new connection")
    fake.ack_heartbeats = True
    await until(lambda: adapter.state.value == "connected", "connected again")
    assert len(fake.identifies) == 1


async def test_reconnect_opcode_resumes_and_invalid_session_identifies_anew(
    fake: FakeDiscord, adapter: DiscordAdapter
) -> None:
    await fake.send_op(7)  # RECONNECT
    await until(lambda: len(fake.resumes) == 1, "a RESUME")
    await until(lambda: adapter.state.value == "connected", "connected again")
    await fake.send_op(9, False)  # INVALID_SESSION, not resumable
    await until(lambda: len(fake.identifies) == 2, "a new IDENTIFY")
    await until(lambda: adapter.state.value == "connected", "connected again")
    harness = DiscordHarness(adapter, fake)
    events = adapter.events()
    await harness.say("after a new session")
    event = await asyncio.wait_for(anext(events), 10)
    assert isinstance(event, Inbound)
    assert event.principal == f"discord:{ALICE}"
