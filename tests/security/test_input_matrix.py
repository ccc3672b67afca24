"""The input matrix: what a hostile chat user can type reaches a script exactly, or not at all.

Through the real engine (`opsroom.testing.Bot` over a SQLite file) and real child processes:
shell and PowerShell injection forms, values that look like options, NUL and undecodable
text, homoglyphs in command names and in principals. Each either arrives in the script byte
for byte, or is refused with a clear error, nothing runs, and the refusal is in an intact
audit chain.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from opsroom.config import RoleSettings, Settings
from opsroom.testing import Bot
from support import FIXTURES

ECHO = FIXTURES / "echo_catalog"

INJECTIONS = [
    "$(touch /tmp/opsroom-pwned)",
    "`touch /tmp/opsroom-pwned`",
    "x; touch /tmp/opsroom-pwned",
    "x | cat /etc/passwd",
    "x && id",
    "${IFS}id",
    "$HOME ~ * ?",
    "%PATH% ^& calc",
    "$env:PATH; Remove-Item -Recurse C:\\",
    "@(1,2) $(Get-Process)",
    "'; DROP TABLE jobs; --",
    "{{7*7}} ${7*7} #{7*7}",
    "line1\\nline2",
    "\\x1b[31mred",
]


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    roles = (RoleSettings(name="staff", members=("local:tester",), allow=("*",)),)
    async with Bot.open(
        catalog_dir=str(ECHO),
        store_url=f"sqlite:///{tmp_path}/t.db",
        settings=Settings(roles=roles),
    ) as engine:
        yield engine


@pytest.mark.parametrize("command", ["echo python-text", "echo shell-text --text"])
@pytest.mark.parametrize("value", INJECTIONS)
async def test_injection_forms_arrive_byte_for_byte(bot: Bot, command: str, value: str) -> None:
    quoted = "'" + value.replace("'", "'\\''") + "'"
    said = await bot.say(f"!{command} {quoted}")
    assert said.outcome.outcome == "succeeded", said.text
    assert f"TEXT=[{value}]" in said.outcome.output.splitlines()
    assert not Path("/tmp/opsroom-pwned").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("!echo python-text -- -rf", "-rf"),
        ("!echo python-text --text=--force", "--force"),
        ("!echo python-text --text -Recurse", "-Recurse"),
        ("!echo shell-text --text=-n", "-n"),
        ("!echo shell-text --text=-e", "-e"),
    ],
)
async def test_values_that_look_like_options_are_values(bot: Bot, text: str, expected: str) -> None:
    said = await bot.say(text)
    assert said.outcome.outcome == "succeeded", said.text
    assert f"TEXT=[{expected}]" in said.outcome.output.splitlines()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a\x00b", "a value may not contain a NUL character"),
        ("a\udcffb", "the value is not valid text"),
        ("\ud800", "the value is not valid text"),
    ],
    ids=["nul", "undecodable-byte", "lone-high-surrogate"],
)
@pytest.mark.parametrize("command", ["echo python-text", "echo shell-text --text"])
async def test_text_no_script_can_receive_is_refused_and_audited(
    bot: Bot, command: str, value: str, message: str
) -> None:
    said = await bot.say(f"!{command} '{value}'")
    assert said.outcome.outcome == "refused"
    assert message in said.text
    store = bot.app.store
    assert await store.list_jobs() == []
    latest = (await store.audit(limit=1))[0].event
    assert latest.outcome == "refused"
    assert latest.principal == "local:tester"
    assert (await store.check_audit()).broken is None
    # The bot keeps answering.
    again = await bot.say("!echo python-text fine")
    assert "TEXT=[fine]" in again.outcome.output


async def test_a_homoglyph_command_name_is_unknown(bot: Bot) -> None:
    said = await bot.say("!\u0435cho python-text hi")  # Cyrillic "е"
    assert said.outcome.outcome == "refused"
    assert "unknown command" in said.text
    assert await bot.app.store.list_jobs() == []


async def test_a_homoglyph_principal_holds_no_role(bot: Bot) -> None:
    said = await bot.say("!echo python-text hi", as_="local:t\u0435ster")
    assert said.outcome.outcome == "refused"
    assert await bot.app.store.list_jobs() == []
    latest = (await bot.app.store.audit(limit=1))[0].event
    assert latest.principal == "local:t\u0435ster"
    assert latest.outcome in {"denied", "refused"}
