"""`opsroom serve`: the web console, web chat and every configured adapter (SPEC §7.2)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import click

from opsroom.cli.common import (
    check_adapters_or_exit,
    engine_options,
    load_settings_or_exit,
    open_app,
)


@click.command()
@engine_options
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="Where the web console listens (default from config: 127.0.0.1:8080).",
)
@click.option(
    "--reset-admin-password",
    is_flag=True,
    help='Give the web account "admin" a new generated password, printed once.',
)
def serve(
    config_path: str | None,
    catalog_dir: str | None,
    store_url: str | None,
    listen: str | None,
    reset_admin_password: bool,
) -> None:
    """Run the bot: web console, web chat and every configured adapter.

    With no config file it starts on embedded defaults: SQLite opsroom.db in this folder,
    the bundled example catalog, http://127.0.0.1:8080. On the first start it creates the
    web account "admin" and prints its password once.
    """
    from opsroom.web.accounts import demo_settings
    from opsroom.web.logs import setup_logging
    from opsroom.web.server import parse_listen

    settings = demo_settings(load_settings_or_exit(config_path))
    # A platform whose extra is missing stops here, before the store is even opened.
    check_adapters_or_exit(settings)
    try:
        where = parse_listen(listen or settings.web.listen)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--listen / [web] listen") from None
    setup_logging()
    sys.exit(asyncio.run(_serve(settings, catalog_dir, store_url, where, reset_admin_password)))


async def _serve(
    settings: Any,
    catalog_dir: str | None,
    store_url: str | None,
    where: object,
    reset_admin_password: bool,
) -> int:
    from opsroom.web.server import Listen, serve

    assert isinstance(where, Listen)
    engine = await open_app(None, catalog_dir, store_url, settings=settings)
    return await serve(
        engine,
        listen=where,
        reset_admin_password=reset_admin_password,
        echo=lambda line: click.echo(line),
    )
