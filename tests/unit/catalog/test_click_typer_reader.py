"""click and typer commands read statically from decorators and signatures (SPEC §3.10)."""

from __future__ import annotations

import textwrap

from opsroom.catalog.parsers.base import ParsedScript
from opsroom.catalog.parsers.python import parse_python
from opsroom.model.catalog import Severity
from opsroom.model.commands import ArgForm, ArgvSlot, ParamSpec, ParamType


def read(source: str) -> ParsedScript:
    return parse_python(textwrap.dedent(source))


def param(params: tuple[ParamSpec, ...], name: str) -> ParamSpec:
    found = [p for p in params if p.name == name]
    assert found, f"no parameter {name!r} in {[p.name for p in params]}"
    return found[0]


CLICK_COMMAND = """\
    import click

    ENVS = ["dev", "prod"]

    @click.command()
    @click.argument("hosts", nargs=-1, required=True)
    @click.option("--count", "-c", type=click.IntRange(1, 5), default=2, help="How many.")
    @click.option("--env", type=click.Choice(ENVS), default="dev")
    @click.option("--ratio", default=0.5)
    @click.option("--tag", multiple=True)
    @click.option("--point", nargs=2, type=int)
    @click.option("-v", "--verbose", count=True)
    @click.option("--force", is_flag=True, help="No questions.")
    @click.option("--color/--no-color", default=True)
    @click.option("-s", "shout", is_flag=True)
    @click.option("-x", "xval")
    @click.option("--password", prompt=True, hide_input=True)
    @click.version_option("1.0")
    def deploy(hosts, count, env, ratio, tag, point, verbose, force, color, shout, xval, password):
        '''Deploy to hosts.

        Rolls out one host at a time.
        \\f
        Internal notes, not for --help.
        '''

    if __name__ == "__main__":
        deploy()
    """


def test_click_command_every_form() -> None:
    parsed = read(CLICK_COMMAND)
    assert parsed.read_as == "click"
    assert (parsed.summary, parsed.description) == (
        "Deploy to hosts.",
        "Rolls out one host at a time.",
    )
    params = parsed.params
    assert [p.name for p in params] == [
        "hosts",
        "count",
        "env",
        "ratio",
        "tag",
        "point",
        "verbose",
        "force",
        "color",
        "shout",
        "xval",
        "password",
    ]
    hosts = param(params, "hosts")
    assert (hosts.multiple, hosts.required, hosts.position, hosts.argv) == (
        True,
        True,
        0,
        ArgvSlot(),
    )
    count = param(params, "count")
    assert (count.type, count.range, count.default, count.aliases, count.help) == (
        ParamType.INT,
        (1.0, 5.0),
        2,
        ("c",),
        "How many.",
    )
    assert param(params, "env").choices == ("dev", "prod")
    assert param(params, "ratio").type is ParamType.FLOAT  # inferred from the default
    tag = param(params, "tag")
    assert (tag.multiple, tag.argv) == (True, ArgvSlot("--tag", form=ArgForm.APPEND))
    point = param(params, "point")
    assert (point.multiple, point.type, point.argv) == (
        True,
        ParamType.INT,
        ArgvSlot("--point", separate=True, nargs=2),
    )
    assert param(params, "verbose").argv == ArgvSlot("--verbose", form=ArgForm.COUNT)
    assert param(params, "force").argv == ArgvSlot("--force", form=ArgForm.FLAG)
    color = param(params, "color")
    assert (color.type, color.default, color.argv) == (
        ParamType.BOOL,
        True,
        ArgvSlot("--color", form=ArgForm.PAIR, off="--no-color"),
    )
    shout = param(params, "shout")
    assert (shout.aliases, shout.argv) == (("s",), ArgvSlot("-s", form=ArgForm.FLAG))
    assert param(params, "xval").argv == ArgvSlot("-x", separate=True)
    # no terminal in a job: what click would prompt for must come from chat
    assert param(params, "password").required


def test_click_group_gives_one_command_per_sub_command() -> None:
    parsed = read(
        """\
        '''Manage users.'''
        import click

        @click.group()
        @click.option("--debug/--no-debug")
        def cli(debug):
            pass

        @cli.command()
        @click.argument("name")
        def add_user_cmd(name):
            '''Add a user.'''

        @cli.group()
        def keys():
            '''Key commands.'''

        @keys.command("rotate")
        @click.option("--size", type=int, default=4096)
        def rotate_keys(size):
            '''Rotate keys.'''

        @click.command()
        def purge():
            '''Purge.'''

        cli.add_command(purge, name="purge-all")

        if __name__ == "__main__":
            cli(obj={})
        """
    )
    assert parsed.read_as == "click"
    assert parsed.params == ()
    subs = {s.chat_words: s for s in parsed.subcommands}
    assert list(subs) == [("add-user",), ("keys", "rotate"), ("purge-all",)]
    add = subs[("add-user",)]
    assert (add.words, add.summary) == (("add-user",), "Add a user.")
    assert [(p.name, p.argv.stage if p.argv else None) for p in add.params] == [
        ("debug", 0),
        ("name", 1),
    ]
    rotate = subs[("keys", "rotate")]
    assert [(p.name, p.argv.stage if p.argv else None) for p in rotate.params] == [
        ("debug", 0),
        ("size", 2),
    ]


def test_a_click_command_nothing_calls_is_an_error() -> None:
    parsed = read(
        """\
        '''x'''
        import click

        @click.command()
        @click.option("--a")
        def cli(a):
            pass
        """
    )
    assert [p.message for p in parsed.problems if p.severity is Severity.ERROR] == [
        "the click parser is never run by the script's own top-level code "
        '(call it under `if __name__ == "__main__":`): running it would do nothing'
    ]


def test_click_echo_alone_does_not_make_a_click_command() -> None:
    parsed = read(
        """\
        '''x'''
        import argparse, click
        p = argparse.ArgumentParser()
        p.add_argument("--a")
        click.echo(p.parse_args())
        """
    )
    assert (parsed.read_as, [p.name for p in parsed.params]) == ("argparse", ["a"])


def test_typer_run_reads_the_signature() -> None:
    parsed = read(
        """\
        '''Greet.'''
        from enum import Enum
        from pathlib import Path
        from typing import Annotated, List, Optional
        import typer

        class Color(str, Enum):
            red = "red"
            blue = "blue"

        def main(
            name: str,
            files: List[Path] = typer.Argument(None),
            color: Color = Color.red,
            times: Annotated[int, typer.Option("--times", "-t", min=1, max=3, help="Times.")] = 1,
            formal: bool = False,
            loud: Annotated[bool, typer.Option("--loud")] = False,
            tags: Annotated[Optional[List[str]], typer.Option()] = None,
            note: str = typer.Option(..., help="Required note."),
            verbose: int = typer.Option(0, "-v", count=True),
            ctx: typer.Context = None,
        ):
            '''Say hello.'''

        if __name__ == "__main__":
            typer.run(main)
        """
    )
    assert parsed.read_as == "typer"
    assert parsed.summary == "Greet."
    params = parsed.params
    assert [p.name for p in params] == [
        "name",
        "files",
        "color",
        "times",
        "formal",
        "loud",
        "tags",
        "note",
        "verbose",
    ]
    assert param(params, "name").required
    assert param(params, "name").position == 0
    files = param(params, "files")
    assert (files.multiple, files.required, files.position) == (True, False, 1)
    color = param(params, "color")
    assert (color.choices, color.default) == (("red", "blue"), "red")
    times = param(params, "times")
    assert (times.type, times.range, times.aliases, times.help) == (
        ParamType.INT,
        (1.0, 3.0),
        ("t",),
        "Times.",
    )
    formal = param(params, "formal")
    assert (formal.type, formal.argv) == (
        ParamType.SWITCH,
        ArgvSlot("--formal", form=ArgForm.PAIR, off="--no-formal"),
    )
    assert param(params, "loud").argv == ArgvSlot("--loud", form=ArgForm.FLAG)
    assert param(params, "tags").argv == ArgvSlot("--tags", form=ArgForm.APPEND)
    assert param(params, "note").required
    assert param(params, "verbose").argv == ArgvSlot("-v", form=ArgForm.COUNT)


def test_typer_app_one_command_runs_without_its_name_several_need_it() -> None:
    single = read(
        """\
        '''x'''
        import typer
        app = typer.Typer()

        @app.command()
        def only(host: str):
            pass

        if __name__ == "__main__":
            app()
        """
    )
    assert ([p.name for p in single.params], single.subcommands) == (["host"], ())
    several = read(
        """\
        '''x'''
        import typer
        app = typer.Typer()
        users = typer.Typer()
        app.add_typer(users, name="users")

        @app.callback()
        def main(region: str = "eu"):
            '''Top.'''

        @app.command("sync-all")
        def sync():
            '''Sync.'''

        @users.command()
        def create_user(name: str):
            '''Create.'''

        app()
        """
    )
    subs = {s.chat_words: s for s in several.subcommands}
    assert list(subs) == [("sync-all",), ("users", "create-user")]
    create = subs[("users", "create-user")]
    assert create.words == ("users", "create-user")
    assert [(p.name, p.argv.stage if p.argv else None) for p in create.params] == [
        ("region", 0),
        ("name", 2),
    ]


def test_typer_command_registered_by_a_call_not_a_decorator() -> None:
    parsed = read(
        """\
        '''x'''
        import typer
        app = typer.Typer()

        def hello(name: str, count: int = 1):
            pass

        app.command()(hello)

        if __name__ == "__main__":
            app()
        """
    )
    assert [(p.name, p.type_label, p.required) for p in parsed.params] == [
        ("name", "string", True),
        ("count", "int", False),
    ]
