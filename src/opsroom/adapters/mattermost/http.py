"""Mattermost calling opsroom: the `/ops` slash command and button clicks, as ASGI apps.

`POST /hooks/mattermost/command` takes the slash command's form (or JSON) and checks its
token; `POST /hooks/mattermost/actions` takes an interactive-message callback (JSON) and
checks the installation secret in its context. Both answer at once with JSON; the work
continues as events of the adapter.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from opsroom.adapters.mattermost.adapter import MattermostAdapter

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]

MAX_BODY = 256_000  # Mattermost's requests are a few KB; anything this big is not one


class MattermostHookEndpoint:
    """ASGI app for one hook: `kind` is "command" or "actions"."""

    def __init__(self, adapter: MattermostAdapter, kind: str) -> None:
        if kind not in ("command", "actions"):
            raise ValueError(f"unknown mattermost hook {kind!r}")
        self.adapter = adapter
        self.kind = kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one HTTP request from Mattermost."""
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":
            await _respond(send, 405, {"error": "POST only"}, {"allow": "POST"})
            return
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > MAX_BODY:
            await _respond(send, 413, {"error": "too large"}, {"connection": "close"})
            return
        body = bytearray()
        while True:
            message = await receive()
            body.extend(message.get("body", b""))
            if len(body) > MAX_BODY:
                await _respond(send, 413, {"error": "too large"}, {"connection": "close"})
                return
            if not message.get("more_body", False):
                break
        fields = _fields(bytes(body), _header(scope, b"content-type"))
        if fields is None:
            await _respond(send, 400, {"error": "expected a form or a JSON object"}, {})
            return
        if self.kind == "command":
            status, answer = await self.adapter.command(fields)
        else:
            status, answer = await self.adapter.action(fields)
        await _respond(send, status, answer, {})


def _fields(body: bytes, content_type: str) -> dict[str, Any] | None:
    """A form or JSON body as a dict; None when it is neither."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if content_type.split(";")[0].strip().lower() == "application/json":
        try:
            data = json.loads(text)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None
    return dict(urllib.parse.parse_qsl(text, keep_blank_values=True))


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""


async def _respond(send: Send, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
    content = json.dumps(body).encode()
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-type", b"application/json"))
    raw.append((b"content-length", str(len(content)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": content})
