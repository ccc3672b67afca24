"""The Events API endpoint (POST /hooks/slack) as a plain ASGI app, handled by Bolt.

The signature (`v0=` HMAC-SHA256 of `v0:<timestamp>:<body>` with the signing secret,
compared in constant time; a timestamp more than five minutes away refused) is checked
here on the raw bytes, before anything parses the body: Bolt parses a request as it builds
it, and only then checks it. A forged request gets 401 whatever its body holds. It answers
within Slack's 3 seconds: listeners ack first and their work continues after the response.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from opsroom.adapters.slack.adapter import SlackAdapter

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]

MAX_BODY = 1_000_000  # Slack's payloads are a few KB; anything this big is not Slack


class SlackHttpEndpoint:
    """ASGI app: any path, POST only; mount it at `/hooks/slack`."""

    def __init__(self, adapter: SlackAdapter) -> None:
        self.adapter = adapter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one HTTP request from Slack."""
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":
            await _respond(send, 405, b"POST only", {"allow": "POST"})
            return
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > MAX_BODY:
            await _respond(send, 413, b"too large", {"connection": "close"})
            return
        body = bytearray()
        while True:
            message = await receive()
            body.extend(message.get("body", b""))
            if len(body) > MAX_BODY:
                await _respond(send, 413, b"too large", {"connection": "close"})
                return
            if not message.get("more_body", False):
                break
        if not self._signed(scope, bytes(body)):
            await _respond(send, 401, b"invalid request signature", {})
            return
        headers: dict[str, list[str]] = {}
        for raw_name, raw_value in scope.get("headers", []):
            headers.setdefault(raw_name.decode("latin-1").lower(), []).append(
                raw_value.decode("latin-1")
            )
        query = scope.get("query_string", b"").decode("latin-1")
        request = AsyncBoltRequest(
            body=body.decode("utf-8", errors="replace"), query=query, headers=dict(headers)
        )
        response = await self.adapter.bolt.async_dispatch(request)
        content = (response.body or "").encode()
        await _respond(send, response.status, content, response.first_headers_without_set_cookie())

    def _signed(self, scope: Scope, body: bytes) -> bool:
        """True when Slack signed exactly these bytes within the last five minutes."""
        verifier = SignatureVerifier(self.adapter.config.signing_secret or "")
        timestamp = _header(scope, b"x-slack-request-timestamp")
        try:
            return timestamp.isdigit() and verifier.is_valid(
                body.decode("utf-8"), timestamp, _header(scope, b"x-slack-signature")
            )
        except UnicodeDecodeError:
            return False


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""


async def _respond(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    if not any(k == b"content-type" for k, _ in raw):
        raw.append((b"content-type", b"text/plain; charset=utf-8"))
    raw = [(k, v) for k, v in raw if k != b"content-length"]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
