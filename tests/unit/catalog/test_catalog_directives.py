"""`# opsroom: key = value` directives at the top of a script (SPEC §3.5)."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from opsroom.catalog.directives import read_directives
from opsroom.model.languages import POWERSHELL, PYTHON, SHELL, LanguageSupport

ALL = """\
#!/usr/bin/env bash
# opsroom: timeout = "2h"
# opsroom: approval = "storage-leads"
# opsroom: concurrency = 1
# opsroom: aliases = ["migrate", "Storage  Move"]
# opsroom: secrets = ["NETAPP_PASSWORD"]
# opsroom: runs_on = "windows"
# opsroom: rooms = ["slack:C0NOC*"]
# opsroom: background = true
# opsroom: dry_run = true
# opsroom: hidden = false
# opsroom: owner = "team-storage"
# opsroom: choices_from = "storage list-volumes"
# @describe Migrate.
"""


def test_every_key() -> None:
    d = read_directives(ALL)
    assert d.problems == ()
    assert dict(d.values) == {
        "timeout": 7200.0,
        "approval": "storage-leads",
        "concurrency": 1,
        "aliases": ("migrate", "storage move"),
        "secrets": ("NETAPP_PASSWORD",),
        "runs_on": "windows",
        "rooms": ("slack:C0NOC*",),
        "background": True,
        "dry_run": True,
        "hidden": False,
        "owner": "team-storage",
        "choices_from": "storage list-volumes",
    }
    assert d.lines["timeout"] == 2
    assert d.lines["choices_from"] == 13


def test_choices_from_table() -> None:
    d = read_directives('# opsroom: choices_from = { job = "jenkins jobs", env = "envs" }\n')
    assert d.values["choices_from"] == MappingProxyType({"job": "jenkins jobs", "env": "envs"})


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ('# opsroom: timeoutt = "2h"', "unknown directive 'timeoutt'"),
        ('# opsroom: timeout = "soon"', "bad value for directive 'timeout'"),
        ("# opsroom: timeout = 0", "bad value for directive 'timeout'"),
        ("# opsroom: concurrency = 0", "at least 1"),
        ("# opsroom: concurrency = true", "at least 1"),
        ('# opsroom: aliases = "migrate"', "list of strings"),
        ('# opsroom: aliases = ["bad/alias"]', "not a valid command name"),
        ('# opsroom: secrets = ["NETAPP-PASSWORD"]', "environment variable"),
        ('# opsroom: background = "yes"', "true or false"),
        ("# opsroom: approval = 3", "non-empty string"),
        ("# opsroom: choices_from = 3", "command name"),
        ("# opsroom: timeout", "bad directive"),
        ('# opsroom: timeout = "1h" approval = "x"', "bad directive"),
    ],
)
def test_bad_directives_are_problems_with_their_line(line: str, fragment: str) -> None:
    d = read_directives(f"#!/bin/sh\n\n{line}\n")
    assert [p.line for p in d.problems] == [3]
    assert fragment in d.problems[0].message
    assert d.values == {}


def test_directive_given_twice() -> None:
    d = read_directives('# opsroom: owner = "a"\n# opsroom: owner = "b"\n')
    assert d.values["owner"] == "a"
    assert [(p.line, "twice" in p.message) for p in d.problems] == [(2, True)]


@pytest.mark.parametrize(
    ("source", "language", "expected"),
    [
        # below the first code line: not a directive
        ('echo hi\n# opsroom: owner = "x"\n', SHELL, {}),
        # python: either side of the module docstring
        ('#!/usr/bin/env python3\n# opsroom: owner = "a"\n"""Doc.\n\nMore."""\n', PYTHON,
         {"owner": "a"}),
        ('"""Doc.\n\nMore.\n"""\n# opsroom: owner = "b"\nimport os\n', PYTHON, {"owner": "b"}),
        ('"""Doc."""\nimport os\n# opsroom: owner = "c"\n', PYTHON, {}),
        # powershell: around the comment-based help block
        ('<#\n.SYNOPSIS\n  Hi\n#>\n# opsroom: owner = "d"\nparam()\n', POWERSHELL,
         {"owner": "d"}),
        ('# OpsRoom: owner = "e"\n', SHELL, {"owner": "e"}),
    ],
)  # fmt: skip
def test_only_header_comment_lines_count(
    source: str, language: LanguageSupport, expected: dict[str, Any]
) -> None:
    d = read_directives(source, language.comments)
    assert d.problems == ()
    assert dict(d.values) == expected
