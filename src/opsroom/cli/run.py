"""`opsroom run`: one chat message through the whole pipeline (SPEC §7.2).

What a script printed never reaches the terminal as control sequences: text is passed
through `render.text.for_terminal`, and `--json` escapes every control character, whether
or not the output is a terminal (it may be a log that someone later reads with `cat`).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from typing import Any

import click

from opsroom.cli.common import engine_options, interrupted_reply, local_principal, open_app

# JSON escapes C0 controls but leaves DEL and the C1 controls raw, and 0x9b is a CSI.
_RAW_CONTROLS = re.compile("[\x7f-\x9f]")


def json_line(data: Any) -> str:
    """`data` as one line of JSON with no raw control character in it."""
    text = json.dumps(data, ensure_ascii=False)
    return _RAW_CONTROLS.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


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
    from opsroom.render.text import for_terminal, render_reply, reply_to_dict

    app = await open_app(config_path, catalog_dir, store_url)
    try:

        async def send(reply: Reply) -> None:
            if as_json:
                click.echo(json_line(reply_to_dict(reply)))
            else:
                click.echo(for_terminal(render_reply(reply)), err=reply.kind == "error")

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
        click.echo(json_line(outcome.to_dict()))
    code: int = outcome.cli_exit_code
    return code
