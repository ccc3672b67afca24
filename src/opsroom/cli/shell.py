"""`opsroom shell`: a terminal chat with the same engine (principal `local:$USER`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

import click

from opsroom.cli.common import engine_options, local_principal, open_app

_HISTORY_LENGTH = 1000


def _history_file() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "opsroom" / "shell_history"


@click.command()
@click.option("--as", "principal", metavar="PRINCIPAL", help="Act as another principal.")
@click.option("--room", default="local:shell", show_default=True, metavar="ROOM")
@engine_options
def shell(
    principal: str | None,
    room: str,
    config_path: str | None,
    catalog_dir: str | None,
    store_url: str | None,
) -> None:
    """A terminal chat: type `help`, or a command like `store status 42`.

    The prefix (`!`) is optional here, as in a direct message. Ctrl-C stops a running
    job; Ctrl-D or `exit` leaves.
    """
    who = principal or local_principal()
    with asyncio.Runner() as runner:
        app = runner.run(open_app(config_path, catalog_dir, store_url))
        try:
            _loop(runner, app, who, room)
        finally:
            runner.run(app.close())


def _readline_setup() -> None:
    try:
        import readline
    except ImportError:  # pragma: no cover - Windows without pyreadline
        return
    path = _history_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            readline.read_history_file(path)
    except OSError:
        return
    readline.set_history_length(_HISTORY_LENGTH)
    import atexit

    atexit.register(_save_history, path)


def _save_history(path: Path) -> None:
    import readline

    with contextlib.suppress(OSError):
        readline.write_history_file(path)


def _loop(runner: asyncio.Runner, app: object, who: str, room: str) -> None:
    from opsroom.cli.common import interrupted_reply
    from opsroom.model.blocks import Reply
    from opsroom.model.messages import Inbound
    from opsroom.render.text import render_reply

    dispatcher = app.dispatcher  # type: ignore[attr-defined]
    interactive = sys.stdin.isatty()
    if interactive:
        _readline_setup()
        count = len(app.catalog.commands)  # type: ignore[attr-defined]
        click.echo(f"opsroom shell — {count} commands. You are {who} in {room}.")
        click.echo("Type `help` to list commands, Ctrl-D to leave.")
    for job in runner.run(app.interrupted_notices(who)):  # type: ignore[attr-defined]
        click.echo(render_reply(interrupted_reply(job)))

    async def send(reply: Reply) -> None:
        click.echo(render_reply(reply))

    while True:
        try:
            line = input("opsroom> " if interactive else "")
        except EOFError:
            if interactive:
                click.echo()
            return
        except KeyboardInterrupt:
            click.echo()
            continue
        text = line.strip()
        if not text:
            continue
        if text in ("exit", "quit"):
            return
        try:
            runner.run(
                dispatcher.handle(Inbound(text=text, principal=who, room=room, direct=True), send)
            )
        except KeyboardInterrupt:
            click.echo("^C — stopped.")
