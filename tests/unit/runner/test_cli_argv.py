"""argv for scripts that parse their own command line (SPEC §3.10): exact words, and the
values a real argparse / click parser gets back from them are the values sent."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from types import MappingProxyType
from typing import Any

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsroom.catalog.parsers.python import parse_python
from opsroom.config import RunnerSettings
from opsroom.errors import RefusedError
from opsroom.model.commands import (
    ArgForm,
    ArgvSlot,
    CommandSpec,
    Invocation,
    Language,
    ParamSpec,
    ParamType,
    ParamValue,
)
from opsroom.runner.argv import PYTHON_BOOTSTRAP, build_launch
from opsroom.runner.cli_argv import cli_argv

ROOT = Path("/srv/catalog")


def spec(*params: ParamSpec, words: tuple[str, ...] = ()) -> CommandSpec:
    return CommandSpec(
        name="ops tool",
        path="ops/tool.py",
        language=Language.PYTHON,
        params=params,
        cli_words=words,
    )


def argv(s: CommandSpec, **values: ParamValue) -> tuple[str, ...]:
    return cli_argv(s, Invocation(s.name, MappingProxyType(dict(values))))


HOST = ParamSpec("host", required=True, position=0, argv=ArgvSlot())
MORE = ParamSpec("more", multiple=True, position=1, argv=ArgvSlot())
COUNT = ParamSpec("count", ParamType.INT, argv=ArgvSlot("--count"))
SHORT = ParamSpec("xval", argv=ArgvSlot("-x", separate=True))
FORCE = ParamSpec("force", ParamType.SWITCH, argv=ArgvSlot("--force", form=ArgForm.FLAG))
COLOR = ParamSpec(
    "color", ParamType.BOOL, argv=ArgvSlot("--color", form=ArgForm.PAIR, off="--no-color")
)
VERBOSE = ParamSpec("verbose", ParamType.INT, argv=ArgvSlot("-v", form=ArgForm.COUNT))
TAG = ParamSpec("tag", multiple=True, argv=ArgvSlot("--tag", form=ArgForm.APPEND))
HOSTS = ParamSpec("hosts", multiple=True, argv=ArgvSlot("--hosts"))
PAIR = ParamSpec("pair", ParamType.INT, multiple=True, argv=ArgvSlot("--pair", nargs=2))


def test_positionals_then_options_each_as_one_word() -> None:
    s = spec(HOST, MORE, COUNT, SHORT, FORCE, COLOR, VERBOSE, TAG, HOSTS)
    got = argv(
        s,
        host="web 1",
        more=("a", "$(id)"),
        count=3,
        xval="-y",
        force=True,
        color=False,
        verbose=2,
        tag=("x", "-z"),
        hosts=("h1", "h2"),
    )
    assert got == (
        "web 1",
        "a",
        "$(id)",
        "--count=3",
        "-x",
        "-y",
        "--force",
        "--no-color",
        "-v",
        "-v",
        "--tag=x",
        "--tag=-z",
        "--hosts",
        "h1",
        "h2",
    )
    assert argv(s, host="h", force=False, color=True, verbose=0) == ("h", "--color")


def test_a_positional_starting_with_a_dash_goes_after_the_options_and_dashdash() -> None:
    s = spec(HOST, MORE, COUNT)
    assert argv(s, host="-web", more=("x", "-5"), count=-1) == (
        "--count=-1",
        "--",
        "-web",
        "x",
        "-5",
    )
    assert argv(s, host="-") == ("-",)  # a lone dash is stdin to argparse, not an option


def test_sub_command_words_split_the_options_of_each_parser() -> None:
    verbose = ParamSpec("verbose", ParamType.SWITCH, argv=ArgvSlot("-v", form=ArgForm.FLAG))
    name = ParamSpec("name", required=True, position=0, argv=ArgvSlot(stage=2))
    size = ParamSpec("size", ParamType.INT, argv=ArgvSlot("--size", stage=2))
    s = spec(verbose, name, size, words=("keys", "rotate"))
    assert argv(s, verbose=True, name="k1", size=4) == ("-v", "keys", "rotate", "k1", "--size=4")
    assert argv(s, name="-k") == ("keys", "rotate", "--", "-k")
    top = ParamSpec("zone", position=0, argv=ArgvSlot(stage=0))
    with pytest.raises(RefusedError, match="before the sub-command may not start with '-'"):
        argv(spec(top, words=("go",)), zone="-eu")


def test_values_that_cannot_reach_the_parser_unchanged_are_refused() -> None:
    with pytest.raises(RefusedError, match="exactly '--'"):
        argv(spec(HOST), host="--")
    with pytest.raises(RefusedError, match="exactly '--'"):
        argv(spec(HOST, TAG), host="h", tag=("a", "--"))
    with pytest.raises(RefusedError, match="takes exactly 2 values, 3 given"):
        argv(spec(PAIR), pair=(1, 2, 3))
    assert argv(spec(PAIR), pair=(1, -2)) == ("--pair", "1", "-2")  # a negative number is a value
    with pytest.raises(RefusedError, match=r"'-b' starts with '-'"):
        argv(spec(HOSTS), hosts=("a", "-b"))
    assert argv(spec(HOSTS), hosts=("-b",)) == ("--hosts=-b",)


def test_positionals_are_read_in_order_so_a_gap_needs_a_default() -> None:
    first = ParamSpec("first", position=0, argv=ArgvSlot())
    second = ParamSpec("second", position=1, argv=ArgvSlot())
    with pytest.raises(RefusedError, match="second is given but first is not"):
        argv(spec(first, second), second="b")
    with_default = ParamSpec("first", position=0, default="a", argv=ArgvSlot())
    assert argv(spec(with_default, second), second="b") == ("a", "b")


def test_a_parameter_a_sidecar_added_goes_as_an_option_named_like_it() -> None:
    added = ParamSpec("log_level")
    assert argv(spec(HOST, added), host="h", log_level="debug") == ("h", "--log-level=debug")


def test_build_launch_runs_the_script_itself_never_the_bootstrap() -> None:
    s = spec(HOST, COUNT)
    got = build_launch(
        s,
        Invocation(s.name, MappingProxyType({"host": "-h", "count": 2})),
        catalog_root=ROOT,
        job_id=3,
        requester="local:alice",
        room="local:r",
        settings=RunnerSettings(python="/usr/bin/python3"),
        base_env={"PATH": "/usr/bin"},
        workdir=Path("/tmp/w"),
    )
    assert got.argv == ("/usr/bin/python3", "/srv/catalog/ops/tool.py", "--count=2", "--", "-h")
    assert str(PYTHON_BOOTSTRAP) not in got.argv
    pep723 = build_launch(
        s,
        Invocation(s.name, MappingProxyType({"host": "h"})),
        catalog_root=ROOT,
        job_id=3,
        requester="local:alice",
        room="local:r",
        settings=RunnerSettings(),
        base_env={},
        workdir=Path("/tmp/w"),
        python="/cache/envs/abc/bin/python",
    )
    assert pep723.argv == ("/cache/envs/abc/bin/python", "/srv/catalog/ops/tool.py", "h")


# -------------------------------------------------- real parsers get the values back

ARGPARSE_SCRIPT = textwrap.dedent(
    """\
    '''Probe.'''
    import argparse

    def build():
        p = argparse.ArgumentParser()
        p.add_argument("host")
        p.add_argument("rest", nargs="*")
        p.add_argument("--name", "-n")
        p.add_argument("-s", dest="short")
        p.add_argument("--count", type=int)
        p.add_argument("--ratio", type=float)
        p.add_argument("--tag", action="append")
        p.add_argument("--hosts", nargs="+")
        p.add_argument("--pair", nargs=2)
        p.add_argument("--force", action="store_true")
        p.add_argument("--no-cache", dest="cache", action="store_false")
        p.add_argument("-v", "--verbose", action="count", default=0)
        p.add_argument("--color", action=argparse.BooleanOptionalAction)
        return p

    build().parse_args()
    """
)


def _real_argparse() -> argparse.ArgumentParser:
    namespace: dict[str, Any] = {}
    exec(ARGPARSE_SCRIPT.replace("build().parse_args()", ""), namespace)  # noqa: S102 - test's own text
    parser: argparse.ArgumentParser = namespace["build"]()
    parser.exit_on_error = False
    return parser


_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", blacklist_characters="\x00"),
    max_size=8,
).filter(lambda t: t != "--")
_DASHY = st.one_of(_TEXT, _TEXT.map(lambda t: "-" + t), _TEXT.map(lambda t: "--" + t)).filter(
    lambda t: t != "--"
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    host=_DASHY,
    rest=st.lists(_DASHY, max_size=3),
    name=st.none() | _DASHY,
    short=st.none() | _DASHY,
    count=st.none() | st.integers(-1000, 1000),
    ratio=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    tag=st.lists(_DASHY, max_size=3),
    hosts=st.lists(_TEXT.filter(lambda t: not t.startswith("-")), max_size=3),
    pair=st.none() | st.tuples(_TEXT, _TEXT).filter(lambda p: not any(x[:1] == "-" for x in p)),
    force=st.booleans(),
    no_cache=st.booleans(),
    verbose=st.integers(0, 4),
    color=st.none() | st.booleans(),
)
def test_argparse_gets_back_exactly_the_values_sent(**v: Any) -> None:
    parsed = parse_python(ARGPARSE_SCRIPT)
    s = spec(*parsed.params)
    values: dict[str, ParamValue] = {"host": v["host"]}
    if v["rest"]:
        values["rest"] = tuple(v["rest"])
    for key in ("name", "short", "count", "ratio", "color"):
        if v[key] is not None:
            values[key] = v[key]
    if v["tag"]:
        values["tag"] = tuple(v["tag"])
    if v["hosts"]:
        values["hosts"] = tuple(v["hosts"])
    if v["pair"]:
        values["pair"] = tuple(v["pair"])
    values["force"] = v["force"]
    values["no-cache"] = v["no_cache"]
    values["verbose"] = v["verbose"]
    words = argv(s, **values)
    got = vars(_real_argparse().parse_args(list(words)))
    assert got == {
        "host": v["host"],
        "rest": v["rest"],
        "name": v["name"],
        "short": v["short"],
        "count": v["count"],
        "ratio": v["ratio"],
        "tag": v["tag"] or None,
        "hosts": v["hosts"] or None,
        "pair": list(v["pair"]) if v["pair"] else None,
        "force": v["force"],
        "cache": not v["no_cache"],
        "verbose": v["verbose"],
        "color": v["color"],
    }, words


CLICK_SCRIPT = textwrap.dedent(
    """\
    '''Probe.'''
    import click

    @click.command()
    @click.argument("names", nargs=-1)
    @click.option("--label", "-l")
    @click.option("-x", "xval")
    @click.option("--count", type=int)
    @click.option("--tag", multiple=True)
    @click.option("--point", nargs=2)
    @click.option("--shout/--no-shout", default=None)
    @click.option("-v", "--verbose", count=True)
    def main(names, label, xval, count, tag, point, shout, verbose):
        pass

    main()
    """
)


@click.command()
@click.argument("names", nargs=-1)
@click.option("--label", "-l")
@click.option("-x", "xval")
@click.option("--count", type=int)
@click.option("--tag", multiple=True)
@click.option("--point", nargs=2)
@click.option("--shout/--no-shout", default=None)
@click.option("-v", "--verbose", count=True)
def _probe(**kwargs: Any) -> dict[str, Any]:
    return kwargs


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    names=st.lists(_DASHY, max_size=3),
    label=st.none() | _DASHY,
    xval=st.none() | _DASHY,
    count=st.none() | st.integers(-50, 50),
    tag=st.lists(_DASHY, max_size=3),
    point=st.none() | st.tuples(_DASHY, _DASHY),
    shout=st.none() | st.booleans(),
    verbose=st.integers(0, 3),
)
def test_click_gets_back_exactly_the_values_sent(**v: Any) -> None:
    parsed = parse_python(CLICK_SCRIPT)
    s = spec(*parsed.params)
    values: dict[str, ParamValue] = {"verbose": v["verbose"]}
    for key in ("label", "xval", "count", "shout"):
        if v[key] is not None:
            values[key] = v[key]
    for key in ("names", "tag", "point"):
        if v[key]:
            values[key] = tuple(v[key])
    words = argv(s, **values)
    got = _probe.main(list(words), standalone_mode=False)
    assert got == {
        "names": tuple(v["names"]),
        "label": v["label"],
        "xval": v["xval"],
        "count": v["count"],
        "tag": tuple(v["tag"]),
        "point": tuple(v["point"]) if v["point"] else None,
        "shout": v["shout"],
        "verbose": v["verbose"],
    }, words
