"""`opsroom config check`: validate the configuration and print the effective values."""

from __future__ import annotations

import click

from opsroom.cli.common import load_settings_or_exit


@click.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("check")
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    envvar="OPSROOM_CONFIG",
    help="Config file (default ./opsroom.toml).",
)
def check(config_path: str | None) -> None:
    """Validate opsroom.toml (and OPSROOM_* overrides) and print the effective configuration."""
    from opsroom.config import dump_settings

    settings = load_settings_or_exit(config_path)
    click.echo(dump_settings(settings))
