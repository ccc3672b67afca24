"""End to end on a real ngircd: a person, the IRC adapter, the Bridge and the real engine.

ngircd has no services, so everyone there is account-less: `help` works, everything else
is refused by policy in the engine (the adapter only says nobody vouches for the nick).
The account path (a principal from an IRCv3 `account` tag) enters through translate on a
recorded line, and its replies go out through the real adapter and server: split to the
line limit and paced.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.ngircd import Ngircd, Person, ngircd_server, wait_for  # noqa: F401
from adapters.test_irc_contract import make_adapter
from opsroom.adapters.irc.translate import parse_line, to_event
from opsroom.adapters.irc.transport import IrcAdapter
from opsroom.catalog.scan import bundled_catalog_path
from opsroom.config import Settings
from opsroom.engine.bridge import Bridge
from opsroom.model.messages import Inbound
from opsroom.policy.rbac import UNVERIFIED_DENIAL
from opsroom.testing import Bot

PAYLOADS = Path(__file__).parent.parent / "fixtures" / "payloads" / "irc"
ROLES = Settings.model_validate(
    {
        "roles": [
            {"name": "ops", "members": ["irc:alice"], "allow": ["*"]},
            # Account-less users may read help (an open built-in) and nothing else.
            {"name": "guests", "members": ["irc:~guest"]},
        ]
    }
)
GUEST_REFUSAL = UNVERIFIED_DENIAL  # what a guest is told, as the IRC renderer shows it
WORDS = "lorem ipsum dolor sit amet " * 28  # ~750 bytes: must be split between words


@pytest.fixture
async def person(ngircd: Ngircd) -> AsyncIterator[Person]:
    someone = Person(ngircd, "bob")
    await someone.connect()
    yield someone
    await someone.close()


async def run_bridge(adapter: IrcAdapter, bot: Bot) -> tuple[Bridge, asyncio.Task[None]]:
    bridge = Bridge(adapter, bot.app.dispatcher)
    task = asyncio.create_task(bridge.run())
    await wait_for(lambda: adapter.state.value == "connected")
    return bridge, task


async def stop(bridge: Bridge, task: asyncio.Task[None]) -> None:
    task.cancel()
    await bridge.close()


def texts(person: Person, nick: str, target: str | None = None) -> list[str]:
    return [text for _, text in person.lines_from(nick, target)]


async def test_guest_gets_help_but_nothing_runs(
    ngircd: Ngircd, person: Person, tmp_path: Path
) -> None:
    async with Bot.open(
        catalog_dir=str(bundled_catalog_path()),
        store_url=f"sqlite:///{tmp_path}/t.db",
        settings=ROLES,
    ) as bot:
        adapter = make_adapter(ngircd)
        bridge, task = await run_bridge(adapter, bot)
        try:
            await person.say("!help")
            await wait_for(lambda: any("Built-in: help" in t for t in texts(person, "ops")))
            helped = len(texts(person, "ops"))

            await person.say("!store status 42")
            await wait_for(lambda: any(GUEST_REFUSAL in t for t in texts(person, "ops")))
            refusal = next(t for t in texts(person, "ops") if GUEST_REFUSAL in t)
            assert refusal == f"\x02✖ {UNVERIFIED_DENIAL}\x02"  # a bold status line
            # A barrier instead of a pause: once a later message is answered, anything the
            # refused one set off has had its turn (messages are handled in order).
            help_lines = texts(person, "ops")[:helped]
            await person.say("!help")
            await wait_for(lambda: len(texts(person, "ops")) >= helped + 1 + len(help_lines))
            said = texts(person, "ops")[helped:]
            assert said == [refusal, *help_lines], "only the refusal, nothing else"
            assert await bot.app.store.list_jobs() == [], "nothing ran"

            # In a direct message the prefix is optional, and the refusal holds there too.
            await person.say("store status 42", to="ops")
            await wait_for(lambda: any(GUEST_REFUSAL in t for t in texts(person, "ops", "bob")))
            assert await bot.app.store.list_jobs() == []
        finally:
            await stop(bridge, task)


async def test_nick_in_use_takes_an_alternate_and_answers_to_it(
    ngircd: Ngircd, person: Person, tmp_path: Path
) -> None:
    squatter = Person(ngircd, "ops")
    await squatter.connect()
    async with Bot.open(
        catalog_dir=str(bundled_catalog_path()),
        store_url=f"sqlite:///{tmp_path}/t.db",
        settings=ROLES,
    ) as bot:
        adapter = make_adapter(ngircd)
        bridge, task = await run_bridge(adapter, bot)
        try:
            assert adapter.nick == "ops_"
            await person.say("ops_: help")
            await wait_for(lambda: any("Built-in: help" in t for t in texts(person, "ops_")))
            await person.say("ops_: store status 42")
            await wait_for(lambda: any(GUEST_REFUSAL in t for t in texts(person, "ops_")))

            # The squatter leaves: the bot takes its configured nick back.
            await squatter.close()
            await wait_for(lambda: adapter.nick == "ops")
            await person.say("!help")
            await wait_for(lambda: any("Built-in: help" in t for t in texts(person, "ops")))
        finally:
            await stop(bridge, task)


def report_catalog(root: Path) -> Path:
    folder = root / "catalog" / "report"
    folder.mkdir(parents=True)
    (folder / "words.sh").write_text(
        "#!/usr/bin/env bash\n"
        "# @describe Print short lines, then long ones.\n"
        'for i in $(seq 1 20); do echo "short $i"; done\n'
        f'for i in 1 2 3; do echo "long $i {WORDS}"; done\n'
        "printf 'colour \\033[31mred\\033[0m bell \\007 ctcp \\001 end\\n'\n"
    )
    return root / "catalog"


async def test_account_holder_runs_a_command_output_split_and_paced(
    ngircd: Ngircd, person: Person, tmp_path: Path
) -> None:
    rate = 5.0  # lines per second after a burst of 2
    async with Bot.open(
        catalog_dir=str(report_catalog(tmp_path)),
        store_url=f"sqlite:///{tmp_path}/t.db",
        settings=ROLES,
    ) as bot:
        adapter = make_adapter(ngircd, rate=rate, burst=2)
        bridge, task = await run_bridge(adapter, bot)
        try:
            line = (PAYLOADS / "privmsg_account_tag.txt").read_text().splitlines()[0]
            msg = parse_line(line.replace("!store status 42", "!report words"))
            assert msg is not None
            inbound = to_event(msg, me=adapter.nick, account=msg.tags.get("account"))
            assert isinstance(inbound, Inbound)
            assert inbound.principal == "irc:alice"

            await bridge.handle(inbound)
            await wait_for(lambda: any("succeeded" in t for t in texts(person, "ops")), 30)
        finally:
            await stop(bridge, task)

    heard = person.lines_from("ops")
    shown = [text for _, text in heard]
    more = next(t for t in shown if "more lines" in t)
    assert more.startswith("… ")
    assert "— !job 1" in more
    prefix = ":ops!~ops@127.0.0.1 PRIVMSG #ops :"
    assert all(len((prefix + t + "\r\n").encode()) <= 512 for t in shown)
    assert all(len(t) <= adapter.capabilities.max_message_length for t in shown)
    long_pieces = [t for t in shown if "lorem" in t]
    assert len(long_pieces) >= 4, "each long line arrived in pieces"
    assert all(not p.endswith(" lor") for p in long_pieces), "split between words"
    joined = " ".join(t.removeprefix("long 3 ") for t in long_pieces[-2:])
    assert joined.split() == WORDS.split(), "nothing lost at the split"
    colour = next(t for t in shown if t.startswith("colour"))
    assert colour == "colour red bell  ctcp  end", "control characters from the script removed"

    # Flood control: after the burst, lines are at least 1/rate apart.
    times = [t for t, _ in heard]
    gaps = [b - a for a, b in itertools.pairwise(times[2:])]
    assert len(gaps) >= 8
    assert min(gaps) >= 0.8 / rate, gaps
    assert times[-1] - times[0] >= (len(times) - 2) / rate * 0.9


async def test_an_untrusted_certificate_is_refused(ngircd: Ngircd) -> None:
    adapter = IrcAdapter(
        make_adapter(ngircd).settings.model_copy(update={"tls_ca_file": None}),
        backoff=(0.1, 0.2),
        connect_timeout=1.0,
    )
    await adapter.connect()
    try:
        assert adapter.state.value != "connected", "a self-signed certificate is not trusted"
    finally:
        await adapter.close()
