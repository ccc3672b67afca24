"""Hostile input gets short answers, and nothing the OS would refuse becomes a job (SPEC §4.2).

Through the real engine (`opsroom.testing.Bot` over a SQLite file) and the real `opsroom`
console script: floods of arguments, megabyte messages, values with ten thousand digits,
values too long for the operating system's argument list. Each gets one short error,
nothing runs, and the engine keeps answering.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from opsroom.model.commands import CommandSpec, Language, ParamSpec
from opsroom.router.bounded import MAX_MESSAGE_BYTES, escaped, exec_limit_problem, sent_form
from opsroom.testing import Bot
from support import FIXTURES, Opsroom

ECHO = FIXTURES / "echo_catalog"
SHORT = 500  # characters: the most any of these answers may take
# Linux refuses a single argument or environment string over 32 pages (MAX_ARG_STRLEN).
STRING_MAX = os.sysconf("SC_PAGESIZE") * 32
MANY = " ".join(f"w{i}" for i in range(10_000))  # 58,889 characters: under 64 KiB


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    async with Bot.open(catalog_dir=str(ECHO), store_url=f"sqlite:///{tmp_path}/t.db") as engine:
        yield engine


async def assert_still_answers(bot: Bot) -> None:
    said = await bot.say("!echo python-text still-here")
    assert "TEXT=[still-here]" in said.outcome.output


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (f"!echo fail {MANY}", "'w0', 'w1', 'w2' and 9,997 more"),
        (f"!echo python-text a {MANY}", "too many values: 'w2', 'w3', 'w4' and 9,995 more"),
        ("!echo python-text hi --" + "x" * 60_000, "unknown parameter --xxxx"),
        ("!echo python-text hi --count " + "x" * 60_000, "(60,000 characters)"),
        ("!echo python-text hi --count " + "9" * 60_000, "has too many digits"),
        ("!echo python-text hi --mode " + "q" * 60_000, "(60,000 characters) is not one of"),
        ("!" + "nosuchcommand" * 5000, "unknown command"),
        ("!job " + "7" * 60_000, "there is no job 7777"),
        ("!cancel " + "7" * 60_000, "there is no job 7777"),
        ("!approve " + "7" * 60_000, "is not waiting for approval"),
        ("!deny " + "7" * 60_000 + " because", "is not waiting for approval"),
        ("!jobs " + MANY, "is not one of all, mine, running"),
    ],
    ids=[
        "10k-stray-values",
        "10k-left-over",
        "60k-option-name",
        "60k-bad-int",
        "60k-digit-int",
        "60k-bad-choice",
        "65k-command-word",
        "60k-digit-job",
        "60k-digit-cancel",
        "60k-digit-approve",
        "60k-digit-deny",
        "10k-jobs-scope",
    ],
)
async def test_a_flood_gets_one_short_error(bot: Bot, text: str, needle: str) -> None:
    said = await bot.say(text)
    assert said.outcome.outcome == "refused"
    assert len(said.replies) == 1
    assert len(said.text) < SHORT, said.text[:SHORT]
    assert needle in said.text
    assert await bot.app.store.list_jobs() == []
    await assert_still_answers(bot)


async def test_help_with_ten_thousand_words_answers_briefly(bot: Bot) -> None:
    said = await bot.say(f"!help {MANY}")
    assert len(said.text) < SHORT
    assert "(58,889 characters in all)" in said.text


async def test_a_menu_answer_of_ten_thousand_digits_is_not_a_choice(tmp_path: Path) -> None:
    async with Bot.open(
        catalog_dir=str(FIXTURES / "menu_catalog"), store_url=f"sqlite:///{tmp_path}/t.db"
    ) as bot:
        asked = await bot.say("!ci deploy")
        assert "which env" in asked.text
        said = await bot.say("!" + "1" * 10_000)
        assert said.outcome.outcome == "refused"
        assert len(said.text) < SHORT


async def test_a_message_over_64_kib_is_refused_unread(bot: Bot) -> None:
    text = "!echo python-text " + "'" + "a b " * 100_000  # unterminated, were it tokenised
    said = await bot.say(text)
    assert said.outcome.outcome == "refused"
    assert said.text == (
        f"✖ that message is {len(text):,} bytes; messages to the bot can be at most "
        f"{MAX_MESSAGE_BYTES:,} bytes — nothing was run"
    )
    # Measured in bytes: 30,000 three-byte characters are 90,000 bytes.
    wide = await bot.say("!echo python-text " + "€" * 30_000)
    assert wide.outcome.outcome == "refused"
    assert "90,018 bytes" in wide.text
    assert await bot.app.store.list_jobs() == []
    # A long message between people, not addressed to the bot, is none of its business.
    chatter = await bot.say("just pasting a log " + "x" * 200_000, direct=False)
    assert chatter.outcome.outcome == "ignored"
    assert chatter.replies == ()
    assert len([r async for r in bot.app.store.iter_audit()]) == 2, "the two refusals only"


@pytest.mark.parametrize("command", ["echo shell-text --text", "echo python-text"])
async def test_a_value_too_long_for_the_os_is_refused_before_a_job_exists(
    bot: Bot, command: str
) -> None:
    # 30,000 `é` are 60,000 bytes, under the message limit, but 180,000 as the runner's
    # JSON (`\\u00e9`), which travels in one environment string: over 128 KiB.
    value = "é" * 30_000
    said = await bot.say(f"!{command} {value}")
    assert said.outcome.outcome == "refused"
    assert await bot.app.store.list_jobs() == [], "refused before the job row exists"
    assert len(said.text) < SHORT
    assert "--text is 60,000 bytes (180,002 as JSON)" in said.text
    assert f"at most {STRING_MAX - len('OPSROOM_PARAMS') - 2:,} bytes" in said.text
    assert "nothing was run" in said.text
    await assert_still_answers(bot)


def test_run_refuses_the_os_limit_with_exit_2_and_no_job(opsroom: Opsroom, workdir: Path) -> None:
    r = opsroom("run", "--catalog", str(ECHO), "!echo shell-text --text " + "é" * 30_000)
    assert r.code == 2, r.stdout + r.stderr
    assert "operating system's limit" in r.stderr
    assert len(r.stdout + r.stderr) < SHORT
    jobs = opsroom("jobs", "--json", "--catalog", str(ECHO))
    assert json.loads(jobs.stdout) == []


# --------------------------------------------------------------------------- pure parts


def test_the_per_parameter_variable_of_a_shell_script_names_its_limit() -> None:
    spec = CommandSpec(
        name="notes add", path="notes/add.sh", language=Language.SHELL, params=(ParamSpec("notes"),)
    )
    value = "n" * 300_000
    problem = exec_limit_problem(
        spec,
        {"notes": value},
        ("/bin/bash", "notes/add.sh"),
        {"OPSROOM_ARG_NOTES": value, "OPSROOM_PARAMS": "{}"},
        env_param={"OPSROOM_ARG_NOTES": spec.params[0]},
        string_max=131_072,
        total_max=None,
    )
    assert problem == (
        "--notes is 300,000 bytes; a shell script's value can be at most 131,053 bytes "
        "(the operating system's limit for one argument); nothing was run"
    )


def test_all_values_together_are_held_to_arg_max() -> None:
    spec = CommandSpec(
        name="bulk", path="bulk.sh", language=Language.SHELL, params=(ParamSpec("a"),)
    )
    env = {f"OPSROOM_ARG_V{i}": "x" * 100_000 for i in range(30)}
    problem = exec_limit_problem(
        spec, {}, ("/bin/bash",), env, env_param={}, string_max=131_072, total_max=2_097_152
    )
    assert problem is not None
    assert "at most 2,097,152 bytes on this host" in problem


def test_what_was_sent_is_escaped_and_bounded() -> None:
    assert escaped("plain text, ünïcode ✓") == "plain text, ünïcode ✓"
    assert escaped("\x1b[2J\x00\u200b\u202e\\\U000e0041") == (
        "\\x1b[2J\\x00\\u200b\\u202e\\\\\\U000e0041"
    )
    assert escaped("\udcff") == "\\udcff"  # undecodable input stays representable
    form = sent_form("ä" * 1000)  # 2,000 bytes: over the 1 KiB kept whole
    assert isinstance(form, dict)
    assert form["head"] == "ä" * 512
    assert form["bytes"] == 2000
