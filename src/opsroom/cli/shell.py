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
    """Read lines here (readline, Ctrl-C), hand them to the terminal adapter's bridge."""
    from opsroom.adapters.terminal import TerminalAdapter
    from opsroom.cli.common import interrupted_reply
    from opsroom.engine.bridge import Bridge

    adapter = TerminalAdapter(principal=who, room=room, output=sys.stdout)
    bridge = Bridge(adapter, app.dispatcher)  # type: ignore[attr-defined]
    runner.run(adapter.connect())
    interactive = sys.stdin.isatty()
    if interactive:
        _readline_setup()
        count = len(app.catalog.commands)  # type: ignore[attr-defined]
        commands = "1 command" if count == 1 else f"{count} commands"
        click.echo(f"opsroom shell — {commands}. You are {who} in {room}.")
        click.echo("Type `help` to list commands, Ctrl-D to leave.")

    async def notices() -> None:
        send = bridge.sender(room, None)
        for job in await app.interrupted_notices(who):  # type: ignore[attr-defined]
            await send(interrupted_reply(job))

    runner.run(notices())
    # input() runs outside the event loop so readline and Ctrl-C at the prompt behave as
    # in any shell; each line is handled to its end before the next prompt.
    while True:
        try:
            line = input("opsroom> " if interactive else "")
        except EOFError:
            if interactive:
                click.echo()
            break
        except KeyboardInterrupt:
            click.echo()
            continue
        if line.strip() in ("exit", "quit"):
            break
        event = adapter.receive(line)
        if event is None:
            continue
        try:
            runner.run(bridge.handle(event))
        except KeyboardInterrupt:
            click.echo("^C — stopped.")
    runner.run(adapter.close())
