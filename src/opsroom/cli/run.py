"""`opsroom run`: one chat message through the whole pipeline (SPEC §7.2)."""

from __future__ import annotations

import asyncio
import json
import sys

import click

from opsroom.cli.common import engine_options, interrupted_reply, local_principal, open_app


@click.command()
@click.option(
    "--as",
    "principal",
    metavar="PRINCIPAL",
    help="Who is asking, e.g. local:bob or slack:U024BE7LH (default local:$USER).",
)
@click.option(
    "--room",
    default="local:cli",
    show_default=True,
    metavar="ROOM",
    help="The room the message is said in.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per reply, then a summary line."
)
@click.option(
    "--no-wait",
    is_flag=True,
    help="Queue the job and return at once; a running `opsroom serve` runs it.",
)
@engine_options
@click.argument("text")
def run(
    principal: str | None,
    room: str,
    as_json: bool,
    no_wait: bool,
    config_path: str | None,
    catalog_dir: str | None,
    store_url: str | None,
    text: str,
) -> None:
    """Send TEXT (e.g. "!store status 42") as one chat message and wait for the job.

    With --no-wait the job is queued and the command returns at once (exit 0); a running
    `opsroom serve` sharing the store starts it.

    Exit codes: 0 accepted and succeeded (or awaiting approval, or queued), 1 ran and failed
    (also timed out or cancelled), 2 refused (parse error, unknown command, permission,
    validation).
    """
    who = principal or local_principal()
    code = asyncio.run(
        _run(who, room, as_json, config_path, catalog_dir, store_url, text, wait=not no_wait)
    )
    sys.exit(code)


async def _run(
    principal: str,
    room: str,
    as_json: bool,
    config_path: str | None,
    catalog_dir: str | None,
    store_url: str | None,
    text: str,
    *,
    wait: bool = True,
) -> int:
    from opsroom.model.blocks import Reply
    from opsroom.model.messages import Inbound
    from opsroom.render.text import render_reply, reply_to_dict

    app = await open_app(config_path, catalog_dir, store_url)
    try:

        async def send(reply: Reply) -> None:
            if as_json:
                click.echo(json.dumps(reply_to_dict(reply), ensure_ascii=False))
            else:
                click.echo(render_reply(reply), err=reply.kind == "error")

        for job in await app.interrupted_notices(principal):
            await send(interrupted_reply(job))
        outcome = await app.dispatcher.handle(
            Inbound(
                text=text,
                principal=principal,
                room=room,
                direct=True,
                interactive=False,
                wait=wait,
            ),
            send,
        )
    finally:
        await app.close()
    if as_json:
        click.echo(json.dumps(outcome.to_dict(), ensure_ascii=False))
    code: int = outcome.cli_exit_code
    return code
