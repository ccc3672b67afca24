"""`opsroom user add`: local web accounts beyond the first admin."""

from __future__ import annotations

import asyncio
import sys

import click

from opsroom.cli.common import load_settings_or_exit


@click.group()
def user() -> None:
    """Manage local accounts of the web console and web chat."""


@user.command()
@click.argument("name")
@click.option("--admin", is_flag=True, help="Make the account an opsroom administrator.")
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    envvar="OPSROOM_CONFIG",
    help="Config file (default ./opsroom.toml).",
)
@click.option("--store", "store_url", metavar="URL", help="Store URL for this call.")
def add(name: str, admin: bool, config_path: str | None, store_url: str | None) -> None:
    """Create account NAME (or give it a new password) and print the password once.

    The person logs in as NAME; their principal is web:NAME (use it in [[roles]]).
    """
    from opsroom.web.auth import USERNAME

    username = name.strip().lower()
    if not USERNAME.match(username):
        raise click.BadParameter(
            "letters, digits, '.', '_' or '-', starting with a letter or digit", param_hint="NAME"
        )
    password = asyncio.run(_add(username, admin, config_path, store_url))
    click.echo(f'The web account "{username}" has the password: {password}')
    click.echo("It is shown only this once; only a salted hash is stored.")


async def _add(username: str, admin: bool, config_path: str | None, store_url: str | None) -> str:
    from opsroom.errors import ConfigError, StoreError
    from opsroom.store import Store
    from opsroom.web.passwords import hash_password, new_password

    settings = load_settings_or_exit(config_path)
    try:
        if store_url:
            store = await Store.open(store_url)
        else:
            password = settings.store.password_value()
            store = await Store.open(settings.store.url, password=password)
    except ConfigError as e:
        click.echo(f"opsroom: cannot open the store: [store] password {e}", err=True)
        sys.exit(2)
    except StoreError as e:
        click.echo(f"opsroom: {e}", err=True)
        sys.exit(2)
    try:
        password = new_password()
        await store.put_web_user(username, password_hash=hash_password(password), admin=admin)
    finally:
        await store.close()
    return password
