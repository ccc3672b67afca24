"""`catalog check` refuses a pattern opsroom cannot match in linear time, and says why.

Values are matched with RE2 (opsroom.model.patterns), which never backtracks; a pattern
that needs backtracking (a backreference, a lookaround) is a catalog error at the line that
declares it, so the command is never registered with a check it would skip or stall on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opsroom.catalog.scan import load_catalog
from opsroom.model.catalog import Severity

PS1 = """\
<#
.SYNOPSIS
    Reset a badge.
#>
param(
    [Parameter(Mandatory)]
    [ValidatePattern('{pattern}')]
    [string]$Code
)
"Reset $Code"
"""
SH = """\
#!/usr/bin/env bash
# @describe Reset a badge.
# @arg code! The badge code
echo "$OPSROOM_ARG_CODE"
"""

NEEDS_BACKTRACKING = [
    (r"^(\w)\1$", "a backreference"),
    (r"^(?P<c>\w)(?P=c)$", "a backreference"),
    (r"^(?=B)\w+$", "a lookahead"),
    (r"^(?!admin)\w+$", "a lookahead"),
    (r"(?<=B-)\d+", "a lookbehind"),
    (r"(?<!x)\d+", "a lookbehind"),
]


def _errors(root: Path) -> list[tuple[str, int, str]]:
    return [
        (i.path, i.line, i.message)
        for i in load_catalog(root, commit=None).issues
        if i.severity is Severity.ERROR
    ]


@pytest.mark.parametrize(("pattern", "construct"), NEEDS_BACKTRACKING)
def test_validatepattern_that_needs_backtracking_is_a_catalog_error(
    tmp_path: Path, pattern: str, construct: str
) -> None:
    (tmp_path / "Reset-Badge.ps1").write_text(PS1.replace("{pattern}", pattern))
    catalog = load_catalog(tmp_path, commit=None)
    assert catalog.commands == (), "a command whose check cannot run is not registered"
    assert _errors(tmp_path) == [
        (
            "Reset-Badge.ps1",
            7,  # the [ValidatePattern()] line
            f"parameter $Code: pattern {'(?i)' + pattern!r} uses {construct}, "
            "which opsroom cannot match in linear time",
        )
    ]


@pytest.mark.parametrize(("pattern", "construct"), NEEDS_BACKTRACKING)
def test_sidecar_pattern_that_needs_backtracking_is_a_catalog_error(
    tmp_path: Path, pattern: str, construct: str
) -> None:
    (tmp_path / "reset.sh").write_text(SH)
    literal = pattern.replace("\\", "\\\\")
    (tmp_path / "reset.sh.opsroom.toml").write_text(
        f'summary = "Reset a badge."\n\n[params.code]\npattern = "{literal}"\n'
    )
    assert load_catalog(tmp_path, commit=None).commands == ()
    assert _errors(tmp_path) == [
        (
            "reset.sh.opsroom.toml",
            3,
            f"parameter 'code': pattern {pattern!r} uses {construct}, "
            "which opsroom cannot match in linear time",
        )
    ]


@pytest.mark.parametrize("pattern", ["^(a+)+$", "^(a|aa)*b$", "^[a-z][a-z0-9._-]{1,19}$"])
def test_patterns_that_only_look_dangerous_load(tmp_path: Path, pattern: str) -> None:
    # RE2 matches nested quantifiers in linear time: nothing to refuse.
    (tmp_path / "Reset-Badge.ps1").write_text(PS1.replace("{pattern}", pattern))
    (tmp_path / "reset.sh").write_text(SH)
    (tmp_path / "reset.sh.opsroom.toml").write_text(f"[params.code]\npattern = '{pattern}'\n")
    catalog = load_catalog(tmp_path, commit=None)
    assert _errors(tmp_path) == []
    assert [c.name for c in catalog.commands] == ["reset", "reset-badge"]


def test_an_invalid_pattern_is_still_called_invalid(tmp_path: Path) -> None:
    (tmp_path / "Reset-Badge.ps1").write_text(PS1.replace("{pattern}", "^[a-z"))
    [(path, line, message)] = _errors(tmp_path)
    assert (path, line) == ("Reset-Badge.ps1", 7)
    assert message.startswith("parameter $Code: pattern '(?i)^[a-z' is not a valid regular")


def test_a_python_only_escape_says_what_to_write_instead(tmp_path: Path) -> None:
    (tmp_path / "reset.sh").write_text(SH)
    (tmp_path / "reset.sh.opsroom.toml").write_text("[params.code]\npattern = '^B-\\d+\\Z'\n")
    [(_, _, message)] = _errors(tmp_path)
    assert "not supported by opsroom's linear-time matcher" in message
    assert "write \\z for the end of the value" in message
