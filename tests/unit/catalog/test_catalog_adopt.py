"""Shell scripts that read their own options: the warning, `catalog adopt`'s inference and the
sidecar `argv` key it writes (SPEC §3.10, docs/adopting.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from opsroom.catalog.adopt import Option, Positional, infer_shell, sidecar_text
from opsroom.catalog.parsers.shell import parse_shell
from opsroom.catalog.scan import load_catalog
from opsroom.catalog.sidecar import read_sidecar
from opsroom.model.catalog import Severity
from opsroom.model.commands import ArgvStyle, ParamSpec, ParamType

ADOPT = Path(__file__).parents[2] / "fixtures" / "adopt"


def _source(name: str) -> str:
    return (ADOPT / name).read_text(encoding="utf-8")


def test_getopts_script_without_tags_is_a_warning_naming_adopt() -> None:
    parsed = parse_shell(_source("deploy.sh"))
    assert parsed.read_as == "getopts"
    assert parsed.params == ()
    (warning,) = [p for p in parsed.problems if "getopts" in p.message]
    assert warning.severity is Severity.WARNING
    assert warning.line == 7  # the usage() function comes before the getopts loop
    assert "opsroom catalog adopt" in warning.message


@pytest.mark.parametrize(
    ("source", "read_as"),
    [
        ("# @describe A.\n# @flag --force F\nwhile getopts f o; do :; done\n", "tags"),
        ("# @describe A.\necho hi\n", "tags"),
        ("echo hi\n# getopts in a comment is not a loop\n", "plain"),
        ('case "$1" in\n  start) run ;;\nesac\n', "plain"),  # words, not options
        ('while [ $# -gt 0 ]; do\n  case "$1" in\n    -v) v=1 ;;\n  esac\ndone\n', "getopts"),
        ("function usage {\n  echo x\n}\n", "getopts"),
    ],
)
def test_what_counts_as_reading_own_options(source: str, read_as: str) -> None:
    parsed = parse_shell(source)
    assert parsed.read_as == read_as
    assert any("catalog adopt" in p.message for p in parsed.problems) is (read_as == "getopts")


def test_infer_getopts_letters_variables_usage_and_synopsis() -> None:
    a = infer_shell(_source("deploy.sh"))
    assert a.summary == "Deploy the web site to one host"
    assert a.argv_style is ArgvStyle.GETOPTS
    assert a.options == (
        Option("verbose", "v", None, takes_value=False, help="Verbose output", line=25),
        Option("dry", "n", None, takes_value=False, help="", line=26),
        Option("config_file", "f", None, True, help="Configuration file to use", line=30),
        Option("tags", "t", None, True, multiple=True, help="Tag to apply (repeatable)", line=31),
    )
    assert a.positionals == (
        Positional("host", required=True),
        Positional("extra", required=False, multiple=True),
    )
    assert a.skipped == ("-h: shows the usage text",)


def test_infer_case_loop_long_options() -> None:
    a = infer_shell(_source("backup.sh"))
    assert a.argv_style is ArgvStyle.LONG
    assert [(o.name, o.letter, o.long, o.takes_value, o.help) for o in a.options] == [
        ("bucket", "b", "bucket", True, "Bucket to write to"),
        ("keep", None, "keep", True, "How long to keep it"),
        ("mode", None, "mode", True, ""),
        ("quiet", "q", "quiet", False, "Less output"),
    ]
    assert a.options[2].todo == "the script reads --mode=VALUE; opsroom passes --mode VALUE"
    assert a.positionals == (Positional("database", required=True),)


def test_infer_usage_synopsis_choices() -> None:
    a = infer_shell(_source("service.sh"))
    assert a.options == ()
    assert a.positionals == (
        Positional("action", True, choices=("start", "stop", "restart")),
        Positional("service", True),
        Positional("timeout", False),
    )
    assert a.argv_style is ArgvStyle.LONG


def test_short_only_case_loop_uses_getopts_style() -> None:
    source = (
        "#!/bin/bash\n"
        'while [ "$#" -gt 0 ]; do\n'
        '  case "$1" in\n'
        '    -o) out="$2"; shift 2 ;;\n'
        "    -x) trace=1; shift ;;\n"
        "    *) break ;;\n"
        "  esac\n"
        "done\n"
    )
    a = infer_shell(source)
    assert a.argv_style is ArgvStyle.GETOPTS
    assert [(o.name, o.letter, o.takes_value) for o in a.options] == [
        ("out", "o", True),
        ("trace", "x", False),
    ]


def test_letters_that_differ_only_in_case_keep_the_first() -> None:
    # chat compares names case-insensitively: -v and -V cannot both be aliases
    a = infer_shell('while getopts "vV" o; do\n  case $o in\n    v) ;;\n    V) ;;\n  esac\ndone\n')
    assert [o.name for o in a.options] == ["v"]
    assert a.skipped == (
        "-V: clashes with another option (chat names ignore case); add it by hand",
    )


@pytest.mark.parametrize("name", ["deploy.sh", "backup.sh", "service.sh"])
def test_written_sidecar_is_valid_and_loads_the_parameters(name: str, tmp_path: Path) -> None:
    shutil.copy(ADOPT / name, tmp_path / name)
    text = sidecar_text(infer_shell(_source(name)), name)
    assert read_sidecar(text).problems == ()
    before = load_catalog(tmp_path)
    assert any("catalog adopt" in i.message for i in before.issues)
    (tmp_path / f"{name}.opsroom.toml").write_text(text, encoding="utf-8")
    cat = load_catalog(tmp_path)
    assert cat.issues == ()  # the adopt warning is gone once the sidecar declares them
    (spec,) = cat.commands
    assert spec.params
    assert spec.argv_style is not None
    assert cat.files[0].read_as == "getopts"


def test_adopted_getopts_spec(tmp_path: Path) -> None:
    shutil.copy(ADOPT / "deploy.sh", tmp_path / "deploy.sh")
    text = sidecar_text(infer_shell(_source("deploy.sh")), "deploy.sh")
    (tmp_path / "deploy.sh.opsroom.toml").write_text(text, encoding="utf-8")
    (spec,) = load_catalog(tmp_path).commands
    assert spec.summary == "Deploy the web site to one host"
    assert spec.argv_style is ArgvStyle.GETOPTS
    assert [
        (p.name, p.type, p.multiple, p.aliases, p.position, p.required) for p in spec.params
    ] == [
        ("verbose", ParamType.SWITCH, False, ("v",), None, False),
        ("dry", ParamType.SWITCH, False, ("n",), None, False),
        ("config_file", ParamType.STRING, False, ("f",), None, False),
        ("tags", ParamType.STRING, True, ("t",), None, False),
        ("host", ParamType.STRING, False, (), 0, True),
        ("extra", ParamType.STRING, True, (), 1, False),
    ]


@pytest.mark.parametrize(
    ("script", "sidecar", "message"),
    [
        ("a.sh", 'argv = "posix"', 'argv must be "getopts" or "long", not \'posix\''),
        ("a.sh", "argv = 1", "argv must be a string"),
        (
            "a.py",
            'argv = "long"',
            "argv applies to shell scripts and other executables only",
        ),
        (
            "a.sh",
            'argv = "getopts"\n[params.output]\nhelp = "x"',
            "argv = \"getopts\": parameter 'output' needs a one-letter name or alias "
            "(its getopts letter), or a position",
        ),
        (
            "a.sh",
            'argv = "long"\n[params.a]\nposition = 0\ntype = "string[]"\n'
            "[params.b]\nposition = 1\n",
            "argv: only the last positional parameter may take several values ('a')",
        ),
    ],
)
def test_bad_argv_sidecars_are_errors(
    tmp_path: Path, script: str, sidecar: str, message: str
) -> None:
    header = '"""A."""\ndef main(): pass\n' if script.endswith(".py") else "# @describe A.\n"
    (tmp_path / script).write_text(header, encoding="utf-8")
    (tmp_path / f"{script}.opsroom.toml").write_text(sidecar + "\n", encoding="utf-8")
    cat = load_catalog(tmp_path)
    assert cat.commands == ()
    assert [i.message for i in cat.errors] == [message]
    assert cat.errors[0].path == f"{script}.opsroom.toml"


def test_a_getopts_letter_may_be_the_name_itself(tmp_path: Path) -> None:
    (tmp_path / "a.sh").write_text("getopts f: o\n", encoding="utf-8")
    (tmp_path / "a.sh.opsroom.toml").write_text(
        'summary = "A."\nargv = "getopts"\n[params.f]\nhelp = "file"\n', encoding="utf-8"
    )
    cat = load_catalog(tmp_path)
    assert cat.issues == ()
    assert cat.commands[0].params == (ParamSpec("f", help="file", line=3),)
