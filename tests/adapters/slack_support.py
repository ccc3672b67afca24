"""Shared pieces of the Slack tests: the adapter on a fake Slack, and a person in a channel."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.contract import Seen
from adapters.fake_slack import FakeSlack
from opsroom.adapters.slack import create
from opsroom.adapters.slack.adapter import SlackAdapter
from opsroom.config import Settings

CHANNEL = "C_OPS"
ALICE = "U_ALICE"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ENV = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_APP_TOKEN": "xapp-test", "SLACK_SIGNING": SECRET}


def slack_table(fake: FakeSlack, mode: str = "socket") -> dict[str, Any]:
    """An `[adapters.slack]` table pointing at the fake."""
    table: dict[str, Any] = {
        "mode": mode,
        "bot_token": "env:SLACK_BOT_TOKEN",
        "api_url": fake.api_url,
    }
    if mode == "socket":
        table["app_token"] = "env:SLACK_APP_TOKEN"
    else:
        table["signing_secret"] = "env:SLACK_SIGNING"
    return table


def make_adapter(fake: FakeSlack, settings: Settings, mode: str = "socket") -> SlackAdapter:
    """The adapter as `opsroom serve` builds it, on the fake."""
    return create(slack_table(fake, mode), settings, environ=ENV)


def store_settings(tmp: Path, **more: Any) -> Settings:
    """Settings with a store in `tmp` (and any other sections)."""
    return Settings.model_validate({"store": {"url": f"sqlite:///{tmp}/opsroom.db"}, **more})


@dataclass
class SlackHarness:
    """The contract's harness: the adapter and Alice in #ops, both on the fake."""

    adapter: SlackAdapter
    fake: FakeSlack
    room: str = f"slack:{CHANNEL}"
    user: str = f"slack:{ALICE}"

    async def say(self, text: str, *, thread_id: str | None = None) -> str:
        """Alice posts in #ops."""
        return await self.fake.say(CHANNEL, ALICE, text, thread_ts=thread_id)

    async def seen(self) -> list[Seen]:
        """#ops as Alice sees it."""
        return [
            Seen(
                id=m.ts,
                text=m.visible,
                sender=f"slack:{m.user}",
                thread_id=m.thread_ts,
                edited=m.edited,
            )
            for m in self.fake.messages(CHANNEL)
        ]

    async def click(self, message_id: str, value: str) -> None:
        """Alice clicks a button."""
        await self.fake.click(CHANNEL, message_id, ALICE, value)

    async def drop(self) -> None:
        """Slack goes away: websockets closed, connections refused."""
        await self.fake.drop()

    async def restore(self) -> None:
        """Slack is back."""
        self.fake.restore()
