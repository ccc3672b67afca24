"""`opsroom worker` (run the jobs of one queue here) and `opsroom workers` (list them), SPEC §8."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from typing import Any

import click

from opsroom.cli.common import engine_options, load_settings_or_exit, open_app

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")


def _checked(value: str, what: str) -> str:
    if not _NAME.match(value):
        raise click.BadParameter(
            f"{value[:60]!r}: a {what} is letters, digits and . _ : - (at most 200)"
        )
    return value


@click.command()
@engine_options
@click.option("--queue", "queue", required=True, metavar="NAME", help="The queue to serve.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1000),
    default=1,
    show_default=True,
    help="Jobs this worker runs at once.",
)
@click.option("--name", "name", metavar="ID", help="This worker's name (default: HOST-PID).")
def worker(
    config_path: str | None,
    catalog_dir: str | None,
    store_url: str | None,
    queue: str,
    concurrency: int,
    name: str | None,
) -> None:
    """Run the jobs of commands whose runs_on is QUEUE, on this host.

    Needs a PostgreSQL store and this host's copy of the catalog. The first SIGTERM or
    Ctrl-C stops taking jobs and lets running ones finish; a second one cancels them.
    """
    from opsroom.web.logs import setup_logging
    from opsroom.worker.runtime import WorkerOptions

    _checked(queue, "queue name")
    if name is not None:
        _checked(name, "worker name")
    settings = load_settings_or_exit(config_path)
    setup_logging()
    options = WorkerOptions(queue=queue, concurrency=concurrency, name=name or "")
    sys.exit(asyncio.run(_work(settings, catalog_dir, store_url, options)))


async def _work(settings: Any, catalog_dir: str | None, store_url: str | None, options: Any) -> int:
    from opsroom.engine.loop import on_stop_signals
    from opsroom.errors import StoreError
    from opsroom.store.tasks import not_shared, workers_can_share
    from opsroom.worker.runtime import WorkerRuntime

    url = store_url or settings.store.url
    if not workers_can_share(url):  # said before anything is opened or created
        click.echo(f"opsroom: {not_shared(url)}", err=True)
        return 2
    app = await open_app(None, catalog_dir, store_url, settings=settings)
    runtime = WorkerRuntime(app, options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            runtime.cancel_running(f"opsroom worker {runtime.name} (stopped)")
        stop.set()

    undo = on_stop_signals(loop, on_signal)  # Ctrl+C and Ctrl+Break on Windows
    try:
        return await runtime.run(stop, echo=lambda line: click.echo(line))
    except StoreError as e:
        click.echo(f"opsroom: {e}", err=True)
        return 2
    finally:
        undo()
        await app.close()


@click.command()
@engine_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.option("--all", "show_all", is_flag=True, help="Also workers that stopped.")
def workers(
    config_path: str | None,
    catalog_dir: str | None,
    store_url: str | None,
    as_json: bool,
    show_all: bool,
) -> None:
    """List workers: name, queue, host, OS, version, catalog, last heartbeat, running jobs."""
    from opsroom.render.text import render_table

    found = asyncio.run(_list(config_path, catalog_dir, store_url, show_all))
    if as_json:
        click.echo(json.dumps([_as_dict(w) for w in found], ensure_ascii=False))
        return
    if not found:
        click.echo("No workers have registered with this store.")
        return
    header = ("name", "queue", "state", "host", "os", "version", "catalog", "heartbeat", "jobs")
    for line in render_table(header, [_row(w) for w in found]):
        click.echo(line)


async def _list(
    config_path: str | None, catalog_dir: str | None, store_url: str | None, show_all: bool
) -> list[Any]:
    from opsroom.errors import StoreError

    app = await open_app(config_path, catalog_dir, store_url)
    try:
        # Listed as they are now: a worker silent too long is lost, and its jobs interrupted.
        lost_after = app.settings.workers.lost_after
        await app.store.interrupt_lost_workers(lost_after=lost_after)
        found: list[Any] = await app.store.list_workers(stopped=show_all)
        return found
    except StoreError as e:
        click.echo(f"opsroom: {e}", err=True)
        sys.exit(2)
    finally:
        await app.close()


def _row(w: Any) -> tuple[str, ...]:
    return (
        w.name,
        w.queue,
        w.state,
        w.host,
        w.os,
        w.version,
        (w.catalog_commit or "-")[:12],
        w.last_heartbeat.strftime("%Y-%m-%d %H:%M:%S"),
        ", ".join(str(j) for j in w.running_jobs) or "-",
    )


def _as_dict(w: Any) -> dict[str, Any]:
    return {
        "name": w.name,
        "queue": w.queue,
        "state": w.state,
        "host": w.host,
        "os": w.os,
        "version": w.version,
        "catalog_commit": w.catalog_commit,
        "started_at": w.started_at.isoformat(),
        "last_heartbeat": w.last_heartbeat.isoformat(),
        "running_jobs": list(w.running_jobs),
    }
