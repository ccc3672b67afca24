"""Slack end to end: the fake Slack, the real Bolt adapter, the bridge and the real engine."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.fake_slack import BOT_USER, FakeSlack, Message
from adapters.slack_support import ALICE, CHANNEL, SECRET, make_adapter
from opsroom.adapters.slack import slack_http_endpoint
from opsroom.adapters.slack.adapter import SlackAdapter
from opsroom.catalog.scan import bundled_catalog_path
from opsroom.config import Settings
from opsroom.engine.bridge import Bridge
from opsroom.testing import Bot

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BOB = "U_BOB"
ROLES = [
    {"name": "ops", "members": [f"slack:{ALICE}", f"slack:{BOB}"], "allow": ["*"]},
    {"name": "storage-leads", "members": [f"slack:{BOB}"], "allow": ["storage *"]},
]


@dataclass
class Running:
    bot: Bot
    adapter: SlackAdapter
    fake: FakeSlack


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    server = await FakeSlack.start()
    yield server
    await server.stop()


@asynccontextmanager
async def running(
    fake: FakeSlack, tmp: Path, catalog: Path | str, *, mode: str = "socket"
) -> AsyncIterator[Running]:
    url = f"sqlite:///{tmp}/opsroom.db"
    settings = Settings.model_validate(
        {"store": {"url": url}, "roles": ROLES, "runner": {"foreground_seconds": 1}}
    )
    async with Bot.open(catalog_dir=str(catalog), store_url=url, settings=settings) as bot:
        adapter = make_adapter(fake, settings, mode)
        if mode == "http":
            fake.http_app = slack_http_endpoint(adapter)
            fake.signing_secret = SECRET
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
    fake: FakeSlack, predicate: Callable[[list[Message]], bool], timeout: float = 20
) -> list[Message]:
    """Poll #ops until `predicate` holds."""
    deadline = time.monotonic() + timeout
    while True:
        messages = fake.messages(CHANNEL)
        if predicate(messages):
            return messages
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen; #ops shows {[m.visible for m in messages]}")
        await asyncio.sleep(0.1)


def bot_replies(messages: list[Message], thread: str | None) -> list[Message]:
    """The bot's messages in one thread (None: top level)."""
    return [m for m in messages if m.user == BOT_USER and m.thread_ts == thread]


async def answered_after(fake: FakeSlack, text: str, expect: str) -> str:
    """Say `text` and wait for the bot's answer holding `expect`; the message's ts.

    A barrier instead of a pause: events are queued and dispatched in the order they
    arrive, so once this later message is answered, whatever an earlier event would have
    set off (a second answer, a job) has already started.
    """
    asked = await fake.say(CHANNEL, ALICE, text)
    await until(fake, lambda ms: any(expect in m.visible for m in bot_replies(ms, asked)))
    return asked


async def test_help_example_mention_and_slash_command(fake: FakeSlack, tmp_path: Path) -> None:
    async with running(fake, tmp_path, bundled_catalog_path()) as run:
        asked = await fake.say(CHANNEL, ALICE, "!help")
        await until(
            fake, lambda ms: any("store status" in m.visible for m in bot_replies(ms, asked))
        )

        status = await fake.say(CHANNEL, ALICE, "!store status 42")
        await until(
            fake, lambda ms: any("payment terminal" in m.visible for m in bot_replies(ms, status))
        )

        # A mention arrives twice (message + app_mention events): answered once.
        mention = await fake.say(CHANNEL, ALICE, f"<@{BOT_USER}> whoami")
        await until(
            fake, lambda ms: any(f"slack:{ALICE}" in m.visible for m in bot_replies(ms, mention))
        )
        await answered_after(fake, "!version", "opsroom")
        assert len(bot_replies(fake.messages(CHANNEL), mention)) == 1

        # /ops is acked at once and answered in the channel, not a thread.
        before = len(bot_replies(fake.messages(CHANNEL), None))
        envelope = await fake.slash(CHANNEL, ALICE, "store status 13")
        await fake.wait_ack(envelope)
        # Acked before the command has even answered: Slack's 3 s limit never waits on a job.
        assert len(bot_replies(fake.messages(CHANNEL), None)) == before
        await until(
            fake,
            lambda ms: (
                len(bot_replies(ms, None)) > before
                and any("payment terminal" in m.visible for m in bot_replies(ms, None))
            ),
        )
        assert run.adapter.state.value == "connected"


async def test_background_job_edits_one_status_message(fake: FakeSlack, tmp_path: Path) -> None:
    async with running(fake, tmp_path, FIXTURES / "jobs_catalog"):
        asked = await fake.say(CHANNEL, ALICE, "!slow ticker --count 10")
        messages = await until(
            fake,
            lambda ms: any(
                "tick 10" in m.visible and ":white_check_mark:" in m.visible
                for m in bot_replies(ms, asked)
            ),
        )
        ticking = [m for m in bot_replies(messages, asked) if "tick" in m.visible]
        assert len(ticking) == 1, "one status message, edited in place"
        assert ticking[0].edited
        updates = fake.calls_of("chat.update")
        assert updates, "the status message was updated with chat.update"
        assert {c.params["ts"] for c in updates} == {ticking[0].ts}


async def test_approval_by_button_runs_the_job(fake: FakeSlack, tmp_path: Path) -> None:
    async with running(fake, tmp_path, FIXTURES / "approval_catalog") as run:
        asked = await fake.say(CHANNEL, ALICE, "!storage wipe vol7")
        messages = await until(
            fake, lambda ms: any("[Approve]" in m.visible for m in bot_replies(ms, asked))
        )
        card = next(m for m in bot_replies(messages, asked) if "[Approve]" in m.visible)
        value = next(
            e["value"]
            for b in card.blocks
            if b["type"] == "actions"
            for e in b["elements"]
            if e["value"].startswith("approve:")
        )
        job_id = int(value.split(":")[1])

        await fake.click(CHANNEL, card.ts, ALICE, value)  # her own job: refused
        await until(fake, lambda ms: any("yourself" in m.visible for m in ms))
        job = await run.bot.app.store.get_job(job_id)
        assert job is not None
        assert job.state.value == "awaiting_approval"

        envelope = await fake.click(CHANNEL, card.ts, BOB, value)
        await fake.wait_ack(envelope)
        await until(fake, lambda ms: any("wiped vol7" in m.visible for m in ms))
        job = await run.bot.app.store.get_job(job_id)
        assert job is not None
        assert job.state.value == "succeeded"


async def test_socket_mode_redelivery_runs_once(fake: FakeSlack, tmp_path: Path) -> None:
    async with running(fake, tmp_path, FIXTURES / "jobs_catalog") as run:
        message = Message(ts="1800000000.000001", user=ALICE, text="!slow ticker --count 2")
        fake.channels.setdefault(CHANNEL, []).append(message)
        body = fake.event_callback(fake._message_event(CHANNEL, message), event_id="Ev0REDELIVER")
        first = await fake.envelope("events_api", body)
        again = await fake.envelope("events_api", body, retry_attempt=1)
        await fake.wait_ack(first)
        await fake.wait_ack(again)
        await until(
            fake, lambda ms: any("tick 2" in m.visible for m in bot_replies(ms, message.ts))
        )
        await answered_after(fake, "!slow ticker --count 1", "tick 1")
        assert len(await run.bot.app.store.find_jobs()) == 2, "the redelivery and the marker"


async def test_http_retry_runs_once_and_acks_before_the_job(
    fake: FakeSlack, tmp_path: Path
) -> None:
    async with running(fake, tmp_path, FIXTURES / "jobs_catalog", mode="http") as run:
        message = Message(ts="1800000000.000002", user=ALICE, text="!slow ticker --count 10")
        fake.channels.setdefault(CHANNEL, []).append(message)
        raw = json.dumps(
            fake.event_callback(fake._message_event(CHANNEL, message), event_id="Ev0RETRY")
        ).encode()
        response = await fake.post_http(raw, {"content-type": "application/json"})
        assert response.status_code == 200
        # Acked before the job ends: it prints "tick 10" only after 2.7 s.
        replies = bot_replies(fake.messages(CHANNEL), message.ts)
        assert not any("tick 10" in m.visible for m in replies)
        retried = await fake.post_http(
            raw,
            {
                "content-type": "application/json",
                "x-slack-retry-num": "1",
                "x-slack-retry-reason": "http_timeout",
            },
        )
        assert retried.status_code == 200
        await until(
            fake, lambda ms: any("tick 10" in m.visible for m in bot_replies(ms, message.ts))
        )
        assert len(await run.bot.app.store.find_jobs()) == 1


# Six minutes away, where Slack's window is five: at 301 s, a request from the future that
# took over a second to check (a loaded machine) was within the window again.
@pytest.mark.parametrize(
    ("secret", "age"),
    [("not-the-signing-secret", 0), (SECRET, 360), (SECRET, -360)],
    ids=["bad-signature", "stale-timestamp", "future-timestamp"],
)
async def test_http_refuses_unsigned_or_stale_requests(
    fake: FakeSlack, tmp_path: Path, secret: str, age: int
) -> None:
    async with running(fake, tmp_path, FIXTURES / "jobs_catalog", mode="http") as run:
        message = Message(ts="1800000000.000003", user=ALICE, text="!slow ticker --count 1")
        raw = json.dumps(fake.event_callback(fake._message_event(CHANNEL, message))).encode()
        response = await fake.post_http(
            raw,
            {"content-type": "application/json"},
            secret=secret,
            timestamp=int(time.time()) - age,
        )
        assert response.status_code == 401
        marker = await answered_after(fake, "!slow ticker --count 1", "tick 1")
        assert len(await run.bot.app.store.find_jobs()) == 1, "the marker's job only"
        assert {m.thread_ts for m in fake.messages(CHANNEL) if m.user == BOT_USER} == {marker}


async def test_rate_limit_retry_after_is_honoured(fake: FakeSlack, tmp_path: Path) -> None:
    async with running(fake, tmp_path, bundled_catalog_path()):
        fake.rate_limit("chat.postMessage", times=1, retry_after=1)
        asked = await fake.say(CHANNEL, ALICE, "!store status 42")
        await until(
            fake, lambda ms: any("payment terminal" in m.visible for m in bot_replies(ms, asked))
        )
        posts = fake.calls_of("chat.postMessage")
        assert posts[0].status == 429
        assert posts[1].status == 200
        assert posts[1].at - posts[0].at >= 1.0, "waited for Retry-After"
        assert posts[1].params["thread_ts"] == asked, "nothing lost: the same message, retried"
