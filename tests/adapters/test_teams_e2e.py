"""Teams end to end: the fake Bot Framework, the real adapter behind the real web app
(POST /hooks/teams through the HTTP gate), the bridge and the real engine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import RSAKey

from adapters.fake_teams import ALICE, BOB, BOT, CHANNEL, KID, TENANT, FakeTeams, Message
from adapters.teams_support import make_adapter
from opsroom.adapters.teams.adapter import TeamsAdapter
from opsroom.catalog.scan import bundled_catalog_path
from opsroom.config import Settings
from opsroom.engine.adapters import engine_services
from opsroom.engine.bridge import Bridge
from opsroom.testing import Bot
from opsroom.web.app import create_app
from opsroom.web.server import _mount_hooks

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ROLES = [
    {"name": "ops", "members": [f"teams:{ALICE.aad}", f"teams:{BOB.aad}"], "allow": ["*"]},
    {"name": "storage-leads", "members": [f"teams:{BOB.aad}"], "allow": ["storage *"]},
]


@dataclass
class Running:
    bot: Bot
    adapter: TeamsAdapter
    fake: FakeTeams


@pytest.fixture
async def fake() -> AsyncIterator[FakeTeams]:
    server = await FakeTeams.start()
    yield server
    await server.stop()


@asynccontextmanager
async def running(fake: FakeTeams, tmp: Path, catalog: Path | str) -> AsyncIterator[Running]:
    url = f"sqlite:///{tmp}/opsroom.db"
    settings = Settings.model_validate(
        {"store": {"url": url}, "roles": ROLES, "runner": {"foreground_seconds": 1}}
    )
    async with Bot.open(catalog_dir=str(catalog), store_url=url, settings=settings) as bot:
        adapter = make_adapter(fake, settings, engine_services(bot.app.dispatcher))
        web = create_app(bot.app)
        _mount_hooks(web, [adapter])
        fake.bot_app = web  # the Connector posts to the whole web app, as under `serve`
        bridge = Bridge(adapter, bot.app.dispatcher, outbox=bot.app.store, redeliver_every=0.2)
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
    fake: FakeTeams, predicate: Callable[[list[Message]], bool], timeout: float = 20
) -> list[Message]:
    """Poll the channel until `predicate` holds."""
    deadline = time.monotonic() + timeout
    while True:
        messages = fake.messages(CHANNEL)
        if predicate(messages):
            return messages
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen; the channel shows {[m.visible for m in messages]}")
        await asyncio.sleep(0.1)


def bot_replies(messages: list[Message], thread: str | None) -> list[Message]:
    """The bot's messages in one reply chain."""
    return [m for m in messages if m.sender == BOT and m.reply_to == thread]


async def test_help_is_answered_with_the_token_from_the_token_endpoint(
    fake: FakeTeams, tmp_path: Path
) -> None:
    async with running(fake, tmp_path, bundled_catalog_path()):
        asked = await fake.say(ALICE, "!help")
        await until(
            fake, lambda ms: any("store status" in m.visible for m in bot_replies(ms, asked))
        )
        posts = [c for c in fake.calls_to("POST") if c.status == 200]
        assert posts, "the reply went through the Connector"
        assert all(c.authorization.removeprefix("Bearer ") in fake.issued for c in posts)
        assert posts[0].path.endswith(f"/activities/{asked}"), "a reply to the request"
        tokens = [c for c in fake.calls if c.path == "/token" and c.status == 200]
        assert len(tokens) == 1, "the client-credentials token is cached, not asked per call"

        # A mention of the bot is stripped: `<at>ops</at> whoami` is `!whoami`.
        mention = await fake.say(ALICE, "whoami", mention=True)
        await until(
            fake,
            lambda ms: any(f"teams:{ALICE.aad}" in m.visible for m in bot_replies(ms, mention)),
        )
        assert not any(ALICE.name in m.visible for m in bot_replies(fake.messages(), mention))


def _bad_token(fake: FakeTeams, case: str) -> dict[str, Any]:
    def stranger() -> RSAKey:
        return RSAKey.generate_key(2048, parameters={"kid": KID})

    def unknown() -> RSAKey:
        return RSAKey.generate_key(2048, parameters={"kid": "not-published"})

    now = int(time.time())
    cases: dict[str, Callable[[], dict[str, Any]]] = {
        "alg-none": lambda: {"token": fake.mint(header={"alg": "none"})},
        "hs256": lambda: {"token": fake.mint(header={"alg": "HS256"})},
        "unknown-kid": lambda: {"token": fake.mint(key=unknown())},
        "forged-signature": lambda: {"token": fake.mint(key=stranger())},
        "wrong-audience": lambda: {"token": fake.mint(aud="someone-elses-app")},
        "wrong-issuer": lambda: {"token": fake.mint(iss="https://sts.windows.net/evil/")},
        "expired-beyond-skew": lambda: {"token": fake.mint(exp=now - 301 - 5, nbf=now - 3600)},
        "not-yet-valid": lambda: {"token": fake.mint(nbf=now + 600)},
        "no-expiry": lambda: {"token": fake.mint(exp=None)},
        "service-url-mismatch": lambda: {"token": fake.mint(serviceurl="https://evil.example/")},
        "missing-header": lambda: {"token": None},
        "not-bearer": lambda: {"token": None, "headers": {"authorization": "Basic YTpi"}},
    }
    return cases[case]()


@pytest.mark.parametrize(
    "case",
    [
        "alg-none",
        "hs256",
        "unknown-kid",
        "forged-signature",
        "wrong-audience",
        "wrong-issuer",
        "expired-beyond-skew",
        "not-yet-valid",
        "no-expiry",
        "service-url-mismatch",
        "missing-header",
        "not-bearer",
    ],
)
async def test_bad_tokens_get_401_and_run_nothing(
    fake: FakeTeams, tmp_path: Path, case: str
) -> None:
    async with running(fake, tmp_path, FIXTURES / "jobs_catalog") as run:
        bad = _bad_token(fake, case)
        activity = fake.activity(ALICE, text="!slow ticker --count 1")
        response = await fake.post(activity, token=bad["token"], headers=bad.get("headers"))
        assert response.status_code == 401
        # The same activity with a good token runs: only the token made the difference.
        good = await fake.post(fake.activity(ALICE, text="!help"))
        assert good.status_code == 200
        await until(fake, lambda ms: any("slow ticker" in m.visible for m in ms))
        assert await run.bot.app.store.find_jobs() == []
        replies = bot_replies(fake.messages(), activity["id"])
        assert replies == [], "nothing was said to the refused activity"


async def test_expiry_within_five_minutes_of_skew_is_accepted(
    fake: FakeTeams, tmp_path: Path
) -> None:
    async with running(fake, tmp_path, bundled_catalog_path()):
        activity = fake.activity(ALICE, text="!help")
        token = fake.mint(exp=int(time.time()) - 240)
        assert (await fake.post(activity, token=token)).status_code == 200
        await until(fake, lambda ms: bool(bot_replies(ms, activity["id"])))


async def test_another_tenant_is_refused_and_runs_nothing(fake: FakeTeams, tmp_path: Path) -> None:
    async with running(fake, tmp_path, FIXTURES / "jobs_catalog") as run:
        activity = fake.activity(
            ALICE, text="!slow ticker --count 1", tenant="00000000-other-tenant"
        )
        response = await fake.post(activity)
        assert response.status_code == 403
        # Refused before anything was queued; the same activity from our tenant runs.
        ours = fake.activity(ALICE, text="!help", tenant=TENANT)
        assert (await fake.post(ours)).status_code == 200
        await until(fake, lambda ms: bool(bot_replies(ms, ours["id"])))
        assert await run.bot.app.store.find_jobs() == []
        assert bot_replies(fake.messages(), activity["id"]) == []


async def test_rotated_signing_key_is_fetched_once(fake: FakeTeams, tmp_path: Path) -> None:
    async with running(fake, tmp_path, bundled_catalog_path()):
        fetched = len([c for c in fake.calls if c.path == "/keys"])
        key = fake.rotate()
        activity = fake.activity(ALICE, text="!help")
        assert (await fake.post(activity, token=fake.mint(key=key))).status_code == 200
        assert len([c for c in fake.calls if c.path == "/keys"]) == fetched + 1
        again = fake.activity(ALICE, text="!version")
        assert (await fake.post(again, token=fake.mint(key=key))).status_code == 200
        assert len([c for c in fake.calls if c.path == "/keys"]) == fetched + 1, "cached"


async def test_approval_by_card_from_a_second_user_runs_once(
    fake: FakeTeams, tmp_path: Path
) -> None:
    async with running(fake, tmp_path, FIXTURES / "approval_catalog") as run:
        asked = await fake.say(ALICE, "!storage wipe vol7")
        messages = await until(
            fake, lambda ms: any(m.card is not None for m in bot_replies(ms, asked))
        )
        card = next(m for m in bot_replies(messages, asked) if m.card is not None)
        assert card.card is not None
        approve = next(
            a for a in card.card["actions"] if str(a["data"]["opsroom"]).startswith("approve:")
        )
        assert approve["type"] == "Action.Submit"
        value = approve["data"]["opsroom"]
        job_id = int(value.split(":")[1])

        assert (await fake.click(ALICE, card.id, value)).status_code == 200  # her own job
        await until(fake, lambda ms: any("yourself" in m.visible for m in ms))
        job = await run.bot.app.store.get_job(job_id)
        assert job is not None
        assert job.state.value == "awaiting_approval"

        click = fake.activity(BOB, thread=asked, replyToId=card.id, value={"opsroom": value})
        assert (await fake.post(click)).status_code == 200
        assert (await fake.post(click)).status_code == 200  # the Connector retried it
        await until(fake, lambda ms: any("wiped vol7" in m.visible for m in ms))
        job = await run.bot.app.store.get_job(job_id)
        assert job is not None
        assert job.state.value == "succeeded"
        assert sum("wiped vol7" in m.visible for m in fake.messages()) == 1
        assert len(await run.bot.app.store.find_jobs()) == 1


async def test_progress_is_updated_in_place(fake: FakeTeams, tmp_path: Path) -> None:
    async with running(fake, tmp_path, FIXTURES / "jobs_catalog"):
        asked = await fake.say(ALICE, "!slow ticker --count 10")
        messages = await until(
            fake,
            lambda ms: any(
                "tick 10" in m.visible and "✅" in m.visible for m in bot_replies(ms, asked)
            ),
        )
        ticking = [m for m in bot_replies(messages, asked) if "tick" in m.visible]
        assert len(ticking) == 1, "one status message, updated in place"
        assert ticking[0].edited
        updates = [c for c in fake.calls_to("PUT") if c.status == 200]
        assert updates
        assert {c.path.rsplit("/", 1)[1] for c in updates} == {ticking[0].id}


async def test_a_repeated_activity_runs_once(fake: FakeTeams, tmp_path: Path) -> None:
    async with running(fake, tmp_path, FIXTURES / "jobs_catalog") as run:
        activity = fake.activity(ALICE, text="!slow ticker --count 2")
        assert (await fake.post(activity)).status_code == 200
        assert (await fake.post(activity)).status_code == 200
        await until(
            fake, lambda ms: any("tick 2" in m.visible for m in bot_replies(ms, activity["id"]))
        )
        assert len(await run.bot.app.store.find_jobs()) == 1


async def test_job_end_is_announced_after_the_connector_was_away(
    fake: FakeTeams, tmp_path: Path
) -> None:
    async with running(fake, tmp_path, FIXTURES / "jobs_catalog") as run:
        asked = await fake.say(ALICE, "!slow ticker --count 8")
        await until(fake, lambda ms: any("tick" in m.visible for m in bot_replies(ms, asked)))
        await fake.drop()
        deadline = time.monotonic() + 20
        while (await run.bot.app.store.find_jobs())[0].state.value == "running":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        fake.restore()
        # Proactively, from the stored conversation reference, once the Connector is back.
        await until(fake, lambda ms: any("tick 8" in m.visible for m in bot_replies(ms, asked)))


async def test_rate_limited_reply_waits_for_retry_after(fake: FakeTeams, tmp_path: Path) -> None:
    async with running(fake, tmp_path, bundled_catalog_path()):
        fake.rate_limit(times=1, retry_after=1)
        asked = await fake.say(ALICE, "!store status 42")
        await until(
            fake, lambda ms: any("payment terminal" in m.visible for m in bot_replies(ms, asked))
        )
        posts = fake.calls_to("POST")
        assert posts[0].status == 429
        assert posts[1].status == 200
        assert posts[1].at - posts[0].at >= 1.0, "waited for Retry-After"
