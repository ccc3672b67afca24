"""Discord end to end: the fake Discord, the real adapter, the bridge and the real engine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.discord_support import ALICE, BOB, CHANNEL, make_adapter
from adapters.fake_discord import BOT_USER, FakeDiscord, Message
from opsroom.adapters.discord.adapter import DiscordAdapter
from opsroom.catalog.scan import bundled_catalog_path
from opsroom.config import Settings
from opsroom.engine.adapters import engine_services
from opsroom.engine.bridge import Bridge
from opsroom.testing import Bot

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ROLES = [
    {"name": "ops", "members": [f"discord:{ALICE}", f"discord:{BOB}"], "allow": ["*"]},
    {"name": "storage-leads", "members": [f"discord:{BOB}"], "allow": ["storage *"]},
]


@dataclass
class Running:
    bot: Bot
    adapter: DiscordAdapter
    fake: FakeDiscord


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = await FakeDiscord.start()
    yield server
    await server.stop()


@asynccontextmanager
async def running(fake: FakeDiscord, tmp: Path, catalog: Path | str) -> AsyncIterator[Running]:
    url = f"sqlite:///{tmp}/opsroom.db"
    settings = Settings.model_validate(
        {"store": {"url": url}, "roles": ROLES, "runner": {"foreground_seconds": 1}}
    )
    async with Bot.open(catalog_dir=str(catalog), store_url=url, settings=settings) as bot:
        adapter = make_adapter(fake, settings, engine_services(bot.app.dispatcher))
        bridge = Bridge(adapter, bot.app.dispatcher)
        task = asyncio.create_task(bridge.run())
        try:
            deadline = time.monotonic() + 10
            while adapter.state.value != "connected":
                assert time.monotonic() < deadline, "the adapter did not connect"
                await asyncio.sleep(0.05)
            yield Running(bot, adapter, fake)
        finally:
            task.cancel()
            await bridge.close()


async def until(
    fake: FakeDiscord, predicate: Callable[[list[Message]], bool], timeout: float = 20
) -> list[Message]:
    """Poll #ops (and its threads) until `predicate` holds."""
    deadline = time.monotonic() + timeout
    while True:
        messages = fake.messages(CHANNEL)
        if predicate(messages):
            return messages
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen; #ops shows {[m.visible for m in messages]}")
        await asyncio.sleep(0.1)


def in_thread(messages: list[Message], thread: str) -> list[Message]:
    """The bot's messages in the thread started from message `thread`."""
    return [m for m in messages if m.author == BOT_USER and m.channel_id == thread]


async def answered(fake: FakeDiscord, text: str) -> str:
    """Alice says `text` and waits for the bot's answer in its thread (a marker)."""
    asked = await fake.say(CHANNEL, ALICE, text)
    await until(fake, lambda ms: bool(in_thread(ms, asked)))
    return asked


async def test_help_mention_and_slash_command(fake: FakeDiscord, tmp_path: Path) -> None:
    async with running(fake, tmp_path, bundled_catalog_path()):
        asked = await fake.say(CHANNEL, ALICE, "!help")
        await until(fake, lambda ms: any("store status" in m.visible for m in in_thread(ms, asked)))
        assert fake.threads[asked] == CHANNEL, "the reply is in a thread of the request"

        mention = await fake.say(CHANNEL, ALICE, f"<@{BOT_USER}> whoami")
        await until(
            fake, lambda ms: any(f"discord:{ALICE}" in m.visible for m in in_thread(ms, mention))
        )

        interaction = await fake.slash(CHANNEL, ALICE, "store status 13")
        answer = await fake.wait_answer(interaction)
        assert answer["type"] == 4
        assert answer["data"]["content"] == "`/ops store status 13`"
        messages = await until(
            fake,
            lambda ms: any("payment terminal" in m.visible and m.channel_id == CHANNEL for m in ms),
        )
        reply = next(
            m
            for m in messages
            if m.channel_id == CHANNEL and m.author == BOT_USER and "payment terminal" in m.visible
        )
        callback = next(c for c in fake.calls if c.path.startswith(f"/interactions/{interaction}"))
        post = next(c for c in fake.calls if c.body and c.body.get("content") == reply.content)
        assert fake.calls.index(callback) < fake.calls.index(post), "answered before it ran"


async def test_background_job_edits_one_status_message(fake: FakeDiscord, tmp_path: Path) -> None:
    async with running(fake, tmp_path, FIXTURES / "jobs_catalog"):
        asked = await fake.say(CHANNEL, ALICE, "!slow ticker --count 10")
        messages = await until(
            fake,
            lambda ms: any(
                "tick 10" in m.visible and "✅" in m.visible for m in in_thread(ms, asked)
            ),
        )
        ticking = [m for m in in_thread(messages, asked) if "tick" in m.visible]
        assert len(ticking) == 1, "one status message, edited in place"
        assert ticking[0].edited
        edits = fake.calls_of("PATCH", "/channels/")
        assert edits, "the status message was edited with PATCH"
        assert {c.path for c in edits} == {f"/channels/{asked}/messages/{ticking[0].id}"}


async def test_approval_by_a_second_users_button_runs_the_job_once(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    async with running(fake, tmp_path, FIXTURES / "approval_catalog") as run:
        asked = await fake.say(CHANNEL, ALICE, "!storage wipe vol7")
        messages = await until(
            fake, lambda ms: any("[Approve]" in m.visible for m in in_thread(ms, asked))
        )
        card = next(m for m in in_thread(messages, asked) if "[Approve]" in m.visible)
        value = next(
            b["custom_id"]
            for row in card.components
            for b in row["components"]
            if b["custom_id"].startswith("approve:")
        )
        job_id = int(value.split(":")[1])

        own = await fake.click(card.id, ALICE, value)  # her own job: refused
        assert (await fake.wait_answer(own))["type"] == 6
        await until(fake, lambda ms: any("yourself" in m.visible for m in ms))
        job = await run.bot.app.store.get_job(job_id)
        assert job is not None
        assert job.state.value == "awaiting_approval"

        click = await fake.click(card.id, BOB, value)
        await fake.wait_answer(click)
        await until(fake, lambda ms: any("wiped vol7" in m.visible for m in ms))
        await fake.replay("INTERACTION_CREATE", click)  # the same click delivered again
        await answered(fake, "!whoami")  # handled after the replay
        job = await run.bot.app.store.get_job(job_id)
        assert job is not None
        assert job.state.value == "succeeded"
        wiped = [m for m in fake.messages(CHANNEL) if "wiped vol7" in m.visible]
        assert len(wiped) == 1, "the job ran once"


async def test_a_duplicated_message_create_runs_once(fake: FakeDiscord, tmp_path: Path) -> None:
    async with running(fake, tmp_path, FIXTURES / "jobs_catalog") as run:
        asked = await fake.say(CHANNEL, ALICE, "!slow ticker --count 2")
        await fake.replay("MESSAGE_CREATE", asked)
        await answered(fake, "!whoami")
        messages = await until(
            fake,
            lambda ms: any(
                "tick 2" in m.visible and "✅" in m.visible for m in in_thread(ms, asked)
            ),
        )
        assert len(in_thread(messages, asked)) == 1, "one status message: one run"
        assert len(await run.bot.app.store.find_jobs()) == 1


async def test_resume_after_a_drop_delivers_what_was_missed(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    async with running(fake, tmp_path, bundled_catalog_path()) as run:
        await fake.drop()
        while run.adapter.state.value == "connected":
            await asyncio.sleep(0.02)
        asked = await fake.say(CHANNEL, ALICE, "!store status 42")  # while the bot is away
        fake.restore()
        await until(
            fake, lambda ms: any("payment terminal" in m.visible for m in in_thread(ms, asked))
        )
        assert len(fake.identifies) == 1, "the session was resumed, not identified anew"
        (resume,) = fake.resumes
        assert resume["session_id"] == run.adapter.gateway.session_id
        assert len(in_thread(fake.messages(CHANNEL), asked)) == 1


async def test_rate_limit_retry_after_is_honoured(fake: FakeDiscord, tmp_path: Path) -> None:
    async with running(fake, tmp_path, bundled_catalog_path()):
        fake.rate_limit("POST", "/channels/", retry_after=1.0)
        asked = await fake.say(CHANNEL, ALICE, "!store status 42")
        await until(
            fake, lambda ms: any("payment terminal" in m.visible for m in in_thread(ms, asked))
        )
        posts = fake.calls_of("POST", "/channels/")
        assert posts[0].status == 429
        assert posts[1].status in (200, 201)
        assert posts[1].path == posts[0].path, "nothing lost: the same request, retried"
        assert posts[1].at - posts[0].at >= 1.0, "waited for retry_after"
