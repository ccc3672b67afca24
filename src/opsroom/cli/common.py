"""Options and helpers shared by the CLI commands that open the engine."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def engine_options(func: F) -> F:
    """Add `--config`, `--catalog` and `--store` to a command."""
    store = click.option(
        "--store",
        "store_url",
        metavar="URL",
        help="Store URL for this call (default from config: sqlite:///opsroom.db).",
    )
    catalog = click.option(
        "--catalog",
        "catalog_dir",
        metavar="DIR",
        help="Catalog folder for this call (default from config, else the examples).",
    )
    config = click.option(
        "--config",
        "config_path",
        metavar="FILE",
        envvar="OPSROOM_CONFIG",
        help="Config file (default ./opsroom.toml).",
    )
    return config(catalog(store(func)))


def load_settings_or_exit(config_path: str | None) -> Any:
    """Settings, or a clear message and exit code 2."""
    from opsroom.config import load_settings
    from opsroom.errors import ConfigError

    try:
        return load_settings(config_path)
    except ConfigError as e:
        click.echo(f"opsroom: configuration error: {e}", err=True)
        sys.exit(2)


def check_adapters_or_exit(settings: Any) -> None:
    """Every `[adapters.<name>]` can run on this host, or one clear line and exit code 2."""
    from opsroom.engine.adapters import check_adapters
    from opsroom.errors import ConfigError, MissingExtra

    try:
        check_adapters(settings)
    except MissingExtra as e:
        click.echo(f"opsroom: {e}", err=True)  # "install opsroom[slack] to use [adapters.slack]"
        sys.exit(2)
    except ConfigError as e:
        click.echo(f"opsroom: configuration error: {e}", err=True)
        sys.exit(2)


def local_principal() -> str:
    """`local:<user>` for whoever runs the CLI."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"local:{user}"


async def open_app(
    config_path: str | None,
    catalog_dir: str | None,
    store_url: str | None,
    *,
    settings: Any = None,
) -> Any:
    """Open the engine (on `settings` when given, else the config's) or exit 2 clearly."""
    from opsroom.app import App
    from opsroom.errors import CatalogError, StoreError

    if settings is None:
        settings = load_settings_or_exit(config_path)
    try:
        return await App.open(settings, catalog_dir=catalog_dir, store_url=store_url)
    except (CatalogError, StoreError) as e:
        click.echo(f"opsroom: {e}", err=True)
        sys.exit(2)


def interrupted_reply(job: Any) -> Any:
    """The one-time notice that a job of yours was interrupted."""
    from opsroom.model.blocks import Reply, Status

    return Reply(
        (
            Status(
                f"job {job.id} {job.command} was interrupted: the opsroom process running it "
                "stopped. It was not re-run; its leftover processes were ended.",
                "warning",
            ),
        ),
        job_id=job.id,
        kind="notice",
    )
