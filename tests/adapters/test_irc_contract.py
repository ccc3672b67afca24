"""The adapter contract against a real ngircd, over TLS, with a person on a plain socket.

ngircd has no services, so the person has no account: the stable identity the contract
checks is the guest principal `irc:~guest` (the account path is covered on recorded
IRCv3 lines in test_irc_translate.py). Drop and restore kill and restart ngircd.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from adapters.contract import AdapterContract, Seen
from adapters.ngircd import Ngircd, Person, ngircd_server  # noqa: F401  (the test's server)
from opsroom.adapters.irc.settings import IrcSettings
from opsroom.adapters.irc.transport import IrcAdapter


def bot_settings(server: Ngircd, **more: object) -> IrcSettings:
    """`[adapters.irc]` for the bot on the test server, over TLS."""
    return IrcSettings.model_validate(
        {
            "server": "127.0.0.1",
            "port": server.tls_port,
            "tls": True,
            "tls_ca_file": str(server.cert),
            "nick": "ops",
            "channels": ["#ops"],
            "rate": 20,
            "burst": 10,
            **more,
        }
    )


def make_adapter(server: Ngircd, **more: object) -> IrcAdapter:
    """A bot that reconnects quickly (tests restart the server)."""
    return IrcAdapter(bot_settings(server, **more), backoff=(0.1, 0.5), connect_timeout=10)


@dataclass
class IrcHarness:
    adapter: IrcAdapter
    person: Person
    server: Ngircd
    room: str = "irc:#ops"
    user: str = "irc:~guest"

    async def say(self, text: str, *, thread_id: str | None = None) -> str:
        return await self.person.say(text)

    async def seen(self) -> list[Seen]:
        return self.person.seen(self.adapter.nick)

    async def click(self, message_id: str, value: str) -> None:
        raise AssertionError("IRC has no buttons")

    async def drop(self) -> None:
        self.server.stop()

    async def restore(self) -> None:
        self.server.start()
        await self.person.close()
        await self.person.connect()


@pytest.fixture
async def harness(ngircd: Ngircd) -> AsyncIterator[IrcHarness]:
    person = Person(ngircd, "alice")
    await person.connect()
    adapter = make_adapter(ngircd)
    await adapter.connect()
    yield IrcHarness(adapter, person, ngircd)
    await adapter.close()
    await person.close()


class TestIrcContract(AdapterContract):
    pass
