"""The Teams tests' shared pieces: the adapter on the fake Bot Framework, people in a channel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters.contract import Seen
from adapters.fake_teams import ALICE, BOB, BOT, CHANNEL, ENV, FakeTeams
from opsroom.adapters.base import AdapterServices
from opsroom.adapters.teams import create, teams_http_endpoint
from opsroom.adapters.teams.adapter import TeamsAdapter
from opsroom.config import Settings


def make_adapter(
    fake: FakeTeams,
    settings: Settings,
    services: AdapterServices | None = None,
    *,
    environ: dict[str, str] | None = None,
    **table: Any,
) -> TeamsAdapter:
    """The adapter as `opsroom serve` builds it, on the fake; the fake posts to its endpoint."""
    adapter = create(fake.table(**table), settings, services=services, environ=environ or ENV)
    fake.bot_app = teams_http_endpoint(adapter)
    return adapter


def sender(who: str) -> str:
    """The principal of a person in the fake, or `bot`."""
    people = {p.id: p for p in (ALICE, BOB)}
    return "bot" if who == BOT else f"teams:{people[who].aad}"


@dataclass
class TeamsHarness:
    """The contract's harness: the adapter and Alice in the ops channel, both on the fake."""

    adapter: TeamsAdapter
    fake: FakeTeams
    room: str = f"teams:{CHANNEL}"
    user: str = f"teams:{ALICE.aad}"

    async def say(self, text: str, *, thread_id: str | None = None) -> str:
        """Alice posts in the channel."""
        return await self.fake.say(ALICE, text, thread=thread_id)

    async def seen(self) -> list[Seen]:
        """The channel as Alice sees it."""
        return [
            Seen(
                id=m.id,
                text=m.visible,
                sender=sender(m.sender),
                thread_id=m.reply_to,
                edited=m.edited,
            )
            for m in self.fake.messages(CHANNEL)
        ]

    async def click(self, message_id: str, value: str) -> None:
        """Alice presses a card button."""
        response = await self.fake.click(ALICE, message_id, value)
        assert response.status_code == 200

    async def drop(self) -> None:
        """The Bot Framework goes away."""
        await self.fake.drop()

    async def restore(self) -> None:
        """It is back."""
        self.fake.restore()
