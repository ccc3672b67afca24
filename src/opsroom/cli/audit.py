"""`opsroom audit verify|export`: check the hash-chained audit log, or take it elsewhere."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from opsroom.audit_export import FIELDS, entry_dict, parse_when, verdict_dict
from opsroom.cli.common import load_settings_or_exit

if TYPE_CHECKING:
    from opsroom.store import Store
    from opsroom.store.audit_chain import AuditVerdict

F = TypeVar("F", bound=Callable[..., Any])


_ANCHOR = re.compile(r"^\s*#?(\d+)\s*:\s*([0-9a-fA-F]{8,64})\s*$")
_HEAD_PREFIX = 12


class _When(click.ParamType[datetime, Any]):
    name = "WHEN"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        """A datetime from the option text; a usage error (exit 2) when it is not one."""
        if isinstance(value, datetime):
            return value
        try:
            return parse_when(str(value), now=datetime.now(UTC))
        except ValueError as e:
            self.fail(str(e), param, ctx)


def parse_anchor(value: str) -> tuple[int, str]:
    """`17:9f2c0a1b...` (an entry id and its hash, or at least 8 hex digits of it)."""
    m = _ANCHOR.match(value)
    if not m:
        raise ValueError(
            f"{value!r} is not an anchor: give ID:HASH as printed by `opsroom audit verify`, "
            "e.g. 17:9f2c0a1b3d4e (at least 8 hex digits)"
        )
    return int(m.group(1)), m.group(2).lower()


class _Anchor(click.ParamType[tuple[int, str], Any]):
    name = "ID:HASH"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, str]:
        """An (id, hash prefix) pair; a usage error (exit 2) otherwise."""
        if isinstance(value, tuple):
            return (int(value[0]), str(value[1]))
        try:
            return parse_anchor(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


def _store_options(func: F) -> F:
    """`--config` and `--store`: the audit log lives in the store; no catalog is needed."""
    store = click.option(
        "--store",
        "store_url",
        metavar="URL",
        help="Store URL for this call (default from config: sqlite:///opsroom.db).",
    )
    config = click.option(
        "--config",
        "config_path",
        metavar="FILE",
        envvar="OPSROOM_CONFIG",
        help="Config file (default ./opsroom.toml).",
    )
    return config(store(func))


@click.group()
def audit() -> None:
    """Verify or export the tamper-evident audit log."""


@audit.command()
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as one JSON object.")
@click.option(
    "--anchor",
    type=_Anchor(),
    metavar="ID:HASH",
    help="An entry id and hash recorded earlier outside the database (from a previous "
    "verify); catches deletion of the last entries, which the chain alone cannot.",
)
@_store_options
def verify(
    as_json: bool,
    anchor: tuple[int, str] | None,
    config_path: str | None,
    store_url: str | None,
) -> None:
    """Recompute the hash chain; exit 1 naming the first broken entry.

    Exit codes: 0 intact, 1 an entry was edited, deleted, inserted or reordered (or the
    anchor does not match), 2 the store could not be read.
    """
    verdict = asyncio.run(_verify(config_path, store_url, anchor))
    if as_json:
        click.echo(json.dumps(verdict_dict(verdict, anchor), ensure_ascii=False))
    else:
        click.echo(_verdict_text(verdict, anchor))
    sys.exit(0 if verdict.intact else 1)


@audit.command()
@click.option(
    "--since",
    type=_When(),
    metavar="WHEN",
    help="Only entries at or after WHEN: an ISO date/time (UTC unless it says) or an age "
    "like 7d, 24h, 30m.",
)
@click.option("--until", type=_When(), metavar="WHEN", help="Only entries before WHEN.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "csv"]),
    default="json",
    show_default=True,
    help="json: an array of entries; csv: a header row, parameters as JSON text.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to FILE instead of standard output.",
)
@_store_options
def export(
    since: datetime | None,
    until: datetime | None,
    fmt: str,
    output: str | None,
    config_path: str | None,
    store_url: str | None,
) -> None:
    """Export audit entries, oldest first, streamed page by page."""
    count = asyncio.run(_export(config_path, store_url, since, until, fmt, output))
    if output is not None:
        click.echo(f"exported {count} audit entries to {output}", err=True)


async def _open(config_path: str | None, store_url: str | None) -> Store:
    """The store holding the audit log, or a clear message and exit 2."""
    from opsroom.errors import ConfigError, StoreError
    from opsroom.store import Store
    from opsroom.store.url import sqlite_path

    settings = load_settings_or_exit(config_path)
    url = store_url or settings.store.url
    path = sqlite_path(url)
    if path is not None and not Path(path).exists():
        # Opening would create an empty log, which would then "verify".
        click.echo(f"opsroom: no audit log: the store {path} does not exist", err=True)
        sys.exit(2)
    try:
        password = None if store_url else settings.store.password_value()
        return await Store.open(url, password=password)
    except ConfigError as e:
        click.echo(f"opsroom: cannot open the store: [store] password {e}", err=True)
        sys.exit(2)
    except StoreError as e:
        click.echo(f"opsroom: {e}", err=True)
        sys.exit(2)


async def _verify(
    config_path: str | None, store_url: str | None, anchor: tuple[int, str] | None
) -> AuditVerdict:
    from opsroom.errors import StoreError

    store = await _open(config_path, store_url)
    try:
        return await store.check_audit(anchor=anchor)
    except StoreError as e:
        click.echo(f"opsroom: {e}", err=True)
        sys.exit(2)
    finally:
        await store.close()


def _verdict_text(verdict: AuditVerdict, anchor: tuple[int, str] | None) -> str:
    from opsroom.store.audit_chain import REWRITTEN, TRUNCATED

    broken = verdict.broken
    if broken is not None:
        text = f"audit log broken: {broken.message}"
        n = verdict.entries
        entries = f"{n} {'entry' if n == 1 else 'entries'}"
        if broken.problem in (TRUNCATED, REWRITTEN):
            text += f"\n(the chain of the {entries} present is intact in itself)"
        elif n:
            text += f"\n(the {entries} before it are intact)"
        return text
    if verdict.last_id is None or verdict.last_at is None:
        return "audit log intact: 0 entries (nothing audited yet)"
    at = verdict.last_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    text = (
        f"audit log intact: {verdict.entries} entries, last #{verdict.last_id} at {at}, "
        f"head {verdict.head[:_HEAD_PREFIX]}"
    )
    if anchor is not None:
        text += f", anchor #{anchor[0]} matches"
    # The anchor to keep elsewhere, so a later verify can tell if entries were cut off.
    return text + f"\nanchor for later checks: {verdict.last_id}:{verdict.head}"


async def _export(
    config_path: str | None,
    store_url: str | None,
    since: datetime | None,
    until: datetime | None,
    fmt: str,
    output: str | None,
) -> int:
    from opsroom.errors import StoreError

    store = await _open(config_path, store_url)
    partial = None if output is None else Path(f"{output}.partial")
    try:
        if output is None or partial is None:
            return await _write(store, sys.stdout, since, until, fmt)
        with partial.open("w", encoding="utf-8", newline="") as out:
            count = await _write(store, out, since, until, fmt)
        # Only a complete export takes the name asked for.
        os.replace(partial, output)
        return count
    except StoreError as e:
        click.echo(f"opsroom: {e}", err=True)
        sys.exit(2)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except OSError as e:
        where = "standard output" if output is None else output
        click.echo(f"opsroom: cannot write {where}: {e.strerror or e}", err=True)
        sys.exit(2)
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)
        await store.close()


async def _write(
    store: Store, out: IO[str], since: datetime | None, until: datetime | None, fmt: str
) -> int:
    """Stream the entries to `out`; how many were written."""
    from opsroom.store.audit_chain import params_json

    count = 0
    records = store.iter_audit(since=since, until=until)
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(FIELDS)
        async for record in records:
            entry = entry_dict(record)
            entry["params"] = params_json(entry["params"])
            writer.writerow(["" if entry[f] is None else entry[f] for f in FIELDS])
            count += 1
        return count
    out.write("[")
    async for record in records:
        out.write("\n" if count == 0 else ",\n")
        out.write(json.dumps(entry_dict(record), ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count
