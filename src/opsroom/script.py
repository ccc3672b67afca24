"""Helpers for Python scripts run by opsroom: progress, tables, status lines, files (§5.3).

    from opsroom import script
    script.progress(40, "copying volumes")
    script.table([{"host": "web1", "state": "ok"}])
    script.status("volume migrated", level="success")
    script.attach("report.csv", name="May report.csv", content_type="text/csv")

An attached file must be a regular file inside the job's working folder (the current folder,
also `$TMPDIR`), at most 20 MB by default; opsroom copies it before the folder is removed.
From a shell script:

    echo '{"type":"attachment","path":"out.csv"}' >&"$OPSROOM_EVENTS_FD"

Events go as JSON lines to the private channel whose fd opsroom passes in
`OPSROOM_EVENTS_FD`, so ordinary output can never forge one. Run by hand (no channel), they
fall back to readable text. Standard library only: this file is also loaded by path inside
isolated PEP 723 environments where opsroom itself is not installed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["attach", "progress", "status", "table"]

_LEVELS = ("info", "success", "warning", "error")


_windows_fds: dict[int, int] = {}  # handle -> the C runtime fd opened on it, once


def _channel() -> int | None:
    raw = os.environ.get("OPSROOM_EVENTS_FD", "")
    try:
        fd = int(raw)
    except ValueError:
        return None
    if sys.platform == "win32":
        # On Windows opsroom passes the pipe's handle: a C runtime fd is opened on it once
        # (and never closed: that would close the handle).
        if fd not in _windows_fds:
            import msvcrt

            try:
                _windows_fds[fd] = msvcrt.open_osfhandle(fd, os.O_WRONLY)
            except OSError:
                return None
        return _windows_fds[fd]
    try:
        os.fstat(fd)
    except OSError:
        return None
    return fd


def _emit(event: Mapping[str, Any]) -> bool:
    fd = _channel()
    if fd is None:
        return False
    data = (json.dumps(event, default=str, separators=(",", ":")) + "\n").encode("utf-8")
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        return False
    return True


def progress(percent: float | None, message: str = "") -> None:
    """Report progress (0–100, or None when unknown) with an optional message."""
    pct = None if percent is None else max(0.0, min(100.0, float(percent)))
    if not _emit({"type": "progress", "percent": pct, "message": str(message)}):
        shown = "?" if pct is None else f"{pct:g}"
        print(f"[{shown}%] {message}".rstrip(), file=sys.stderr, flush=True)


def status(text: str, level: str = "info") -> None:
    """Show one status line prominently; level is info, success, warning or error."""
    lvl = level if level in _LEVELS else "info"
    if not _emit({"type": "status", "text": str(text), "level": lvl}):
        print(f"{lvl}: {text}", file=sys.stderr, flush=True)


def table(rows: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> None:
    """Show rows (a dict or dicts) as a table."""
    items = [dict(rows)] if isinstance(rows, Mapping) else [dict(r) for r in rows]
    if not _emit({"type": "table", "rows": items}):
        for row in items:
            print("\t".join(f"{k}={v}" for k, v in row.items()), flush=True)


def attach(
    path: str | os.PathLike[str], name: str | None = None, content_type: str | None = None
) -> None:
    """Offer a file of the job's working folder to the room (a display name is optional)."""
    event: dict[str, Any] = {"type": "attachment", "path": os.fspath(path)}
    if name is not None:
        event["name"] = str(name)
    if content_type is not None:
        event["content_type"] = str(content_type)
    if not _emit(event):
        print(f"attachment: {os.fspath(path)}", file=sys.stderr, flush=True)
