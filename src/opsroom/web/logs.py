"""Structured logs: one JSON object per line on stderr, one line per HTTP request.

Only the fields listed in `_FIELDS` leave a record, so a secret passed by accident in
`extra=` never reaches the log; request lines carry the path without its query string.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
SendFn = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, SendFn], Awaitable[None]]

_FIELDS = ("method", "path", "status", "duration_ms", "principal", "room", "job_id", "listen")
request_log = logging.getLogger("opsroom.web.request")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: time, level, logger, message and known fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON object on one line."""
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in _FIELDS:
            if name in record.__dict__:
                data[name] = record.__dict__[name]
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def setup_logging(level: int = logging.INFO) -> None:
    """Send every log record to stderr as JSON lines (uvicorn's loggers included)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # our own line replaces it
    logging.getLogger("alembic").setLevel(logging.WARNING)


class RequestLog:
    """ASGI middleware: one log line and one metric per HTTP request."""

    def __init__(self, app: ASGIApp, *, count: Callable[[str, int], None] | None = None) -> None:
        self.app = app
        self.count = count

    async def __call__(self, scope: Scope, receive: Receive, send: SendFn) -> None:
        """Serve the request, then log method, path, status, duration and principal."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.monotonic()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            state = scope.get("state") or {}
            method = str(scope.get("method", ""))
            request_log.info(
                "%s %s %s",
                method,
                scope.get("path", ""),
                status,
                extra={
                    "method": method,
                    "path": scope.get("path", ""),
                    "status": status,
                    "duration_ms": round((time.monotonic() - start) * 1000, 1),
                    "principal": state.get("principal"),
                },
            )
            if self.count is not None:
                self.count(method, status)
