"""The audit log as people take it elsewhere: entry and verdict dicts, JSON and CSV text.

Shared by `opsroom audit export|verify` and the web console's audit API, so an export
looks the same whichever way it was made.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsroom.model.audit import AuditRecord
    from opsroom.store.audit_chain import AuditVerdict

FIELDS = (
    "id",
    "at",
    "action",
    "principal",
    "room",
    "command",
    "params",
    "job_id",
    "outcome",
    "reason",
    "catalog_commit",
    "script_hash",
    "prev_hash",
    "hash",
)
"""The columns of an export, in order (JSON keys and the CSV header)."""

FORMATS = ("json", "csv")
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_BATCH = 200  # entries per chunk of a streamed export


def parse_when(value: str, *, now: datetime) -> datetime:
    """An aware UTC time from an ISO date/time (naive means UTC) or an age like `7d`."""
    age = _AGE.match(value)
    if age:
        try:
            return now - timedelta(seconds=float(age.group(1)) * _AGE_UNITS[age.group(2).lower()])
        except OverflowError:
            raise ValueError(f"{value!r} reaches back further than any date") from None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"{value!r} is neither a date nor an age: use an ISO date or time "
            "(2024-05-01, 2024-05-01T12:00:00Z) or an age such as 7d, 24h, 30m"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _when(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat()


def entry_dict(record: AuditRecord) -> dict[str, Any]:
    """One entry as exported: the `FIELDS`, times in UTC ISO 8601."""
    event = record.event
    return {
        "id": record.id,
        "at": record.at.astimezone(UTC).isoformat(),
        "action": event.action,
        "principal": event.principal,
        "room": event.room,
        "command": event.command,
        "params": None if event.params is None else dict(event.params),
        "job_id": event.job_id,
        "outcome": event.outcome,
        "reason": event.reason,
        "catalog_commit": event.catalog_commit,
        "script_hash": event.script_hash,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


def verdict_dict(verdict: AuditVerdict, anchor: tuple[int, str] | None = None) -> dict[str, Any]:
    """The chain check as `audit verify --json` prints it."""
    broken = verdict.broken
    return {
        "intact": verdict.intact,
        "entries": verdict.entries,
        "last_id": verdict.last_id,
        "last_at": _when(verdict.last_at),
        "head": verdict.head,
        "anchor": None if anchor is None else f"{anchor[0]}:{anchor[1]}",
        "broken": None
        if broken is None
        else {"id": broken.entry_id, "problem": broken.problem, "message": broken.message},
    }


def csv_row(record: AuditRecord) -> list[Any]:
    """One CSV row: parameters as JSON text, missing values empty."""
    from opsroom.store.audit_chain import params_json

    entry = entry_dict(record)
    entry["params"] = params_json(entry["params"])
    return ["" if entry[f] is None else entry[f] for f in FIELDS]


async def export_chunks(records: AsyncIterable[AuditRecord], fmt: str) -> AsyncIterator[str]:
    """The export as text chunks (a JSON array, or CSV with a header), for streaming."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    buffer = io.StringIO()
    count = 0
    if fmt == "csv":
        writer = csv.writer(buffer)
        writer.writerow(FIELDS)
    else:
        buffer.write("[")
    async for record in records:
        if fmt == "csv":
            writer.writerow(csv_row(record))
        else:
            buffer.write("\n" if count == 0 else ",\n")
            buffer.write(json.dumps(entry_dict(record), ensure_ascii=False))
        count += 1
        if count % _BATCH == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if fmt == "json":
        buffer.write("\n]\n" if count else "]\n")
    yield buffer.getvalue()
