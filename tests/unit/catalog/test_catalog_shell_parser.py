"""Shell scripts: argc-style comment tags (SPEC §3.3)."""

from __future__ import annotations

import pytest

from opsroom.catalog.parsers.shell import parse_shell
from opsroom.model.catalog import Severity
from opsroom.model.commands import ParamSpec, ParamType

DEPLOY = """\
#!/usr/bin/env bash
# @describe Deploy a web application to an environment.
# Rolls the new build onto every node, one at a time.
# Stops at the first failed health check.
# @arg app! Application to deploy
# @arg target=web01 Host to start with
# @arg extra* Extra hosts
# @option -e --env[dev|test|prod] Target environment
# @option -r --region=emea Region
# @option --tier[=gold|silver] Service tier
# @option --count <INT> How many nodes at once
# @option --labels+ <VALUE> Labels to set
# @option --ticket! $TICKET <ID> Change ticket
# @flag --force Skip the confirmation
# @flag -q --quiet Less output
# @example deploy shop --env prod
# @example deploy shop web02 --force
set -euo pipefail
echo "deploying"
"""


def _params() -> dict[str, ParamSpec]:
    return {p.name: p for p in parse_shell(DEPLOY).params}


def test_realistic_script_has_no_problems() -> None:
    parsed = parse_shell(DEPLOY)
    assert parsed.problems == ()
    assert parsed.summary == "Deploy a web application to an environment."
    assert parsed.description == (
        "Rolls the new build onto every node, one at a time.\n"
        "Stops at the first failed health check."
    )
    assert parsed.summary_line == 2
    assert parsed.examples == ("deploy shop --env prod", "deploy shop web02 --force")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("app", ParamSpec("app", required=True, help="Application to deploy", position=0, line=5)),
        ("target", ParamSpec("target", default="web01", help="Host to start with", position=1,
                             line=6)),
        ("extra", ParamSpec("extra", multiple=True, help="Extra hosts", position=2, line=7)),
        ("env", ParamSpec("env", choices=("dev", "test", "prod"), help="Target environment",
                          aliases=("e",), line=8)),
        ("region", ParamSpec("region", default="emea", help="Region", aliases=("r",), line=9)),
        ("tier", ParamSpec("tier", default="gold", choices=("gold", "silver"),
                           help="Service tier", line=10)),
        ("count", ParamSpec("count", type=ParamType.INT, help="How many nodes at once", line=11)),
        ("labels", ParamSpec("labels", multiple=True, required=True, help="Labels to set",
                             line=12)),
        ("ticket", ParamSpec("ticket", required=True, help="Change ticket", line=13)),
        ("force", ParamSpec("force", type=ParamType.SWITCH, default=False,
                            help="Skip the confirmation", line=14)),
        ("quiet", ParamSpec("quiet", type=ParamType.SWITCH, default=False, help="Less output",
                            aliases=("q",), line=15)),
    ],
)  # fmt: skip
def test_tags(name: str, expected: ParamSpec) -> None:
    assert _params()[name] == expected


def test_missing_describe_is_a_warning() -> None:
    parsed = parse_shell("#!/bin/bash\n# @arg host!\necho hi\n")
    assert [(p.line, p.severity) for p in parsed.problems] == [(1, Severity.WARNING)]
    assert "@describe" in parsed.problems[0].message
    assert parsed.params[0].name == "host"


@pytest.mark.parametrize(
    ("tag_line", "fragment", "severity"),
    [
        ("# @option", "bad @option", Severity.ERROR),
        ("# @arg !x", "bad @arg", Severity.ERROR),
        ("# @cmd sub", "subcommands", Severity.ERROR),
        ("# @flag --force=yes", "cannot have a value", Severity.ERROR),
        ("# @option --env[`_envs`]", "shell function", Severity.WARNING),
        ("# @opiton --typo", "unknown tag @opiton", Severity.WARNING),
        ("# @arg app", "declared twice", Severity.ERROR),
    ],
)
def test_bad_tags(tag_line: str, fragment: str, severity: Severity) -> None:
    parsed = parse_shell(f"# @describe Thing.\n# @arg app\n{tag_line}\n")
    assert [(p.line, p.severity) for p in parsed.problems] == [(3, severity)]
    assert fragment in parsed.problems[0].message


def test_required_with_default_is_kept_for_the_catalog_check() -> None:
    # `name!=x` is contradictory; the parser keeps both so `catalog check` can report it.
    p = parse_shell("# @describe X.\n# @option --region!=emea Region\n").params[0]
    assert (p.required, p.default) == (True, "emea")


def test_default_from_function_is_never_run() -> None:
    p = parse_shell("# @describe X.\n# @option --day=`date +%F` Day\n").params[0]
    assert (p.default, p.default_text) == (None, "`date +%F`")
