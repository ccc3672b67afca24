"""`opsroom jobs`: recent jobs, newest first."""

from __future__ import annotations

import asyncio
import json

import click

from opsroom.cli.common import engine_options, open_app


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, newest first.")
@click.option("--limit", default=50, show_default=True, help="How many jobs to show.")
@engine_options
def jobs(
    as_json: bool,
    limit: int,
    config_path: str | None,
    catalog_dir: str | None,
    store_url: str | None,
) -> None:
    """List jobs, newest first."""
    asyncio.run(_jobs(as_json, limit, config_path, catalog_dir, store_url))


async def _jobs(
    as_json: bool,
    limit: int,
    config_path: str | None,
    catalog_dir: str | None,
    store_url: str | None,
) -> None:
    from opsroom.render.text import render_table
    from opsroom.router.builtins import format_duration

    app = await open_app(config_path, catalog_dir, store_url)
    try:
        rows = await app.store.list_jobs(limit=limit)
    finally:
        await app.close()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "id": j.id,
                        "command": j.command,
                        "params": dict(j.params),
                        "state": j.state.value,
                        "requester": j.requester,
                        "room": j.room,
                        "created_at": j.created_at.isoformat(),
                        "started_at": j.started_at.isoformat() if j.started_at else None,
                        "finished_at": j.finished_at.isoformat() if j.finished_at else None,
                        "exit_code": j.exit_code,
                        "dry_run": j.dry_run,
                    }
                    for j in rows
                ],
                ensure_ascii=False,
                indent=None,
            )
        )
        return
    if not rows:
        click.echo("No jobs yet.")
        return
    table = [
        (
            str(j.id),
            j.command,
            j.state.value,
            j.requester,
            j.room,
            j.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            format_duration(j.duration),
            "" if j.exit_code is None else str(j.exit_code),
        )
        for j in rows
    ]
    for line in render_table(
        ("job", "command", "state", "requester", "room", "created (UTC)", "took", "exit"), table
    ):
        click.echo(line)
