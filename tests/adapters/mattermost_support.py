"""Shared pieces of the Mattermost tests: the adapter on a fake Mattermost, a person."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Route

from adapters.contract import Seen
from adapters.fake_mattermost import COMMAND_TOKEN, TOKEN, FakeMattermost
from opsroom.adapters.base import AdapterServices
from opsroom.adapters.mattermost import create, mattermost_hook_endpoint
from opsroom.adapters.mattermost.adapter import MattermostAdapter
from opsroom.config import Settings

CHANNEL = "chanopsq8xw3n5y7tbcd1kgmha"
ALICE = "alicew1bq3mjy8fxg5nc7tzkhe"
BOB = "bobbyr4kd9s6hp2ueavm8jq3nw"
ENV = {"MM_TOKEN": TOKEN, "MM_COMMAND_TOKEN": COMMAND_TOKEN}
ACTIONS_URL = "https://ops.example.org/hooks/mattermost/actions"


def mattermost_table(fake: FakeMattermost, **more: Any) -> dict[str, Any]:
    """An `[adapters.mattermost]` table pointing at the fake (a key given None: left out)."""
    table = {
        "url": fake.url,
        "token": "env:MM_TOKEN",
        "command_token": "env:MM_COMMAND_TOKEN",
        "actions_url": ACTIONS_URL,
        **more,
    }
    return {k: v for k, v in table.items() if v is not None}


def make_adapter(
    fake: FakeMattermost,
    settings: Settings,
    *,
    services: AdapterServices | None = None,
    **more: Any,
) -> MattermostAdapter:
    """The adapter as `opsroom serve` builds it, on the fake."""
    return create(mattermost_table(fake, **more), settings, services=services, environ=ENV)


def hooks_app(adapter: MattermostAdapter) -> Starlette:
    """Just the two hook routes, as `opsroom serve` mounts them."""
    return Starlette(
        routes=[
            Route(
                f"/hooks/mattermost/{kind}",
                mattermost_hook_endpoint(adapter, kind),
                methods=["POST"],
            )
            for kind in ("command", "actions")
        ]
    )


def store_settings(tmp: Path, **more: Any) -> Settings:
    """Settings with a store in `tmp` (and any other sections)."""
    return Settings.model_validate({"store": {"url": f"sqlite:///{tmp}/opsroom.db"}, **more})


@dataclass
class MattermostHarness:
    """The contract's harness: the adapter and Alice in ~ops, both on the fake."""

    adapter: MattermostAdapter
    fake: FakeMattermost
    room: str = f"mattermost:{CHANNEL}"
    user: str = f"mattermost:{ALICE}"

    async def say(self, text: str, *, thread_id: str | None = None) -> str:
        """Alice posts in ~ops."""
        return await self.fake.say(CHANNEL, ALICE, text, root_id=thread_id or "")

    async def seen(self) -> list[Seen]:
        """~ops as Alice sees it."""
        return [
            Seen(
                id=p.id,
                text=p.visible,
                sender=f"mattermost:{p.user_id}",
                thread_id=p.root_id or None,
                edited=p.edited,
            )
            for p in self.fake.posts(CHANNEL)
        ]

    async def click(self, message_id: str, value: str) -> None:
        """Alice clicks a button."""
        response = await self.fake.click(message_id, ALICE, value)
        assert response.status_code == 200, response.text

    async def drop(self) -> None:
        """Mattermost goes away: WebSockets closed, connections refused."""
        await self.fake.drop()

    async def restore(self) -> None:
        """Mattermost is back."""
        self.fake.restore()
