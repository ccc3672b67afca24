"""Scripts that parse their own command line (SPEC §3.10): the binder refuses two of an
exclusive group (argparse's mutually exclusive groups) and fills only positionals by position."""

from __future__ import annotations

import dataclasses

import pytest

from opsroom.errors import ParseError
from opsroom.model.commands import (
    ArgvSlot,
    CommandSpec,
    ExclusiveGroup,
    Language,
    ParamSpec,
    ParamType,
)
from opsroom.router.parser import MissingParameters, bind_arguments

JSON = ParamSpec("json", ParamType.SWITCH)
CSV = ParamSpec("csv", ParamType.SWITCH)
OUT = ParamSpec("output")
REPORT = ParamSpec("report", required=True, position=0)


def spec(*groups: ExclusiveGroup) -> CommandSpec:
    return CommandSpec(
        name="export",
        path="export.py",
        language=Language.PYTHON,
        params=(REPORT, JSON, CSV, OUT),
        exclusive=groups,
    )


def test_two_of_a_group_are_refused_with_the_usage() -> None:
    s = spec(ExclusiveGroup(("json", "csv", "output")))
    with pytest.raises(ParseError) as err:
        bind_arguments(s, ["q1", "--json", "--output", "x.txt"])
    assert err.value.message == (
        "--json and --output cannot be used together (only one of --json, --csv, --output)"
    )
    assert (err.value.usage or "").startswith("!export <report>")


def test_one_of_a_group_or_none_is_fine_and_a_switch_turned_off_does_not_count() -> None:
    s = spec(ExclusiveGroup(("json", "csv")))
    assert dict(bind_arguments(s, ["q1", "--csv"]).params) == {"report": "q1", "csv": True}
    assert dict(bind_arguments(s, ["q1"]).params) == {"report": "q1"}
    got = bind_arguments(s, ["q1", "--csv", "--no-json"])
    assert dict(got.params) == {"report": "q1", "json": False, "csv": True}


def test_a_required_group_needs_one_after_the_required_parameters() -> None:
    s = spec(ExclusiveGroup(("json", "csv"), required=True))
    with pytest.raises(ParseError) as err:
        bind_arguments(s, ["q1"])
    assert err.value.message == "one of --json, --csv is required"
    with pytest.raises(MissingParameters):  # a missing parameter is said first (menus, §5.6)
        bind_arguments(s, [])
    assert bind_arguments(s, ["q1", "--json"]).params["json"] is True


def test_without_groups_any_combination_binds() -> None:
    got = bind_arguments(spec(), ["q1", "--json", "--csv"])
    assert (got.params["json"], got.params["csv"]) == (True, True)


def test_positional_values_fill_only_the_scripts_positionals() -> None:
    host = ParamSpec("host", required=True, position=0, argv=ArgvSlot())
    volumes = ParamSpec("volumes", multiple=True, position=1, argv=ArgvSlot())
    count = ParamSpec("count", ParamType.INT, argv=ArgvSlot("--count"))
    cli = CommandSpec(
        name="backup", path="backup.py", language=Language.PYTHON,
        params=(host, volumes, count), cli_words=(),
    )  # fmt: skip
    got = bind_arguments(cli, ["web1", "vol1", "vol2", "--count", "2"])
    assert dict(got.params) == {"host": "web1", "volumes": ("vol1", "vol2"), "count": 2}
    with pytest.raises(ParseError) as err:  # `--count` is named, never given by position
        bind_arguments(dataclasses.replace(cli, params=(host, count)), ["a", "2"])
    assert err.value.message.startswith("too many values: '2' left over")
