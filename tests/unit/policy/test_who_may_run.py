"""`who_may_run` (the catalog page's table) says what `decide` (the chat) answers each person.

Read the way the page tells it — hold a granting role whose rooms match, hold no role
that denies it, be in one of the command's own rooms — the table must give every
person, in every room, the answer `decide` gives them.
"""

from __future__ import annotations

import itertools
from fnmatch import fnmatchcase

import pytest

from opsroom.config import Settings
from opsroom.model.commands import CommandSpec, Language, ParamSpec
from opsroom.policy.rbac import (
    Grant,
    WhoMayRun,
    decide,
    decide_each,
    roles_of,
    who_may_run,
)

SETTINGS = Settings.model_validate(
    {
        "roles": [
            {"name": "noc", "members": ["slack:UNOC*"], "allow": ["net *"], "rooms": ["slack:CN*"]},
            {"name": "helpdesk", "members": ["slack:UHD*", "slack:UNOC1"], "allow": ["*"],
             "deny": ["storage *"]},
            {"name": "storage", "members": ["slack:UST*", "slack:UHD2"], "allow": ["storage *"],
             "where": {"mode": ["quick"]}},
        ]
    }
)  # fmt: skip
SPECS = [
    CommandSpec(name="net restart", path="net/restart.sh", language=Language.SHELL),
    CommandSpec(
        name="net wipe", path="net/wipe.sh", language=Language.SHELL, rooms=("slack:CNOC*",)
    ),
    CommandSpec(
        name="storage wipe",
        path="storage/wipe.sh",
        language=Language.SHELL,
        params=(ParamSpec("mode", default="quick"),),
    ),
    CommandSpec(name="help", path="", language=Language.BUILTIN),
]
PRINCIPALS = ["slack:UNOC1", "slack:UNOC2", "slack:UHD1", "slack:UHD2", "slack:UST1", "slack:UX"]
ROOMS = ["slack:CNOC1", "slack:CNX", "slack:CGENERAL"]


def _page_says(who: WhoMayRun, principal: str, room: str) -> bool:
    """May `principal` run it in `room`, read off the page's table."""
    held = set(roles_of(principal, SETTINGS))
    if who.rooms and not any(fnmatchcase(room, r) for r in who.rooms):
        return False
    if held & {role for role, _ in who.denials}:
        return False
    return any(
        g.role in held and (g.rooms is None or any(fnmatchcase(room, r) for r in g.rooms))
        for g in who.grants
    )


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_the_table_gives_everyone_the_answer_decide_gives(spec: CommandSpec) -> None:
    who = who_may_run(spec, SETTINGS)
    for principal, room in itertools.product(PRINCIPALS, ROOMS):
        expected = decide(principal, room, spec, SETTINGS).allowed
        assert _page_says(who, principal, room) == expected, (principal, room)


def test_what_the_table_holds() -> None:
    assert who_may_run(SPECS[1], SETTINGS) == WhoMayRun(
        roles_configured=True,
        rooms=("slack:CNOC*",),
        grants=(
            Grant("noc", ("slack:UNOC*",), ("slack:CN*",), ()),
            Grant("helpdesk", ("slack:UHD*", "slack:UNOC1"), None, ()),
        ),
        denials=(),
    )
    storage = who_may_run(SPECS[2], SETTINGS)
    assert storage.grants == (
        Grant("storage", ("slack:UST*", "slack:UHD2"), None, (("mode", ("quick",)),)),
    )
    assert storage.denials == (("helpdesk", "storage *"),)
    assert who_may_run(SPECS[0], Settings()).roles_configured is False


def test_deciding_a_whole_listing_at_once_answers_as_one_by_one() -> None:
    for principal, room in itertools.product(PRINCIPALS, ROOMS):
        one_by_one = [decide(principal, room, spec, SETTINGS) for spec in SPECS]
        assert decide_each(principal, room, SPECS, SETTINGS) == one_by_one
