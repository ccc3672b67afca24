"""Python scripts: docstring, `main()` signature and PEP 723, read without running them."""

from __future__ import annotations

import textwrap

import pytest

from opsroom.catalog.parsers.python import parse_python
from opsroom.model.catalog import Severity
from opsroom.model.commands import ParamSpec, ParamType

MIGRATE = '''\
#!/usr/bin/env python3
# /// script
# requires-python = ">=3.11"
# dependencies = ["netapp-ontap>=9.14", "rich"]
# ///
"""Migrate a volume to another aggregate.

Moves the volume online; clients keep their mounts.

Examples:
    storage migrate-volume vol_web --to aggr2
    storage migrate-volume vol_db --to aggr3 --dry-run
"""

from __future__ import annotations

import datetime as dt
from datetime import datetime
from typing import Literal, Optional


def main(
    volume: str,
    to: Literal["aggr1", "aggr2", "aggr3"],
    retries: int = 3,
    ratio: float = 0.5,
    force: bool = False,
    verify: bool = True,
    tags: list[str] = ["a", "b"],
    ids: list[int] | None = None,
    *,
    at: Optional[datetime] = None,
    stamp: dt.datetime | None = None,
    level: Literal[1, 2, 3] = 2,
    label: str = "x" * 3,
) -> None:
    """Do the migration.

    Args:
        volume: The volume to move.
        to (str): Target aggregate,
            on the same cluster.
        force: Skip the space check.
    """
'''


def _params(source: str) -> dict[str, ParamSpec]:
    parsed = parse_python(textwrap.dedent(source))
    return {p.name: p for p in parsed.params}


def test_realistic_script() -> None:
    parsed = parse_python(MIGRATE)
    assert parsed.problems == ()
    assert parsed.summary == "Migrate a volume to another aggregate."
    assert parsed.description == "Moves the volume online; clients keep their mounts."
    assert parsed.examples == (
        "storage migrate-volume vol_web --to aggr2",
        "storage migrate-volume vol_db --to aggr3 --dry-run",
    )
    assert parsed.requires == ("netapp-ontap>=9.14", "rich")
    assert parsed.requires_python == ">=3.11"
    assert parsed.summary_line == 6
    p = {x.name: x for x in parsed.params}
    assert list(p) == [
        "volume", "to", "retries", "ratio", "force", "verify", "tags", "ids", "at", "stamp",
        "level", "label",
    ]  # fmt: skip
    assert p["volume"] == ParamSpec(
        name="volume", required=True, help="The volume to move.", position=0, line=23
    )
    assert p["to"].choices == ("aggr1", "aggr2", "aggr3")
    assert p["to"].help == "Target aggregate, on the same cluster."
    assert (p["retries"].type, p["retries"].default, p["retries"].required) == (
        ParamType.INT, 3, False,
    )  # fmt: skip
    assert p["ratio"].type is ParamType.FLOAT
    assert p["force"].type is ParamType.SWITCH
    assert p["force"].help == "Skip the space check."
    assert (p["verify"].type, p["verify"].default) == (ParamType.BOOL, True)
    assert (p["tags"].type_label, p["tags"].default) == ("string[]", ("a", "b"))
    assert (p["ids"].type_label, p["ids"].default, p["ids"].required) == ("int[]", None, False)
    assert p["at"].type is ParamType.DATETIME
    assert p["at"].position is None  # keyword-only
    assert p["stamp"].type is ParamType.DATETIME
    assert (p["level"].type, p["level"].choices, p["level"].default) == (
        ParamType.INT, ("1", "2", "3"), 2,
    )  # fmt: skip
    assert (p["label"].default, p["label"].default_text) == (None, '"x" * 3')


@pytest.mark.parametrize(
    ("annotation", "label"),
    [
        ("str", "string"),
        ("int", "int"),
        ("float", "float"),
        ("bool", "bool"),
        ("datetime", "datetime"),
        ("list[str]", "string[]"),
        ("List[int]", "int[]"),
        ("Optional[int]", "int"),
        ("int | None", "int"),
        ("None | float", "float"),
        ("Union[str, None]", "string"),
        ("'int'", "int"),
        ("tuple[str, ...]", "string[]"),
    ],
)
def test_annotations(annotation: str, label: str) -> None:
    parsed = parse_python(f'"""Doc."""\ndef main(x: {annotation}): pass\n')
    assert parsed.problems == ()
    assert parsed.params[0].type_label == label


@pytest.mark.parametrize("annotation", ["dict[str, int]", "Path", "int | str", "list[list[int]]"])
def test_unknown_annotation_is_an_error(annotation: str) -> None:
    parsed = parse_python(f'"""Doc."""\n\ndef main(\n    x: {annotation},\n): pass\n')
    assert [(p.line, p.severity) for p in parsed.problems] == [(4, Severity.ERROR)]
    assert "unknown type for parameter 'x'" in parsed.problems[0].message


def test_unannotated_parameters_take_the_type_of_their_default() -> None:
    p = _params('"""Doc."""\ndef main(name, count=5, rate=1.5, dry=False): pass\n')
    assert [p[n].type_label for n in ("name", "count", "rate", "dry")] == [
        "string", "int", "float", "switch",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("source", "line", "fragment"),
    [
        ('"""Doc."""\ndef main(*args): pass\n', 2, "*args"),
        ('"""Doc."""\ndef main(x: str, **kwargs): pass\n', 2, "**kwargs"),
        ('"""Doc."""\ndef helper(): pass\n', 1, "no `def main(...)`"),
        ('"""Doc."""\nasync def main(): pass\n', 2, "async def"),
        ('"""Doc."""\ndef main(x, /): pass\n', 2, "positional-only"),
        ('"""Doc."""\n\ndef main(:\n    pass\n', 3, "syntax error"),
    ],
)
def test_errors(source: str, line: int, fragment: str) -> None:
    parsed = parse_python(source)
    errors = [p for p in parsed.problems if p.severity is Severity.ERROR]
    assert len(errors) == 1
    assert errors[0].line == line
    assert fragment in errors[0].message


def test_missing_docstring_is_a_warning() -> None:
    parsed = parse_python("def main(host: str) -> None:\n    print(host)\n")
    assert [(p.severity, p.line) for p in parsed.problems] == [(Severity.WARNING, 1)]
    assert "docstring" in parsed.problems[0].message
    assert parsed.params[0].name == "host"


def test_module_args_section_gives_help_and_stays_out_of_the_description() -> None:
    parsed = parse_python(
        textwrap.dedent(
            '''\
            """Restart a service.

            Waits for the health check.

            Args:
                service: Which service to restart.
            """
            def main(service: str): ...
            '''
        )
    )
    assert parsed.description == "Waits for the health check."
    assert parsed.params[0].help == "Which service to restart."


def test_script_is_never_executed(tmp_path: object) -> None:
    parsed = parse_python('"""Doc."""\nraise SystemExit("ran!")\ndef main(): pass\n')
    assert parsed.problems == ()


def test_bad_pep723_block_is_an_error() -> None:
    source = '"""Doc."""\n# /// script\n# dependencies = [\n# ///\ndef main(): pass\n'
    parsed = parse_python(source)
    assert [(p.line, p.severity) for p in parsed.problems] == [(2, Severity.ERROR)]
