"""Test helpers shipped with opsroom: drive the real engine in-process.

async with Bot.open(catalog_dir=path, store_url=f"sqlite:///{tmp}/t.db") as bot:
    said = await bot.say("!store status 42", as_="local:alice")
    assert said.outcome.state is JobState.SUCCEEDED
    assert "payment terminal" in said.text
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from opsroom.app import App
from opsroom.config import Settings
from opsroom.engine.dispatch import Outcome
from opsroom.model.blocks import Reply
from opsroom.model.messages import Inbound
from opsroom.render.text import render_reply


@dataclass(frozen=True, slots=True)
class Said:
    """The replies to one message and what came of it."""

    replies: tuple[Reply, ...]
    outcome: Outcome

    @property
    def text(self) -> str:
        """All replies as a terminal would show them."""
        return "\n".join(render_reply(r) for r in self.replies)


class Bot:
    """An opsroom engine driven by test code, with the same dispatch path as any adapter."""

    def __init__(self, app: App) -> None:
        self.app = app

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        *,
        catalog_dir: str | None = None,
        store_url: str,
        settings: Settings | None = None,
    ) -> AsyncIterator[Bot]:
        """Open an engine on a catalog and a store; closed on exit."""
        app = await App.open(settings or Settings(), catalog_dir=catalog_dir, store_url=store_url)
        try:
            yield cls(app)
        finally:
            await app.close()

    async def say(
        self, text: str, *, as_: str = "local:tester", room: str = "local:test", direct: bool = True
    ) -> Said:
        """Send one message and collect every reply until the job (if any) ends."""
        replies: list[Reply] = []

        async def send(reply: Reply) -> None:
            replies.append(reply)

        inbound = Inbound(text=text, principal=as_, room=room, direct=direct)
        outcome = await self.app.dispatcher.handle(inbound, send)
        return Said(tuple(replies), outcome)
