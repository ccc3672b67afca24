"""Shell scripts and programs adopted with a sidecar `argv`: values as command-line options.

The exact argv is asserted here; tests/integration/test_catalog_cli.py runs an adopted
getopts script for real.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import pytest

from opsroom.config import RunnerSettings
from opsroom.errors import RefusedError
from opsroom.model.commands import ArgvStyle, CommandSpec, Invocation, Language, ParamSpec
from opsroom.model.commands import ParamType as T
from opsroom.runner.argv import Launch, build_launch

ROOT = Path("/srv/catalog")
PARAMS = (
    ParamSpec("verbose", T.SWITCH, aliases=("v",)),
    ParamSpec("config_file", aliases=("f",)),
    ParamSpec("tags", multiple=True, aliases=("t",)),
    ParamSpec("count", T.INT, aliases=("c",), default=3),
    ParamSpec("host", required=True, position=0),
    ParamSpec("extra", multiple=True, position=1),
)


def launch(style: ArgvStyle | None, params: dict[str, object], **kw: object) -> Launch:
    spec = CommandSpec(
        name="deploy",
        path="deploy.sh",
        language=kw.pop("language", Language.SHELL),  # type: ignore[arg-type]
        params=kw.pop("spec_params", PARAMS),  # type: ignore[arg-type]
        argv_style=style,
    )
    inv = Invocation("deploy", MappingProxyType(params))  # type: ignore[arg-type]
    return build_launch(
        spec,
        inv,
        catalog_root=ROOT,
        job_id=1,
        requester="local:alice",
        room="local:cli",
        settings=RunnerSettings(bash="/bin/bash"),
        base_env={},
        workdir=Path("/tmp/w"),
    )


VALUES = {
    "verbose": True,
    "config_file": "-x; rm -rf /",
    "tags": ("a b", "$(id)"),
    "host": "web01",
    "extra": ("e1", "e2"),
}


def test_getopts_style() -> None:
    argv = launch(ArgvStyle.GETOPTS, VALUES).argv
    assert argv[1:] == (
        "/srv/catalog/deploy.sh",
        "-v",
        "-f", "-x; rm -rf /",  # an option's value is its own item: still a value
        "-t", "a b",
        "-t", "$(id)",
        "-c", "3",  # the declared default, as OPSROOM_ARG_COUNT gets it
        "web01", "e1", "e2",
    )  # fmt: skip


def test_long_style() -> None:
    argv = launch(ArgvStyle.LONG, VALUES).argv
    assert argv[1:] == (
        "/srv/catalog/deploy.sh",
        "--verbose",
        "--config_file", "-x; rm -rf /",
        "--tags", "a b",
        "--tags", "$(id)",
        "--count", "3",
        "web01", "e1", "e2",
    )  # fmt: skip


def test_a_false_flag_and_missing_values_are_left_out() -> None:
    argv = launch(ArgvStyle.GETOPTS, {"verbose": False, "host": "h"}).argv
    assert argv[2:] == ("-c", "3", "h")


def test_the_environment_still_carries_every_value() -> None:
    env = launch(ArgvStyle.GETOPTS, VALUES).env
    assert env["OPSROOM_ARG_CONFIG_FILE"] == "-x; rm -rf /"
    assert env["OPSROOM_ARG_TAGS"] == "a b\n$(id)"
    assert env["OPSROOM_ARG_VERBOSE"] == "1"


def test_without_argv_nothing_is_added() -> None:
    assert launch(None, VALUES).argv[1:] == ("/srv/catalog/deploy.sh",)


@pytest.mark.parametrize("style", list(ArgvStyle))
def test_a_positional_that_looks_like_an_option_is_refused(style: ArgvStyle) -> None:
    with pytest.raises(RefusedError, match="host: a value for this script may not start with '-'"):
        launch(style, {"host": "-rf"})
    with pytest.raises(RefusedError, match="extra: "):
        launch(style, {"host": "h", "extra": ("ok", "--all")})


def test_executables_take_options_too() -> None:
    argv = launch(ArgvStyle.LONG, {"host": "h", "verbose": True}, language=Language.EXECUTABLE).argv
    assert argv == ("/srv/catalog/deploy.sh", "--verbose", "--count", "3", "h")


def test_a_hand_built_spec_without_a_letter_is_refused() -> None:
    with pytest.raises(RefusedError, match="parameter 'name' has no getopts letter"):
        launch(ArgvStyle.GETOPTS, {"name": "x"}, spec_params=(ParamSpec("name"),))
