"""The Python reader never raises, whatever the file (SPEC §3.7: a broken script never stops
the others loading), and what it reads from an argparse script never makes the catalog
refuse it: names unique in chat, no required parameter with a default, defaults among the
choices.
"""

from __future__ import annotations

import random
import string
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsroom.catalog.parsers.base import ParsedScript
from opsroom.catalog.parsers.python import parse_python
from opsroom.catalog.scan import load_catalog
from support import FIXTURES

CORPUS = sorted((FIXTURES / "python_adopt" / "argparse").glob("*.py"))
SOURCES = [p.read_text(encoding="utf-8") for p in CORPUS]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(parsed: ParsedScript) -> None:
    """What the catalog needs of any parse: chat names unique, no self-contradiction."""
    for params in (parsed.params, *(s.params for s in parsed.subcommands)):
        seen: dict[str, str] = {}
        for p in params:
            for word in (p.name, *p.aliases):
                key = word.casefold().replace("_", "-")
                assert seen.setdefault(key, p.name) == p.name, (word, params)
            if p.required:
                assert (p.default, p.default_text) == (None, None), p
            if p.choices and p.default is not None:
                items = p.default if isinstance(p.default, tuple) else (p.default,)
                assert all(str(v) in p.choices for v in items), p
            assert p.name
            assert p.name == p.name.strip()


@FUZZ
@given(st.text(max_size=400))
def test_random_text_never_raises(text: str) -> None:
    check(parse_python(text))


@FUZZ
@given(
    st.sampled_from(range(len(SOURCES))),
    st.lists(
        st.tuples(
            st.sampled_from(["delete", "insert", "swap_lines", "truncate"]),
            st.integers(min_value=0, max_value=10_000),
            st.text(alphabet=string.printable + "—“”", max_size=12),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_broken_versions_of_real_scripts_never_raise(
    index: int, edits: list[tuple[str, int, str]]
) -> None:
    source = SOURCES[index]
    for op, at, text in edits:
        at %= max(len(source), 1)
        if op == "delete":
            source = source[:at] + source[at + len(text) + 1 :]
        elif op == "insert":
            source = source[:at] + text + source[at:]
        elif op == "swap_lines":
            lines = source.splitlines(keepends=True)
            if len(lines) > 1:
                i = at % len(lines)
                j = (i + len(text) + 1) % len(lines)
                lines[i], lines[j] = lines[j], lines[i]
            source = "".join(lines)
        else:
            source = source[:at]
    check(parse_python(source))


_NAMES = st.sampled_from(
    ["host", "--count", "-c", "-C", "--Count", "--dry-run", "--dry_run", "-", "--", "", "-x", "x y"]
)
# Source text of a keyword's value: a literal, or an expression scripts write there.
_VALUES = st.one_of(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-5, max_value=5),
        st.floats(allow_nan=False, allow_infinity=False, width=16),
        st.text(max_size=5),
        st.lists(st.one_of(st.integers(-3, 3), st.text(max_size=3)), max_size=4),
    ).map(repr),
    st.sampled_from(
        [
            "argparse.SUPPRESS",
            "int",
            "float",
            "str",
            "range(3)",
            "range(1, 9)",
            "os.environ.get('X')",
            "CONST",
            "{'a': 1}",
            "argparse.BooleanOptionalAction",
            "lambda s: s",
            "'%(default)s %(choices)s %%'",
            "f'{CONST}'",
            "-1e308",
            "(1,) + (2,)",
        ]
    ),
)
_KEYWORDS = st.sampled_from(
    [
        "type",
        "default",
        "choices",
        "required",
        "action",
        "nargs",
        "help",
        "metavar",
        "dest",
        "const",
    ]
)
_ACTIONS = st.sampled_from(
    [
        "'store'",
        "'store_true'",
        "'store_false'",
        "'store_const'",
        "'append'",
        "'append_const'",
        "'count'",
        "'extend'",
        "'help'",
        "'version'",
        "'bogus'",
        "argparse.BooleanOptionalAction",
        "MyAction",
    ]
)
_NARGS = st.sampled_from(["'?'", "'*'", "'+'", "0", "1", "2", "-1", "argparse.REMAINDER", "'x'"])


@st.composite
def argparse_scripts(draw: st.DrawFn) -> str:
    lines = ["import argparse, os", "CONST = ['a', 'b']", "p = argparse.ArgumentParser()"]
    targets = ["p"]
    for i in range(draw(st.integers(min_value=0, max_value=8))):
        kind = draw(st.sampled_from(["arg", "arg", "arg", "mutex", "group", "sub", "parent"]))
        target = draw(st.sampled_from(targets))
        if kind == "mutex":
            lines.append(
                f"m{i} = {target}.add_mutually_exclusive_group(required={draw(st.booleans())})"
            )
            targets.append(f"m{i}")
            continue
        if kind == "group":
            lines.append(f"g{i} = {target}.add_argument_group('g')")
            targets.append(f"g{i}")
            continue
        if kind == "sub":
            lines.append(f"s{i} = p.add_subparsers().add_parser({draw(_NAMES)!r})")
            targets.append(f"s{i}")
            continue
        if kind == "parent":
            lines.append(f"q{i} = argparse.ArgumentParser(add_help=False, parents=[p])")
            targets.append(f"q{i}")
            continue
        names = draw(
            st.one_of(
                st.sampled_from(
                    [["--count"], ["-c", "--count"], ["host"], ["--dry-run"], ["-v"], ["-V"]]
                ),
                st.lists(_NAMES, min_size=0, max_size=3),
            )
        )
        kwargs = []
        for key in draw(st.lists(_KEYWORDS, max_size=5, unique=True)):
            if key == "action":
                kwargs.append(f"action={draw(_ACTIONS)}")
            elif key == "nargs":
                kwargs.append(f"nargs={draw(_NARGS)}")
            else:
                kwargs.append(f"{key}={draw(_VALUES)}")
        args = ", ".join([repr(n) for n in names] + kwargs)
        lines.append(f"{target}.add_argument({args})")
    lines.append("p.parse_args()")
    return "\n".join(lines) + "\n"


@FUZZ
@given(argparse_scripts())
def test_generated_argparse_scripts_read_into_parameters_the_catalog_accepts(
    source: str,
) -> None:
    parsed = parse_python(source)
    check(parsed)
    assert parsed.read_as == "argparse", (source, parsed.problems)


def test_adversarial_shapes_are_bounded_and_never_raise() -> None:
    rng = random.Random(10)
    shapes = [
        "x = " + "+".join(["'a'"] * 5000) + "\nimport argparse\n",
        "import argparse\np = argparse.ArgumentParser()\n"
        + "p.add_argument('--a' + " * 300
        + "'x'"
        + ")" * 300
        + "\np.parse_args()\n",
        "import argparse\ns = 'ab'\nfor i in range(60):\n    s = s + s\n"
        "p = argparse.ArgumentParser(description=s)\np.parse_args()\n",
        "import argparse\ndef f(p):\n    f(p)\n    p.add_argument('--a')\n"
        "p = argparse.ArgumentParser()\nf(p)\np.parse_args()\n",
        "import argparse\n"
        + "".join(f"def f{i}(p):\n    f{i + 1}(p)\n" for i in range(50))
        + "p = argparse.ArgumentParser()\nf0(p)\np.parse_args()\n",
        "import argparse\nwhile True:\n    p = argparse.ArgumentParser()\n    p.parse_args()\n",
        "import argparse\nL = [" + ",".join(str(i) for i in range(5000)) + "]\n"
        "p = argparse.ArgumentParser()\np.add_argument('--n', choices=L)\np.parse_args()\n",
        "import argparse\n" + "if x:\n " * 90 + "p = 1\n",
        "\x00import argparse",
        "import argparse\np = argparse.ArgumentParser()\np.add_argument(" + "(" * 250 + ")",
        "".join(rng.choice("()[]{}:=,'\"\\ \nabc") for _ in range(3000)),
        "import click\n@click.command()\n@click.option(" + "[" * 100 + "]" * 100 + ")\n"
        "def c(): pass\nc()\n",
        "import typer\ndef m(x: 'List[' * 50):\n    pass\ntyper.run(m)\n",
        # every iteration of nested loops calls a function with a large literal: bounded work
        "import argparse\nL = list(range(64))\ndef f():\n    x = ["
        + ",".join(["0"] * 1000)
        + "]\nfor a in L:\n    for b in L:\n        for c in L:\n            f()\n",
    ]
    for source in shapes:
        check(parse_python(source))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(argparse_scripts(), min_size=1, max_size=4), st.text(max_size=200))
def test_a_catalog_of_such_files_loads_without_raising(scripts: list[str], junk: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i, source in enumerate(scripts):
            (root / f"tool{i}.py").write_text(source, encoding="utf-8")
        (root / "junk.py").write_text(junk, encoding="utf-8", errors="replace")
        catalog = load_catalog(root)
        # every generated argparse script is a command, or says why it is not
        for i in range(len(scripts)):
            loaded = any(c.path == f"tool{i}.py" for c in catalog.commands)
            said = any(issue.path == f"tool{i}.py" for issue in catalog.errors)
            assert loaded or said
