"""Menus (SPEC §5.6): a missing required parameter with choices becomes a question."""

from __future__ import annotations

from pathlib import Path

from opsroom.model.blocks import Choices
from opsroom.model.jobs import JobState
from opsroom.testing import Bot
from support import FIXTURES, Opsroom

CATALOG = str(FIXTURES / "menu_catalog")


def _menu(said: object) -> Choices:
    for reply in said.replies:  # type: ignore[attr-defined]
        for block in reply.blocks:
            if isinstance(block, Choices):
                return block
    raise AssertionError("no menu was offered")


async def test_missing_choice_is_asked_and_answered_by_number(tmp_path: Path) -> None:
    async with Bot.open(catalog_dir=CATALOG, store_url=f"sqlite:///{tmp_path}/t.db") as bot:
        asked = await bot.say("!ci deploy")
        menu = _menu(asked)
        assert menu.options == ("dev", "test", "prod")
        assert asked.outcome.job_id is None, "nothing runs before the question is answered"
        second = await bot.say("2")
        region = _menu(second)
        assert region.options == ("emea", "amer", "apac")
        done = await bot.say("apac")
    assert done.outcome.state is JobState.SUCCEEDED
    assert done.outcome.output == "deploying to test in apac"


async def test_menu_answer_comes_from_the_same_person(tmp_path: Path) -> None:
    async with Bot.open(catalog_dir=CATALOG, store_url=f"sqlite:///{tmp_path}/t.db") as bot:
        _menu(await bot.say("!ci deploy", as_="local:alice"))
        other = await bot.say("1", as_="local:bob")
        assert other.outcome.outcome == "refused", "bob's '1' is not an answer to alice"
        mine = await bot.say("3", as_="local:alice")
        assert mine.outcome.outcome == "succeeded"
        assert _menu(mine).options == ("emea", "amer", "apac")


async def test_button_click_answers_the_menu(tmp_path: Path) -> None:
    async with Bot.open(catalog_dir=CATALOG, store_url=f"sqlite:///{tmp_path}/t.db") as bot:
        menu = _menu(await bot.say("!ci deploy prod"))
        replies = []

        async def send(reply: object) -> None:
            replies.append(reply)

        from opsroom.model.messages import Inbound

        who = Inbound(text="", principal="local:tester", room="local:test", direct=True)
        outcome = await bot.app.dispatcher.choose(who, menu.menu_id, 0, send)
    assert outcome.state is JobState.SUCCEEDED
    assert outcome.output == "deploying to prod in emea"


async def test_choices_from_runs_the_other_command(tmp_path: Path) -> None:
    async with Bot.open(catalog_dir=CATALOG, store_url=f"sqlite:///{tmp_path}/t.db") as bot:
        asked = await bot.say("!ci build --branch release")
        menu = _menu(asked)
        assert menu.options == ("deploy-pos", "nightly-inventory", "price-sync")
        done = await bot.say("price-sync")
        again = await bot.say("!ci build")
        assert _menu(again).options == menu.options
        jobs = await bot.app.store.list_jobs()
    assert done.outcome.output == "building price-sync from release"
    assert [j.command for j in jobs].count("ci pipelines") == 1, "choices are cached briefly"


def test_run_is_not_interactive_and_names_the_choices(opsroom: Opsroom) -> None:
    r = opsroom("run", "--catalog", CATALOG, "!ci deploy")
    assert r.code == 2
    assert "env" in r.stderr
    assert "dev|test|prod" in r.stderr
