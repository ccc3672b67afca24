"""Words → a validated Invocation: every argument form of SPEC §4.2 and every error."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from opsroom.errors import ParseError
from opsroom.model.commands import CommandSpec, Language, ParamSpec, ParamType
from opsroom.router.parser import (
    MissingParameters,
    bind_arguments,
    normalize,
    tokenize,
    usage_line,
)

INT, F, B, SW, DT = (
    ParamType.INT,
    ParamType.FLOAT,
    ParamType.BOOL,
    ParamType.SWITCH,
    ParamType.DATETIME,
)

DEPLOY = CommandSpec(
    name="app deploy",
    path="app/deploy.py",
    language=Language.PYTHON,
    params=(
        ParamSpec("site", required=True),
        ParamSpec("env", choices=("dev", "test", "prod")),
        ParamSpec("count", INT, range=(1, 100)),
        ParamSpec("ratio", F),
        ParamSpec("force", SW),
        ParamSpec("notify", B),
        ParamSpec("tag", multiple=True, aliases=("label",)),
        ParamSpec("text"),
        ParamSpec("when", DT),
        ParamSpec("vm_name", length=(3, 8)),
        ParamSpec("code", pattern="[A-Z]{3}"),
    ),
)


def bind(line: str, spec: CommandSpec = DEPLOY) -> dict[str, Any]:
    """Bind a chat line (after normalisation) and return params plus dry_run."""
    inv = bind_arguments(spec, tokenize(normalize(line)), text=line)
    assert inv.command == spec.name
    assert inv.text == line
    return {**inv.params, **({"dry_run": True} if inv.dry_run else {})}


OK_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("positional", "s1", {"site": "s1"}),
    ("positional-declared-order", "s1 prod 5", {"site": "s1", "env": "prod", "count": 5}),
    ("double-dash-space", "--site s1", {"site": "s1"}),
    ("double-dash-equals", "--site=s1", {"site": "s1"}),
    ("powershell-space", "-Site s1", {"site": "s1"}),
    ("powershell-colon", "-Site:s1", {"site": "s1"}),
    ("single-dash-equals", "-site=s1", {"site": "s1"}),
    ("name-equals-value", "site=s1 env=prod", {"site": "s1", "env": "prod"}),
    ("name-equals-case-and-underscore", "VM-NAME=web01 s1", {"site": "s1", "vm_name": "web01"}),
    ("unknown-name-equals-is-a-value", "a=b", {"site": "a=b"}),
    ("prefix-name-equals-is-a-value", "en=prod", {"site": "en=prod"}),
    ("named-skipped-by-positionals", "--site s1 prod", {"site": "s1", "env": "prod"}),
    ("named-after-positional", "prod --site s1", {"site": "s1", "env": "prod"}),
    ("case-insensitive-name", "--SITE s1 --ENV prod", {"site": "s1", "env": "prod"}),
    ("dash-underscore-equivalent", "s1 --vm-name web01", {"site": "s1", "vm_name": "web01"}),
    ("underscore-as-typed", "s1 --vm_name web01", {"site": "s1", "vm_name": "web01"}),
    ("separators-ignored", "s1 -VmName web01", {"site": "s1", "vm_name": "web01"}),
    ("unique-prefix", "--si s1 --en prod", {"site": "s1", "env": "prod"}),
    ("unique-prefix-powershell", "-Si s1 -F", {"site": "s1", "force": True}),
    ("alias", "s1 --label x", {"site": "s1", "tag": ("x",)}),
    ("alias-prefix", "s1 --lab x", {"site": "s1", "tag": ("x",)}),
    ("choice-case-insensitive", "s1 --env PROD", {"site": "s1", "env": "prod"}),
    ("switch", "s1 --force", {"site": "s1", "force": True}),
    ("switch-false", "s1 --force=false", {"site": "s1", "force": False}),
    ("switch-no", "s1 --no-force", {"site": "s1", "force": False}),
    ("switch-powershell-false", "s1 -Force:$false", {"site": "s1", "force": False}),
    ("switch-never-takes-next", "--force s1", {"site": "s1", "force": True}),
    ("bool-flag", "s1 --notify", {"site": "s1", "notify": True}),
    ("bool-value-no", "s1 --notify no", {"site": "s1", "notify": False}),
    ("bool-value-off", "s1 --notify=off", {"site": "s1", "notify": False}),
    ("bool-value-one", "s1 --notify 1", {"site": "s1", "notify": True}),
    ("bool-powershell", "s1 -Notify $false", {"site": "s1", "notify": False}),
    ("bool-no-prefix", "s1 --no-notify", {"site": "s1", "notify": False}),
    ("bool-name-equals", "s1 notify=yes", {"site": "s1", "notify": True}),
    ("array-repeat", "s1 --tag a --tag b", {"site": "s1", "tag": ("a", "b")}),
    ("array-commas", "s1 --tag a,b", {"site": "s1", "tag": ("a", "b")}),
    ("array-commas-spaces", "s1 --tag 'a, b'", {"site": "s1", "tag": ("a", "b")}),
    ("array-mixed", "s1 --tag a,b --tag=c", {"site": "s1", "tag": ("a", "b", "c")}),
    ("array-escaped-comma", r"s1 --tag 'CN=x\,OU=y'", {"site": "s1", "tag": ("CN=x,OU=y",)}),
    ("end-of-options", "-- -s1", {"site": "-s1"}),
    ("end-of-options-values", "-- --force", {"site": "--force"}),
    ("value-after-name-is-value", "s1 --text --force", {"site": "s1", "text": "--force"}),
    ("equals-value-dashes", "s1 --text=--force", {"site": "s1", "text": "--force"}),
    ("equals-value-with-equals", "s1 --text=a=b", {"site": "s1", "text": "a=b"}),
    ("empty-value", "s1 --text ''", {"site": "s1", "text": ""}),
    ("negative-int", "s1 --ratio -2.5", {"site": "s1", "ratio": -2.5}),
    ("float-positional", "s1 dev 3 0.25", {"site": "s1", "env": "dev", "count": 3, "ratio": 0.25}),
    ("int-plus-sign", "s1 --count +7", {"site": "s1", "count": 7}),
    (
        "datetime",
        "s1 --when 2024-05-01T14:30Z",
        {"site": "s1", "when": "2024-05-01T14:30:00+00:00"},
    ),
    ("date-only", "s1 --when 2024-05-01", {"site": "s1", "when": "2024-05-01T00:00:00"}),
    ("pattern-ok", "s1 --code ABC", {"site": "s1", "code": "ABC"}),
    ("length-ok", "s1 --vm-name web", {"site": "s1", "vm_name": "web"}),
    ("dry-run", "s1 --dry-run", {"site": "s1", "dry_run": True}),
    ("dry-run-underscore", "s1 --DRY_RUN", {"site": "s1", "dry_run": True}),
    ("whatif", "s1 --whatif", {"site": "s1", "dry_run": True}),
    ("whatif-powershell", "-WhatIf s1", {"site": "s1", "dry_run": True}),
    ("dry-run-false", "s1 --dry-run=false", {"site": "s1"}),
    ("smart-dashes", "s1 —env prod –force", {"site": "s1", "env": "prod", "force": True}),
    ("smart-quotes", "“site one” —text ‘a b’", {"site": "site one", "text": "a b"}),
    ("nbsp-separates", "s1\u00a0--force", {"site": "s1", "force": True}),
    (
        "shell-metacharacters-byte-for-byte",
        "s1 --text '$(touch x); $HOME | && id `id`'",
        {"site": "s1", "text": "$(touch x); $HOME | && id `id`"},
    ),
    (
        "metacharacters-positional",
        "'$(rm -rf /)' dev",
        {"site": "$(rm -rf /)", "env": "dev"},
    ),
]


@pytest.mark.parametrize(
    ("line", "expected"),
    [c[1:] for c in OK_CASES],
    ids=[c[0] for c in OK_CASES],
)
def test_binds(line: str, expected: dict[str, Any]) -> None:
    assert bind(line) == expected


def test_defaults_are_not_filled_in() -> None:
    params = (ParamSpec("a", default="d"), ParamSpec("b", INT, default=3))
    spec = CommandSpec("x", "", Language.PYTHON, params=params)
    assert bind("", spec) == {}


def test_params_keep_declared_names_and_types() -> None:
    inv = bind_arguments(DEPLOY, ["s1", "--count", "5", "--force", "--vm-name", "web"])
    assert dict(inv.params) == {"site": "s1", "count": 5, "force": True, "vm_name": "web"}
    assert type(inv.params["count"]) is int
    assert inv.dry_run is False


def test_explicit_positions_come_first() -> None:
    spec = CommandSpec(
        "x",
        "",
        Language.POWERSHELL,
        params=(
            ParamSpec("Verbose2", SW),
            ParamSpec("Name"),
            ParamSpec("Path", position=0),
            ParamSpec("Depth", INT, position=1),
        ),
    )
    assert bind("p 3 n", spec) == {"Path": "p", "Depth": 3, "Name": "n"}


def test_last_positional_array_takes_the_rest() -> None:
    spec = CommandSpec(
        "x", "", Language.PYTHON, params=(ParamSpec("env"), ParamSpec("hosts", multiple=True))
    )
    assert bind("prod a b c,d", spec) == {"env": "prod", "hosts": ("a", "b", "c", "d")}


def test_positional_array_before_another_takes_one_value() -> None:
    spec = CommandSpec(
        "x",
        "",
        Language.PYTHON,
        params=(ParamSpec("ids", INT, multiple=True), ParamSpec("reason")),
    )
    assert bind("1,2 oops", spec) == {"ids": (1, 2), "reason": "oops"}


def test_declared_dry_run_parameter_is_a_normal_parameter() -> None:
    spec = CommandSpec("x", "", Language.PYTHON, params=(ParamSpec("dry_run", B),))
    inv = bind_arguments(spec, ["--dry-run"])
    assert dict(inv.params) == {"dry_run": True}
    assert inv.dry_run is False


def test_negative_number_matching_no_param_is_a_value() -> None:
    spec = CommandSpec("x", "", Language.PYTHON, params=(ParamSpec("offset", INT),))
    assert bind("-5", spec) == {"offset": -5}


def _error(line: str, spec: CommandSpec = DEPLOY) -> ParseError:
    with pytest.raises(ParseError) as info:
        bind_arguments(spec, tokenize(normalize(line)))
    err = info.value
    assert err.usage == usage_line(spec)
    assert str(err).endswith("usage: " + usage_line(spec))
    return err


ERROR_CASES = [
    ("choice", "s1 --env qa", "--env: 'qa' is not one of dev, test, prod"),
    ("choice-positional", "s1 qa", "--env: 'qa' is not one of dev, test, prod"),
    ("int", "s1 --count many", "--count: 'many' is not a whole number"),
    ("int-float", "s1 --count 1.5", "--count: '1.5' is not a whole number"),
    ("int-underscore", "s1 --count 1_0", "--count: '1_0' is not a whole number"),
    ("int-unicode-digit", "s1 --count ٣", "--count: '٣' is not a whole number"),
    ("float", "s1 --ratio half", "--ratio: 'half' is not a number"),
    ("float-nan", "s1 --ratio nan", "--ratio: 'nan' is not a number"),
    ("range-high", "s1 --count 500", "--count: 500 is not between 1 and 100"),
    ("range-low", "s1 --count 0", "--count: 0 is not between 1 and 100"),
    ("range-negative-positional", "s1 prod -5", "--count: -5 is not between 1 and 100"),
    ("bool", "s1 --notify=maybe", "--notify: 'maybe' is not true or false"),
    ("switch-value", "s1 --force=sometimes", "--force: 'sometimes' is not true or false"),
    ("datetime", "s1 --when someday", "--when: 'someday' is not a date or time: use ISO 8601"),
    ("pattern", "s1 --code abcd", "--code: 'abcd' does not match the pattern [A-Z]{3}"),
    ("pattern-is-fullmatch", "s1 --code xABCx", "does not match the pattern"),
    ("length-short", "s1 --vm-name ab", "--vm-name: 'ab' is too short (at least 3 characters)"),
    ("length-long", "s1 --vm-name abcdefghi", "--vm-name: 'abcdefghi' is too long (at most 8"),
    ("unknown", "s1 --bogus 1", "unknown parameter --bogus"),
    ("unknown-did-you-mean", "s1 --notfy", "unknown parameter --notfy — did you mean --notify?"),
    ("unknown-powershell", "s1 -Bogus", "unknown parameter -Bogus"),
    ("unknown-dash-value-hint", "s1 -xyz", "write --name=-value or put it after --"),
    ("ambiguous-prefix", "s1 --t x", "--t is ambiguous: it could be --tag, --text"),
    ("needs-value", "s1 --text", "--text needs a value"),
    ("needs-value-powershell", "s1 -Env", "--env needs a value"),
    ("too-many", "s1 dev 1 0.5 yes x hi 2024-01-01 abcd ABC extra", "too many values: 'extra'"),
    ("repeated-scalar", "s1 --env dev --env prod", "--env was given more than once"),
    ("named-then-positional-twice", "--site a --site b", "--site was given more than once"),
    ("no-prefix-on-value-param", "s1 --no-env", "unknown parameter --no-env"),
    ("negated-with-value", "s1 --no-force=true", "--no-force takes no value"),
    ("empty-array", "s1 --tag ,", "--tag: ',' holds no values"),
]


@pytest.mark.parametrize(
    ("line", "message"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_errors_name_the_parameter_and_show_usage(line: str, message: str) -> None:
    err = _error(line)
    assert message in err.message


def test_missing_required_carries_names_and_partial_binding() -> None:
    with pytest.raises(MissingParameters) as info:
        bind_arguments(DEPLOY, ["--env", "prod"])
    err = info.value
    assert err.message == "missing required parameter --site"
    assert err.missing == ("site",)
    assert dict(err.partial.params) == {"env": "prod"}
    assert err.usage == usage_line(DEPLOY)


def test_missing_several_required() -> None:
    spec = CommandSpec(
        "x",
        "",
        Language.PYTHON,
        params=(ParamSpec("a", required=True), ParamSpec("b_c", required=True)),
    )
    with pytest.raises(MissingParameters, match="missing required parameters --a, --b-c"):
        bind_arguments(spec, [])


def test_no_positional_parameters() -> None:
    spec = CommandSpec("x", "", Language.PYTHON, params=(ParamSpec("force", SW),))
    err = _error("oops", spec)
    assert err.message == "unexpected value 'oops': `x` takes no positional values"


def test_powershell_pattern_is_a_case_insensitive_search() -> None:
    spec = CommandSpec(
        "x", "", Language.POWERSHELL, params=(ParamSpec("Code", pattern="[A-Z]{3}"),)
    )
    assert bind("--code xabcx", spec) == {"Code": "xabcx"}
    assert "does not match" in _error("--code ab", spec).message


def test_invalid_pattern_refuses_instead_of_skipping_validation() -> None:
    spec = CommandSpec("x", "", Language.PYTHON, params=(ParamSpec("a", pattern="[unclosed"),))
    assert "pattern '[unclosed' is invalid" in _error("--a x", spec).message


def test_control_characters_shown_escaped_in_errors() -> None:
    err = _error("s1 --env 'pr\nod'")
    assert "'pr\\nod' is not one of" in err.message


USAGE_CASES = [
    (
        "choices-and-switch",
        CommandSpec(
            "network status",
            "",
            Language.POWERSHELL,
            params=(
                ParamSpec("site", required=True),
                ParamSpec("env", choices=("dev", "test", "prod")),
                ParamSpec("verbose", SW),
            ),
        ),
        "!network status <site> [--env dev|test|prod] [--verbose]",
    ),
    (
        "types-arrays-bool-dry-run",
        CommandSpec(
            "x",
            "",
            Language.PYTHON,
            dry_run=True,
            params=(
                ParamSpec("hosts", multiple=True, required=True),
                ParamSpec("count", INT),
                ParamSpec("ok", B),
                ParamSpec("env", required=True, choices=("a", "b")),
            ),
        ),
        "!x <hosts>... [--count <int>] [--ok true|false] <env:a|b> [--dry-run]",
    ),
    (
        "many-choices-shortened",
        CommandSpec("y", "", Language.SHELL, params=(ParamSpec("n", choices=tuple("abcdefgh")),)),
        "!y [--n a|b|c|d|e|f|…]",
    ),
    ("no-params", CommandSpec("version", "", Language.BUILTIN), "!version"),
]


@pytest.mark.parametrize(
    ("spec", "expected"), [c[1:] for c in USAGE_CASES], ids=[c[0] for c in USAGE_CASES]
)
def test_usage_line(spec: CommandSpec, expected: str) -> None:
    assert usage_line(spec) == expected


def test_usage_line_prefix() -> None:
    assert usage_line(CommandSpec("version", "", Language.BUILTIN), prefix="/ops ") == (
        "/ops version"
    )


# A fixed clock: relative dates must mean the same on every day the suite runs.
NOW = datetime(2031, 2, 28, 22, 15, 30, 123456, tzinfo=timezone(timedelta(hours=1)))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("today", "2031-02-28T00:00:00"),
        ("Tomorrow", "2031-03-01T00:00:00"),
        ("yesterday", "2031-02-27T00:00:00"),
        ("+14d", "2031-03-14T00:00:00"),
        ("+2w", "2031-03-14T00:00:00"),
        ("-1d", "2031-02-27T00:00:00"),
        ("now", "2031-02-28T22:15:30+01:00"),
        ("+4h", "2031-03-01T02:15:30+01:00"),
        ("+30m", "2031-02-28T22:45:30+01:00"),
        ("2024-05-01", "2024-05-01T00:00:00"),
    ],
)
def test_relative_dates_resolve_against_the_clock(value: str, expected: str) -> None:
    inv = bind_arguments(DEPLOY, ["s1", "--when", value], now=NOW)
    assert inv.params["when"] == expected


def test_relative_dates_use_the_real_clock_by_default() -> None:
    before = date.today()
    when = bind("s1 --when tomorrow")["when"]
    assert when in {
        (before + timedelta(days=1)).isoformat() + "T00:00:00",
        (date.today() + timedelta(days=1)).isoformat() + "T00:00:00",
    }


@pytest.mark.parametrize("value", ["+14", "14d", "+1y", "next week", "+99999d"])
def test_unknown_date_forms_name_the_accepted_ones(value: str) -> None:
    with pytest.raises(ParseError) as err:
        bind_arguments(DEPLOY, ["s1", "--when", value], now=NOW)
    assert "is not a date or time" in str(err.value)
    assert "tomorrow, yesterday, now, +3d" in str(err.value)
