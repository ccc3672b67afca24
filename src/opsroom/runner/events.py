"""The structured-event channel (SPEC §5.3): JSON lines → job events.

One JSON object per line, on a pipe of its own (fd in `OPSROOM_EVENTS_FD`):

    {"type": "progress", "percent": 40, "message": "copying"}
    {"type": "table", "rows": [{"host": "web1", "state": "ok"}]}
    {"type": "table", "columns": ["host", "state"], "rows": [["web1", "ok"]]}
    {"type": "status", "text": "volume migrated", "level": "success"}
    {"type": "attachment", "path": "report.csv", "name": "May report", "content_type": "text/csv"}

An attachment's path is relative to the job's working folder; `run_local` checks it (see
`attachments.py`) before it becomes an `AttachmentEvent`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from opsroom.errors import OpsroomError
from opsroom.model.jobs import ProgressEvent, StatusEvent, TableEvent


@dataclass(frozen=True, slots=True)
class AttachmentRequest:
    """A script asks for a file of its working folder to be attached (not yet checked)."""

    path: str
    name: str | None = None
    content_type: str | None = None


ChannelEvent = ProgressEvent | TableEvent | StatusEvent | AttachmentRequest
LEVELS = ("info", "success", "warning", "error")


class MalformedEvent(OpsroomError):
    """A line on the event channel that is not a known event."""


def parse_event(line: str) -> ChannelEvent:
    """One channel line as an event; MalformedEvent says what is wrong with it."""
    try:
        data = json.loads(line)
    except ValueError:
        raise MalformedEvent("not JSON") from None
    if not isinstance(data, dict):
        raise MalformedEvent("not a JSON object")
    kind = data.get("type")
    if kind == "progress":
        return _progress(data)
    if kind == "table":
        return _table(data)
    if kind == "status":
        text = data.get("text")
        if not isinstance(text, str):
            raise MalformedEvent("status needs a text")
        level = data.get("level", "info")
        return StatusEvent(text=text, level=level if level in LEVELS else "info")
    if kind == "attachment":
        return _attachment(data)
    raise MalformedEvent(f"unknown event type {kind!r}")


def _attachment(data: dict[str, Any]) -> AttachmentRequest:
    path = data.get("path")
    if not isinstance(path, str) or not path or "\0" in path:
        raise MalformedEvent("attachment needs a path")
    name = data.get("name")
    content_type = data.get("content_type")
    return AttachmentRequest(
        path=path,
        name=name if isinstance(name, str) and name.strip() else None,
        content_type=content_type if isinstance(content_type, str) else None,
    )


def _progress(data: dict[str, Any]) -> ProgressEvent:
    raw = data.get("percent")
    percent: float | None
    if raw is None:
        percent = None
    elif isinstance(raw, int | float) and not isinstance(raw, bool) and raw == raw:
        percent = max(0.0, min(100.0, float(raw)))
    else:
        raise MalformedEvent("progress percent must be a number or null")
    message = data.get("message", "")
    return ProgressEvent(percent=percent, message=message if isinstance(message, str) else "")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _table(data: dict[str, Any]) -> TableEvent:
    rows = data.get("rows")
    if not isinstance(rows, list):
        raise MalformedEvent("table needs a list of rows")
    columns = data.get("columns")
    if columns is not None:
        if not isinstance(columns, list) or not all(isinstance(r, list) for r in rows):
            raise MalformedEvent("a table with columns needs rows as lists")
        width = len(columns)
        return TableEvent(
            columns=tuple(_cell(c) for c in columns),
            rows=tuple(
                tuple(_cell(v) for v in (r + [None] * width)[:width]) if width else () for r in rows
            ),
        )
    if not all(isinstance(r, dict) for r in rows):
        raise MalformedEvent("table rows must be objects (or give columns)")
    # Union of keys in first-seen order: PowerShell objects and dicts may differ row to row.
    names: dict[str, None] = {}
    for r in rows:
        names.update(dict.fromkeys(str(k) for k in r))
    cols = tuple(names)
    return TableEvent(
        columns=cols,
        rows=tuple(tuple(_cell(_get(r, c)) for c in cols) for r in rows),
    )


def _get(row: dict[Any, Any], column: str) -> Any:
    if column in row:
        return row[column]
    for k, v in row.items():
        if str(k) == column:
            return v
    return None
