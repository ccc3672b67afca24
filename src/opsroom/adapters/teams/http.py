"""The messaging endpoint (POST /hooks/teams) as a plain ASGI app.

The bearer token is checked from the headers alone, before a byte of the body is read
(`auth.InboundVerifier`); only then is the body read (size-capped) and parsed, its
`serviceUrl` compared with the token's claim and its tenant with `tenant_id`. A refused
request runs nothing: 401 for any token fault, 403 for another tenant. Everything else
is answered at once (200); the command runs after the response.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from opsroom.adapters.teams.auth import InboundVerifier, Unauthorized

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from opsroom.adapters.teams.adapter import TeamsAdapter

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("opsroom.adapters.teams")
MAX_BODY = 256_000  # activities are a few KB; the Connector caps what it posts far below


class TeamsHttpEndpoint:
    """ASGI app: POST only; mount it at `/hooks/teams`."""

    def __init__(self, adapter: TeamsAdapter) -> None:
        self.adapter = adapter
        self.verifier = InboundVerifier(
            adapter.config, adapter.transport.keys, adapter.transport.keys.clock
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one activity from the Bot Connector."""
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":
            await _respond(send, 405, None, {"allow": "POST"})
            return
        try:
            verified = await self.verifier.verify(_header(scope, b"authorization"))
        except Unauthorized as e:
            log.warning("teams: refused an activity: %s", e)
            await _respond(send, 401, None, {"connection": "close"})
            return
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > MAX_BODY:
            await _respond(send, 413, None, {"connection": "close"})
            return
        body = bytearray()
        while True:
            message = await receive()
            body.extend(message.get("body", b""))
            if len(body) > MAX_BODY:
                await _respond(send, 413, None, {"connection": "close"})
                return
            if not message.get("more_body", False):
                break
        try:
            activity = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            activity = None
        if not isinstance(activity, dict):
            await _respond(send, 400, None, {})
            return
        status, answer = await self.adapter.accept(activity, verified)
        await _respond(send, status, answer, {})


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""


async def _respond(
    send: Send, status: int, body: dict[str, Any] | None, headers: dict[str, str]
) -> None:
    content = json.dumps(body).encode() if body is not None else b""
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    if body is not None:
        raw.append((b"content-type", b"application/json"))
    raw.append((b"content-length", str(len(content)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": content})
