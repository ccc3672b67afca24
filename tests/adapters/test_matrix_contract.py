"""The adapter contract against a real Synapse: alice (a plain matrix-nio client) and the bot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.contract import AdapterContract, Seen
from adapters.matrix_support import Person
from adapters.synapse import Synapse, synapse  # noqa: F401  (the session's homeserver)
from opsroom.adapters.base import ConnectionState
from opsroom.adapters.matrix.settings import MatrixSettings
from opsroom.adapters.matrix.transport import MatrixAdapter
from opsroom.config import Settings
from opsroom.engine.adapters import create_adapters, engine_services
from opsroom.policy import rbac
from opsroom.testing import Bot
from support import async_wait_for

ECHO = Path(__file__).resolve().parent.parent / "fixtures" / "echo_catalog"


def bot_settings(server: Synapse, **more: object) -> MatrixSettings:
    """`[adapters.matrix]` for the bot account `ops` on the test homeserver."""
    return MatrixSettings.model_validate(
        {
            "homeserver": server.url,
            "user_id": server.mxid("ops"),
            "password": "env:MATRIX_PASSWORD",
            **more,
        }
    )


async def wait_joined(person: Person, room_id: str, user: str, timeout: float = 15.0) -> None:
    """Until `user` is a member of the room, as `person` sees it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await person.client.joined_members(room_id)
        if any(m.user_id == user for m in getattr(response, "members", [])):
            return
        assert asyncio.get_running_loop().time() < deadline, f"{user} never joined {room_id}"
        await asyncio.sleep(0.1)


async def wait_membership(
    person: Person, room_id: str, user: str, membership: str, timeout: float = 15.0
) -> None:
    """Until the room's history, as `person` reads it, ends `user`'s membership so."""

    async def reached() -> bool:
        events = await person.events(room_id)
        found = [
            e["content"].get("membership")
            for e in events
            if e.get("type") == "m.room.member" and e.get("state_key") == user
        ]
        return bool(found) and found[-1] == membership

    await async_wait_for(reached, timeout, what=f"{user} {membership} {room_id}")


@dataclass
class MatrixHarness:
    """The bot in a fresh room with alice."""

    adapter: MatrixAdapter
    room: str
    user: str
    alice: Person
    room_id: str
    server: Synapse

    async def say(self, text: str, *, thread_id: str | None = None) -> str:
        """alice posts `text`."""
        return await self.alice.say(self.room_id, text, thread_id=thread_id)

    async def seen(self) -> list[Seen]:
        """The room as alice's client shows it."""
        return await self.alice.seen(self.room_id)

    async def click(self, message_id: str, value: str) -> None:
        """Matrix has no buttons."""
        raise AssertionError("Matrix has no buttons (capabilities.buttons is False)")

    async def drop(self) -> None:
        """Stop Synapse: every connection to it breaks, as in a crash."""
        await asyncio.to_thread(self.server.stop)

    async def restore(self) -> None:
        """Start Synapse again on the same data and port."""
        await asyncio.to_thread(self.server.start)


@pytest.fixture
async def harness(synapse: Synapse) -> AsyncIterator[MatrixHarness]:  # noqa: F811
    """A connected bot invited by alice into a new room."""
    alice = await Person.login(synapse, "alice")
    room_id = await alice.create_room(synapse.mxid("ops"))
    adapter = MatrixAdapter(bot_settings(synapse), password="ops-pw")
    await adapter.connect()
    try:
        await wait_joined(alice, room_id, synapse.mxid("ops"))
        yield MatrixHarness(
            adapter, f"matrix:{room_id}", f"matrix:{alice.mxid}", alice, room_id, synapse
        )
    finally:
        await adapter.close()
        await alice.close()


class TestMatrixContract(AdapterContract):
    """Everything every adapter guarantees, on a real homeserver."""


async def test_history_from_before_start_is_not_a_request(synapse: Synapse) -> None:  # noqa: F811
    alice = await Person.login(synapse, "alice")
    room_id = await alice.create_room(synapse.mxid("ops"))
    await alice.say(room_id, "!store status 1")  # said before the bot ever ran
    adapter = MatrixAdapter(bot_settings(synapse), password="ops-pw")
    await adapter.connect()
    try:
        await wait_joined(alice, room_id, synapse.mxid("ops"))
        events = adapter.events()
        await alice.say(room_id, "!store status 2")
        event = await asyncio.wait_for(anext(events), 15)
        assert getattr(event, "text", None) == "!store status 2"
    finally:
        await adapter.close()
        await alice.close()


async def test_invites_are_accepted_or_declined_as_policy_decides(
    synapse: Synapse,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mallory = await Person.login(synapse, "mallory")
    alice = await Person.login(synapse, "alice")
    url = f"sqlite:///{tmp_path}/opsroom.db"
    # alice holds a role through a group; mallory holds none.
    settings = Settings.model_validate(
        {
            "store": {"url": url},
            "groups": {"oncall": [f"matrix:{alice.mxid}"]},
            "roles": [{"name": "ops", "members": ["group:oncall"], "allow": ["*"]}],
            "adapters": {
                "matrix": {
                    "homeserver": synapse.url,
                    "user_id": synapse.mxid("ops"),
                    "password": "env:MATRIX_PASSWORD",
                }
            },
        }
    )
    monkeypatch.setenv("MATRIX_PASSWORD", "ops-pw")
    assert rbac.may_invite(f"matrix:{alice.mxid}", settings)
    assert not rbac.may_invite(f"matrix:{mallory.mxid}", settings)
    async with Bot.open(catalog_dir=str(ECHO), store_url=url, settings=settings) as bot:
        # Built as `opsroom serve` builds it, lent the engine's services.
        (adapter,) = create_adapters(settings, engine_services(bot.app.dispatcher))
        await adapter.connect()
        try:
            refused = await mallory.create_room(synapse.mxid("ops"))
            welcome = await alice.create_room(synapse.mxid("ops"))
            await wait_joined(alice, welcome, synapse.mxid("ops"))
            await wait_membership(mallory, refused, synapse.mxid("ops"), "leave")
        finally:
            await adapter.close()
            await alice.close()
            await mallory.close()


async def test_configured_rooms_are_joined_and_others_declined(synapse: Synapse) -> None:  # noqa: F811
    alice = await Person.login(synapse, "alice")
    listed = await alice.create_room(synapse.mxid("ops"))
    adapter = MatrixAdapter(bot_settings(synapse, rooms=[listed]), password="ops-pw")
    await adapter.connect()
    try:
        await wait_joined(alice, listed, synapse.mxid("ops"))
        other = await alice.create_room(synapse.mxid("ops"))

        async def declined() -> bool:
            # Declining an invite is a `leave` of the bot's membership: wait for that event.
            got = await alice.client.room_get_state_event(
                other, "m.room.member", synapse.mxid("ops")
            )
            return getattr(got, "content", {}).get("membership") == "leave"

        await async_wait_for(declined, 15, what="the bot to decline the unlisted room")
        members = await alice.client.joined_members(other)
        assert synapse.mxid("ops") not in [m.user_id for m in members.members]
    finally:
        await adapter.close()
        await alice.close()


async def test_a_wrong_password_is_a_configuration_error(synapse: Synapse) -> None:  # noqa: F811
    from opsroom.errors import ConfigError

    adapter = MatrixAdapter(bot_settings(synapse), password="not-the-password")
    with pytest.raises(ConfigError, match=r"adapters\.matrix\.password"):
        await adapter.connect()
    assert adapter.state is ConnectionState.CLOSED
    await adapter.close()
