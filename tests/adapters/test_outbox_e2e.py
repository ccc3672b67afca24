"""Replies kept while Slack is unreachable survive a restart of opsroom (SPEC §5.2).

The fake Slack, the real Slack adapter, the bridge with the store as its outbox, and the
real engine: a job finishes while Slack is down, opsroom restarts, Slack comes back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from adapters.fake_slack import BOT_USER, FakeSlack, Message
from adapters.slack_support import ALICE, CHANNEL, make_adapter
from opsroom.config import Settings
from opsroom.engine.bridge import Bridge
from opsroom.model.blocks import Status
from opsroom.model.jobs import JobState
from opsroom.model.wire import load_reply
from opsroom.testing import Bot

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
T = TypeVar("T")
ROLES = [{"name": "ops", "members": [f"slack:{ALICE}"], "allow": ["*"]}]


@dataclass
class Serving:
    bot: Bot
    bridge: Bridge


@asynccontextmanager
async def serving(fake: FakeSlack, url: str) -> AsyncIterator[Serving]:
    """One life of `opsroom serve` with Slack: the engine and a bridge kept in the store."""
    settings = Settings.model_validate(
        {"store": {"url": url}, "roles": ROLES, "runner": {"foreground_seconds": 1}}
    )
    catalog = str(FIXTURES / "jobs_catalog")
    async with Bot.open(catalog_dir=catalog, store_url=url, settings=settings) as bot:
        bridge = Bridge(
            make_adapter(fake, settings),
            bot.app.dispatcher,
            outbox=bot.app.store,
            redeliver_every=0.2,
        )
        task = asyncio.create_task(bridge.run())
        try:
            yield Serving(bot, bridge)
        finally:
            task.cancel()
            await bridge.close()


async def until(probe: Callable[[], Awaitable[T]], what: str, timeout: float = 30) -> T:
    """Poll `probe` until it gives something truthy."""
    deadline = time.monotonic() + timeout
    while not (found := await probe()):
        assert time.monotonic() < deadline, f"not seen: {what}"
        await asyncio.sleep(0.1)
    return found


def job_messages(fake: FakeSlack, thread: str) -> list[Message]:
    return [
        m
        for m in fake.messages(CHANNEL)
        if m.user == BOT_USER and m.thread_ts == thread and "tick" in m.visible
    ]


async def test_a_job_that_ends_while_slack_is_down_is_reported_once_after_a_restart(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/opsroom.db"
    fake = await FakeSlack.start()
    try:
        async with serving(fake, url) as first:
            store = first.bot.app.store

            async def connected() -> bool:
                return first.bridge.adapter.state.value == "connected"

            await until(connected, "the adapter connected")
            asked = await fake.say(CHANNEL, ALICE, "!slow ticker --count 30")

            async def ticking() -> list[Message]:
                return job_messages(fake, asked)

            await until(ticking, "the job's status message")
            await fake.drop()
            posted_before = len(fake.calls_of("chat.postMessage"))

            async def finished() -> bool:
                jobs = await store.list_jobs()
                return bool(jobs) and jobs[0].state is JobState.SUCCEEDED

            await until(finished, "the job finished")

            async def final_kept() -> bool:
                kept = await store.outbox_pending("slack")
                return any(
                    isinstance(block, Status) and block.level == "success"
                    for row in kept
                    for block in load_reply(row.reply).blocks
                )

            await until(final_kept, "the final status kept in the store")
            await first.bridge.settle()  # an edit held back for Slack's edit rate is made
            kept = await store.outbox_pending("slack")
            live = [row for row in kept if row.live]
            # Every update while Slack was away collapsed into the job's last view.
            assert len(live) == 1
            assert live[0].id > len(kept), "several views were kept, the older ones dropped"
            assert "tick 30" in str(live[0].reply)
            assert first.bridge.outbox.waiting == len(kept)
        # opsroom is stopped with the reply still waiting; Slack is still down.

        async with serving(fake, url) as second:

            async def picked_up() -> bool:
                return second.bridge.outbox.waiting == len(kept)

            await until(picked_up, "the kept replies counted after the restart")
            fake.restore()

            async def delivered() -> list[Message]:
                return [m for m in job_messages(fake, asked) if ":white_check_mark:" in m.visible]

            final = await until(delivered, "the final status delivered after the restart")

            async def emptied() -> bool:
                pending = await second.bot.app.store.outbox_pending("slack")
                return second.bridge.outbox.waiting == 0 and pending == []

            # Nothing is left to deliver, so nothing can be delivered a second time.
            await until(emptied, "the outbox emptied")
            assert len([m for m in job_messages(fake, asked) if "tick 30" in m.visible]) == 1
            assert "tick 30" in final[0].visible
            # Only what was kept was posted: the final view, not the updates one by one.
            posts = fake.calls_of("chat.postMessage")[posted_before:]
            assert len(posts) == len(kept)
    finally:
        await fake.stop()
