"""The `opsroom` command line. Subcommands are imported only when they are used."""

from __future__ import annotations

import importlib
import os.path
from typing import Any

import click

# name -> (module, attribute, one-line help). Keeping help here lets `opsroom --help`
# answer without importing any room.
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "serve": (
        "opsroom.cli.serve",
        "serve",
        "Run the bot: web console, web chat and every configured adapter.",
    ),
    "shell": ("opsroom.cli.shell", "shell", "A terminal chat with the same engine."),
    "run": ("opsroom.cli.run", "run", "Send one chat message through the whole pipeline."),
    "jobs": ("opsroom.cli.jobs", "jobs", "List jobs, newest first."),
    "catalog": ("opsroom.cli.catalog", "catalog", "Check, list, show and export a catalog."),
    "new": (
        "opsroom.cli.catalog",
        "new",
        "Scaffold a new script with help and a test.",
    ),
    "config": ("opsroom.cli.config", "config", "Check the configuration and print it."),
    "bench": ("opsroom.cli.bench", "bench", "Run the benchmark suite and print its figures."),
    "audit": ("opsroom.cli.audit", "audit", "Verify or export the tamper-evident audit log."),
    "user": ("opsroom.cli.user", "user", "Add local accounts of the web console."),
    "worker": (
        "opsroom.cli.worker",
        "worker",
        "Run the jobs of one queue on this host (PostgreSQL store).",
    ),
    "workers": ("opsroom.cli.worker", "workers", "List workers and what they run."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands live in modules imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """All subcommand names, sorted."""
        return _listed()

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import the module holding `cmd_name` and return its click command."""
        entry = _COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(entry[0])
        command: click.Command = getattr(module, entry[1])
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List subcommands from the static table, without importing them."""
        rows = [(name, _COMMANDS[name][2]) for name in _listed()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _listed() -> list[str]:
    """The subcommands to list: `bench` only in a source checkout (cli/bench.py)."""
    # The same test as cli/bench.py's, without importing it (nor pathlib: --help stays fast).
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    checkout = os.path.isfile(os.path.join(os.path.dirname(src), "bench", "run.py"))
    return sorted(n for n in _COMMANDS if n != "bench" or checkout)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="opsroom", prog_name="opsroom")
def cli() -> None:
    """opsroom: your scripts become typed chat commands.

    Start with `opsroom shell` for a terminal chat on the bundled example catalog
    (or on the catalog named in ./opsroom.toml).
    """
    # Runs before any subcommand (never for --help): the one place the CLI's event loop is
    # chosen, before a command starts it (a selector loop on Windows, for psycopg).
    from opsroom.engine.loop import prepare_event_loop

    prepare_event_loop()


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the console script."""
    from opsroom.errors import MissingExtra

    try:
        return cli.main(args=argv, prog_name="opsroom")
    except MissingExtra as e:
        # A configured feature whose extra is not installed: one line, never a traceback.
        click.echo(f"opsroom: {e}", err=True)
        raise SystemExit(2) from None
