"""Mattermost end to end: the fake server, the real adapter, the bridge, the real engine
and opsroom's web app (its gate and the hook routes `opsroom serve` mounts)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.fake_mattermost import BOT_USER, COMMAND_TOKEN, FakeMattermost, Post
from adapters.mattermost_support import ALICE, BOB, CHANNEL, make_adapter
from opsroom.adapters.mattermost.adapter import MattermostAdapter
from opsroom.catalog.scan import bundled_catalog_path
from opsroom.config import Settings
from opsroom.engine.adapters import engine_services
from opsroom.engine.bridge import Bridge
from opsroom.testing import Bot
from opsroom.web.app import create_app
from opsroom.web.server import _mount_hooks

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ROLES = [
    {"name": "ops", "members": [f"mattermost:{ALICE}", f"mattermost:{BOB}"], "allow": ["*"]},
    {"name": "storage-leads", "members": [f"mattermost:{BOB}"], "allow": ["storage *"]},
]


@dataclass
class Running:
    bot: Bot
    adapter: MattermostAdapter
    fake: FakeMattermost


@pytest.fixture
async def fake() -> AsyncIterator[FakeMattermost]:
    server = await FakeMattermost.start()
    yield server
    await server.stop()


@asynccontextmanager
async def running(
    fake: FakeMattermost, tmp: Path, catalog: Path | str, **table: Any
) -> AsyncIterator[Running]:
    url = f"sqlite:///{tmp}/opsroom.db"
    settings = Settings.model_validate(
        {"store": {"url": url}, "roles": ROLES, "runner": {"foreground_seconds": 1}}
    )
    async with Bot.open(catalog_dir=str(catalog), store_url=url, settings=settings) as bot:
        adapter = make_adapter(
            fake, settings, services=engine_services(bot.app.dispatcher), **table
        )
        web = create_app(bot.app)
        _mount_hooks(web, [adapter])  # as `opsroom serve` mounts it
        fake.hooks = web
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
    fake: FakeMattermost, predicate: Callable[[list[Post]], bool], timeout: float = 20
) -> list[Post]:
    """Poll ~ops until `predicate` holds."""
    deadline = time.monotonic() + timeout
    while True:
        posts = fake.posts(CHANNEL)
        if predicate(posts):
            return posts
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen; ~ops shows {[p.visible for p in posts]}")
        await asyncio.sleep(0.1)


def bot_replies(posts: list[Post], thread: str) -> list[Post]:
    """The bot's posts in one thread ("": top level)."""
    return [p for p in posts if p.user_id == BOT_USER and p.root_id == thread]


async def test_help_mention_and_slash_command(fake: FakeMattermost, tmp_path: Path) -> None:
    async with running(fake, tmp_path, bundled_catalog_path()):
        asked = await fake.say(CHANNEL, ALICE, "!help")
        await until(
            fake, lambda ps: any("store status" in p.visible for p in bot_replies(ps, asked))
        )
        mention = await fake.say(CHANNEL, ALICE, "@ops whoami")
        await until(
            fake,
            lambda ps: any(f"mattermost:{ALICE}" in p.visible for p in bot_replies(ps, mention)),
        )
        response = await fake.slash(CHANNEL, BOB, "store status 13")
        assert response.status_code == 200
        assert response.json()["response_type"] == "ephemeral"
        await until(
            fake, lambda ps: any("payment terminal" in p.visible for p in bot_replies(ps, ""))
        )


@pytest.mark.parametrize("token", ["not-the-command-token", ""], ids=["wrong", "missing"])
async def test_slash_command_with_a_bad_token_is_refused(
    fake: FakeMattermost, tmp_path: Path, token: str
) -> None:
    async with running(fake, tmp_path, FIXTURES / "jobs_catalog") as run:
        response = await fake.slash(CHANNEL, ALICE, "slow ticker --count 1", token=token)
        assert response.status_code == 401
        # Nothing ran: a good command afterwards is the first and only job.
        good = await fake.slash(CHANNEL, ALICE, "slow ticker --count 1", token=COMMAND_TOKEN)
        assert good.status_code == 200
        await until(fake, lambda ps: any("tick 1" in p.visible for p in ps))
        assert len(await run.bot.app.store.find_jobs()) == 1


async def test_without_a_command_token_every_slash_command_is_refused(
    fake: FakeMattermost, tmp_path: Path
) -> None:
    async with running(fake, tmp_path, FIXTURES / "jobs_catalog", command_token=None) as run:
        response = await fake.slash(CHANNEL, ALICE, "slow ticker --count 1")
        assert response.status_code == 401
        await fake.say(CHANNEL, ALICE, "!slow ticker --count 1")  # a barrier: this one runs
        await until(fake, lambda ps: any("tick 1" in p.visible for p in ps))
        assert len(await run.bot.app.store.find_jobs()) == 1


async def test_background_job_edits_one_status_post(fake: FakeMattermost, tmp_path: Path) -> None:
    async with running(fake, tmp_path, FIXTURES / "jobs_catalog"):
        asked = await fake.say(CHANNEL, ALICE, "!slow ticker --count 10")
        posts = await until(
            fake,
            lambda ps: any(
                "tick 10" in p.visible and ":white_check_mark:" in p.visible
                for p in bot_replies(ps, asked)
            ),
        )
        ticking = [p for p in bot_replies(posts, asked) if "tick" in p.visible]
        assert len(ticking) == 1, "one status post, edited in place"
        assert ticking[0].edited
        patches = fake.calls_of("PUT posts/patch")
        assert patches, "the status post was edited with PUT /posts/{id}/patch"
        assert all(c.status == 200 for c in patches)


async def test_approval_by_button_of_a_second_user_runs_once(
    fake: FakeMattermost, tmp_path: Path
) -> None:
    async with running(fake, tmp_path, FIXTURES / "approval_catalog") as run:
        asked = await fake.say(CHANNEL, ALICE, "!storage wipe vol7")
        posts = await until(
            fake, lambda ps: any("[Approve]" in p.visible for p in bot_replies(ps, asked))
        )
        card = next(p for p in bot_replies(posts, asked) if "[Approve]" in p.visible)
        value = next(
            a["integration"]["context"]["value"]
            for attachment in card.attachments
            for a in attachment["actions"]
            if a["integration"]["context"]["value"].startswith("approve:")
        )
        job_id = int(value.split(":")[1])

        # A forged click (no installation secret) is refused before anything runs.
        url, forged = fake.action_body(card.id, BOB, value)
        forged["context"]["secret"] = "guessed"
        assert (await fake.post_hook(url, json_body=forged)).status_code == 401

        assert (await fake.click(card.id, ALICE, value)).status_code == 200  # her own job
        await until(fake, lambda ps: any("yourself" in p.visible for p in bot_replies(ps, asked)))
        job = await run.bot.app.store.get_job(job_id)
        assert job is not None
        assert job.state.value == "awaiting_approval"

        assert (await fake.click(card.id, BOB, value)).status_code == 200
        assert (await fake.click(card.id, BOB, value)).status_code == 200  # clicked twice
        await until(fake, lambda ps: any("wiped vol7" in p.visible for p in ps))
        job = await run.bot.app.store.get_job(job_id)
        assert job is not None
        assert job.state.value == "succeeded"
        wiped = [p for p in fake.posts(CHANNEL) if "wiped vol7" in p.visible]
        assert len(wiped) == 1, "the job ran once"
        assert wiped[0].root_id == asked, "the answer stays in the request's thread"


async def test_a_duplicated_websocket_delivery_runs_once(
    fake: FakeMattermost, tmp_path: Path
) -> None:
    async with running(fake, tmp_path, FIXTURES / "jobs_catalog") as run:
        asked = await fake.say(CHANNEL, ALICE, "!slow ticker --count 2")
        await fake.deliver_again(asked)
        await until(fake, lambda ps: any("tick 2" in p.visible for p in bot_replies(ps, asked)))
        # A barrier: the repeat arrived before this post, so it has been dealt with too.
        barrier = await fake.say(CHANNEL, ALICE, "!help")
        await until(fake, lambda ps: bool(bot_replies(ps, barrier)))
        assert len(await run.bot.app.store.find_jobs()) == 1
        assert len([p for p in bot_replies(fake.posts(CHANNEL), asked) if "tick" in p.visible]) == 1


async def test_reconnects_after_the_websocket_drops(fake: FakeMattermost, tmp_path: Path) -> None:
    async with running(fake, tmp_path, bundled_catalog_path()) as run:
        await fake.drop()
        deadline = time.monotonic() + 10
        while run.adapter.state.value == "connected":
            assert time.monotonic() < deadline, "the drop was not noticed"
            await asyncio.sleep(0.05)
        fake.restore()
        deadline = time.monotonic() + 30
        while run.adapter.state.value != "connected":
            assert time.monotonic() < deadline, "did not reconnect"
            await asyncio.sleep(0.05)
        assert fake.connections == 2
        asked = await fake.say(CHANNEL, ALICE, "!store status 42")
        await until(
            fake, lambda ps: any("payment terminal" in p.visible for p in bot_replies(ps, asked))
        )


async def test_rate_limit_retry_after_is_honoured(fake: FakeMattermost, tmp_path: Path) -> None:
    async with running(fake, tmp_path, bundled_catalog_path()):
        fake.rate_limit("POST posts", times=1, retry_after=1)
        asked = await fake.say(CHANNEL, ALICE, "!store status 42")
        await until(
            fake, lambda ps: any("payment terminal" in p.visible for p in bot_replies(ps, asked))
        )
        posts = fake.calls_of("POST posts")
        assert posts[0].status == 429
        assert posts[1].status == 200
        assert posts[1].at - posts[0].at >= 1.0, "waited for Retry-After"
        assert posts[1].body["root_id"] == asked, "nothing lost: the same post, retried"


async def test_hooks_refuse_junk_and_oversized_bodies(fake: FakeMattermost, tmp_path: Path) -> None:
    async with running(fake, tmp_path, FIXTURES / "jobs_catalog") as run:
        assert fake.hooks is not None
        transport = httpx.ASGITransport(app=fake.hooks)
        async with httpx.AsyncClient(transport=transport, base_url="http://opsroom") as client:
            junk = await client.post(
                "/hooks/mattermost/actions",
                content=b"[1, 2",
                headers={"content-type": "application/json"},
            )
            assert junk.status_code == 400
            form = fake.slash_form(CHANNEL, ALICE, "slow ticker " + "x" * 300_000, COMMAND_TOKEN)
            huge = await client.post("/hooks/mattermost/command", data=form)
            assert huge.status_code == 413
        assert await run.bot.app.store.find_jobs() == []
        assert fake.calls_of("POST posts") == []
