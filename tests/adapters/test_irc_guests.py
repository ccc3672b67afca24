"""IRC guests through the real engine: the adapter says who, policy decides, audit records.

Recorded-style IRC lines go through the adapter's own translation into the real
dispatcher (a real catalog, a real SQLite store). The adapter no longer decides anything:
a nick without a services account arrives as `irc:~guest`, and policy lets it read help
only — the same rule for a channel, a direct message and a mention of the bot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from opsroom.adapters.irc.translate import parse_line, to_event
from opsroom.config import Settings
from opsroom.model.blocks import Reply, Status, Text
from opsroom.policy.rbac import UNVERIFIED_DENIAL
from opsroom.router.outcome import Outcome
from opsroom.testing import Bot

ROLES = Settings.model_validate(
    {
        "roles": [
            # Even a role that grants every IRC user everything leaves guests help only.
            {"name": "everyone", "members": ["irc:*"], "allow": ["*"]},
        ]
    }
)


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    catalog = tmp_path / "catalog"
    (catalog / "store").mkdir(parents=True)
    (catalog / "store" / "status.sh").write_text(
        "#!/usr/bin/env bash\n# @describe Show a store.\n# @arg id!\necho ok\n"
    )
    async with Bot.open(
        catalog_dir=str(catalog), store_url=f"sqlite:///{tmp_path}/t.db", settings=ROLES
    ) as opened:
        yield opened


async def heard(bot: Bot, line: str, account: str | None) -> tuple[Outcome, str]:
    """One IRC line, translated by the adapter and handled by the engine: the words said."""
    msg = parse_line(line)
    assert msg is not None
    inbound = to_event(msg, me="ops", account=account)
    assert inbound is not None
    replies: list[Reply] = []

    async def send(reply: Reply) -> None:
        replies.append(reply)

    outcome = await bot.app.dispatcher.handle(inbound, send)
    blocks = [b for r in replies for b in r.blocks]
    return outcome, "\n".join(b.text for b in blocks if isinstance(b, Text | Status))


@pytest.mark.parametrize(
    "text",
    [
        "!store status 42",
        "!whoami",
        "!jobs",
        "!cancel 1",
        "ops, store status 42",
        "@ops store status 42",
        "!st\x02ore status 42",  # formatting codes do not hide a command
    ],
)
async def test_a_guest_is_refused_by_policy_and_nothing_runs(bot: Bot, text: str) -> None:
    outcome, said = await heard(bot, f":mallory!m@h PRIVMSG #ops :{text}", None)
    assert outcome.outcome == "refused"
    assert UNVERIFIED_DENIAL in said
    assert await bot.app.store.list_jobs() == []
    [entry] = [r.event for r in await bot.app.store.audit(limit=10)]
    assert (entry.action, entry.outcome, entry.principal) == ("decision", "denied", "irc:~guest")
    assert entry.reason == UNVERIFIED_DENIAL


async def test_a_guest_in_a_direct_message_is_refused_the_same_way(bot: Bot) -> None:
    outcome, said = await heard(bot, ":mallory!m@h PRIVMSG ops :store status 42", None)
    assert (outcome.outcome, said) == ("refused", UNVERIFIED_DENIAL)


@pytest.mark.parametrize("text", ["!help", "ops: help"])
async def test_a_guest_may_read_help_which_lists_only_help(bot: Bot, text: str) -> None:
    outcome, said = await heard(bot, f":mallory!m@h PRIVMSG #ops :{text}", None)
    assert outcome.outcome == "succeeded", said
    assert said.splitlines()[:2] == ["Commands you can run here (0):", "Built-in: help"]
    # Searching help finds nothing a guest could not run either.
    outcome, said = await heard(bot, ":mallory!m@h PRIVMSG #ops :!HELP store", None)
    assert (outcome.outcome, said.split(".")[0]) == ("succeeded", "No command matches “store”")


@pytest.mark.parametrize("text", ["hello everyone", "! not a command"])
async def test_chatter_from_a_guest_is_ignored_not_refused(bot: Bot, text: str) -> None:
    outcome, said = await heard(bot, f":mallory!m@h PRIVMSG #ops :{text}", None)
    assert (outcome.outcome, said) == ("ignored", "")
    assert await bot.app.store.audit(limit=10) == []


async def test_the_same_words_from_an_account_are_answered(bot: Bot) -> None:
    outcome, said = await heard(bot, "@account=alice :alice!a@h PRIVMSG #ops :!whoami", "alice")
    assert outcome.outcome == "succeeded"
    assert "irc:alice" in said
    assert UNVERIFIED_DENIAL not in said
