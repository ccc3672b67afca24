"""`Bridge.settle()`: a test waits for the bridge to be idle instead of sleeping (SPEC §5.2).

The real Slack adapter on the fake Slack, the real engine: a job's status message is
edited at most once a second, so an update that comes sooner is held back and made
later. `settle` returns only once that edit has been made.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from adapters.fake_slack import FakeSlack
from adapters.slack_support import CHANNEL, make_adapter
from opsroom.config import Settings
from opsroom.engine.bridge import Bridge
from opsroom.model.blocks import Progress, Reply
from opsroom.testing import Bot
from support import async_wait_for

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


async def test_settle_returns_once_an_edit_held_back_by_the_edit_rate_is_made(
    tmp_path: Path,
) -> None:
    fake = await FakeSlack.start()
    url = f"sqlite:///{tmp_path}/opsroom.db"
    settings = Settings.model_validate({"store": {"url": url}})
    try:
        async with Bot.open(
            catalog_dir=str(FIXTURES / "echo_catalog"), store_url=url, settings=settings
        ) as bot:
            adapter = make_adapter(fake, settings)
            assert adapter.capabilities.edits_per_second <= 1.0  # an edit a second at most
            bridge = Bridge(adapter, bot.app.dispatcher)
            running = asyncio.create_task(bridge.run())
            try:
                await async_wait_for(
                    lambda: adapter.state.value == "connected", what="the adapter connected"
                )
                send = bridge.sender(f"slack:{CHANNEL}", None)
                await send(Reply((Progress(10, "copying"),), job_id=7, kind="progress"))
                # Within the same second: the edit must wait for Slack's edit rate.
                await send(Reply((Progress(60, "verifying"),), job_id=7, kind="progress"))
                (message,) = fake.messages(CHANNEL)
                assert "verifying" not in message.visible
                assert fake.calls_of("chat.update") == []

                await bridge.settle()

                (message,) = fake.messages(CHANNEL)
                assert "verifying" in message.visible
                assert "copying" not in message.visible
                assert len(fake.calls_of("chat.update")) == 1
                assert running.done() is False  # idle, not stopped: the bridge still serves
            finally:
                running.cancel()
                await bridge.close()
    finally:
        await fake.stop()
