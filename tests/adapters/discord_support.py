"""Shared pieces of the Discord tests: the adapter on a fake Discord, a person in #ops."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.contract import Seen
from adapters.fake_discord import TOKEN, FakeDiscord
from opsroom.adapters.base import AdapterServices
from opsroom.adapters.discord import create
from opsroom.adapters.discord.adapter import DiscordAdapter
from opsroom.config import Settings

CHANNEL = "100000000000000001"
ALICE = "200000000000000001"
BOB = "200000000000000002"
ENV = {"DISCORD_TOKEN": TOKEN}


def discord_table(fake: FakeDiscord, **more: Any) -> dict[str, Any]:
    """An `[adapters.discord]` table pointing at the fake (the gateway asked from the API)."""
    return {"token": "env:DISCORD_TOKEN", "api_url": fake.api_url, **more}


def make_adapter(
    fake: FakeDiscord,
    settings: Settings,
    services: AdapterServices | None = None,
    **more: Any,
) -> DiscordAdapter:
    """The adapter as `opsroom serve` builds it, on the fake."""
    return create(discord_table(fake, **more), settings, services=services, environ=ENV)


def store_settings(tmp: Path, **more: Any) -> Settings:
    """Settings with a store in `tmp` (and any other sections)."""
    return Settings.model_validate({"store": {"url": f"sqlite:///{tmp}/opsroom.db"}, **more})


@dataclass
class DiscordHarness:
    """The contract's harness: the adapter and Alice in #ops, both on the fake."""

    adapter: DiscordAdapter
    fake: FakeDiscord
    room: str = f"discord:{CHANNEL}"
    user: str = f"discord:{ALICE}"

    async def say(self, text: str, *, thread_id: str | None = None) -> str:
        """Alice posts in #ops (or in one of its threads)."""
        return await self.fake.say(thread_id or CHANNEL, ALICE, text)

    async def seen(self) -> list[Seen]:
        """#ops and its threads as Alice sees them."""
        return [
            Seen(
                id=m.id,
                text=m.visible,
                sender=f"discord:{m.author}",
                thread_id=m.channel_id if m.channel_id != CHANNEL else m.reference,
                edited=m.edited,
            )
            for m in self.fake.messages(CHANNEL)
        ]

    async def click(self, message_id: str, value: str) -> None:
        """Alice clicks a button."""
        await self.fake.click(message_id, ALICE, value)

    async def drop(self) -> None:
        """Discord goes away: websockets closed, connections refused."""
        await self.fake.drop()

    async def restore(self) -> None:
        """Discord is back."""
        self.fake.restore()
