"""Server-sent events framing."""

from __future__ import annotations

import json
from typing import Any


def sse_event(data: Any, *, event_id: int | None = None, event: str | None = None) -> str:
    """One SSE message; `data` is JSON on a single line (JSON escapes every newline)."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, ensure_ascii=False, default=str))
    return "\n".join(lines) + "\n\n"
