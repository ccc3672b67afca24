"""`opsroom config check`: validate the configuration and print the effective values."""

from __future__ import annotations

import click

from opsroom.cli.common import check_adapters_or_exit, load_settings_or_exit


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
    """Validate opsroom.toml and OPSROOM_* overrides; print the effective configuration.

    Every [adapters.*] table is checked by its platform's own settings. Every problem is
    listed, each with its key path, and the exit code is 2; secrets stay references.
    """
    from opsroom.app import job_isolation
    from opsroom.config import dump_settings

    settings = load_settings_or_exit(config_path)
    check_adapters_or_exit(settings)  # a platform whose extra is missing: one line, exit 2
    click.echo(dump_settings(settings))
    # On stderr: stdout stays the configuration, as JSON for tools.
    for line in job_isolation(settings):
        click.echo(line, err=True)
