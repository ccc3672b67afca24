"""The gate every HTTP request passes before a byte of its body is read.

From the headers alone, in this order: who is asking (the same `identify` the routes use;
its answer is cached on the request for them), whether the declared body fits, and
whether its type is one the route speaks. Only then may a route read the body, and it
reads through a counter and a clock: a chunked body that passes the limit is cut off
with 413, one that trickles past `body_timeout` with 408. A response sent before the
body was read closes the connection, so nobody drains a 50 MB upload it refused. A small
body (at most `pre_auth_body`) is read and dropped after the answer went out and before
the close: a close with unread bytes makes the kernel reset the connection, and a client
still sending its body then sees "connection reset" instead of the answer.

Open without a login: /healthz, /metrics, the favicon, static files, the login form and
the single sign-on redirects (small bodies only), and /hooks/* (the platforms calling us:
the endpoint checks their signature before it parses anything). Everything else needs a
session or an API token, so a new route is closed unless listed here.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from enum import Enum
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsroom.web.auth import LOG_IN, identify, login_redirect, next_path

PRE_AUTH_BODY = 16 * 1024  # bytes a request may carry before anyone logged in (the form)
MAX_ERRORS = 20  # validation errors listed in one 422
_CLIP = 80  # characters of one error field kept (a key name comes from the client)

JSON = ("application/json", "+json")
FORM = ("application/x-www-form-urlencoded", "multipart/form-data")
_CLOSE = (b"connection", b"close")


class Access(Enum):
    """What a path asks of the caller before its body may be read."""

    OPEN = "open"  # health, metrics, favicon, static files, single sign-on redirects
    LOGIN = "login"  # the login form: before any login by nature
    HOOK = "hook"  # a platform calling us; its endpoint checks the signature
    USER = "user"  # everything else: a session or an API token


_OPEN = frozenset({"/healthz", "/metrics", "/favicon.ico", "/login/oidc", "/login/oidc/callback"})


def access_of(path: str) -> Access:
    """The access rule of a request path."""
    if path == "/login":
        return Access.LOGIN
    if path in _OPEN or path.startswith("/static/"):
        return Access.OPEN
    if path.startswith("/hooks/"):
        return Access.HOOK
    return Access.USER


def accepted_types(access: Access, path: str) -> tuple[str, ...]:
    """Media types a body may have on this path; empty: any (the route reads none)."""
    if access is Access.OPEN:
        return ()
    if access is Access.HOOK:
        return (*JSON, FORM[0])  # Slack: JSON events, form-encoded commands and clicks
    if access is Access.USER and path.startswith("/api/"):
        return JSON
    return FORM


@dataclass(frozen=True, slots=True)
class Limits:
    """How much body, how fast: `[web] max_body` and `body_timeout`."""

    max_body: int
    body_timeout: float
    pre_auth_body: int = PRE_AUTH_BODY


class _BodyRefused(Exception):
    """Raised into the route that reads a body past the limit or the deadline."""


class Gate:
    """ASGI middleware: refuse by headers first, then count and time the body."""

    def __init__(self, app: ASGIApp, *, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Let the request through only when it may be read, and read it under limits."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path: str = scope["path"]
        access = access_of(path)
        try:
            declared = _content_length(headers)
        except ValueError:
            # No framing to trust, so nothing to drain: the server closes on it as it must.
            await _refuse(scope, receive, send, 400, "bad Content-Length")
            return
        # HTTP/1.1 has a body only when it says so: a length, or chunked transfer.
        has_body = bool(declared) or "transfer-encoding" in headers
        stranger = access is Access.USER and await identify(HTTPConnection(scope)) is None
        deadline = asyncio.get_running_loop().time() + self.limits.body_timeout
        drain = self._drainable(headers, declared, 0) if has_body else 0
        refusing = _then_drain(send, receive, drain, deadline)
        if stranger:
            await _login_first(scope, receive, refusing, close=has_body)
            return
        if not has_body:
            await self.app(scope, receive, send)
            return
        limit = self.limits.max_body
        if access in (Access.OPEN, Access.LOGIN):
            limit = min(limit, self.limits.pre_auth_body)
        if declared is not None and declared > limit:
            await _refuse(scope, receive, refusing, 413, _too_large(limit))
            return
        wanted = accepted_types(access, path)
        if wanted and not _media_type_in(headers, wanted):
            await _refuse(scope, receive, refusing, 415, f"send the body as {wanted[0]}")
            return
        await self._read_under_limits(scope, receive, send, limit, deadline, declared)

    def _drainable(self, headers: Headers, declared: int | None, received: int) -> int:
        """Bytes of an unread body to read and drop before closing (0: close at once).

        Only a small one: a large or endless body is left unread, and the connection closes
        on it. Not when the client waits for "100 Continue" before sending its body: it
        takes a final answer instead as the word not to send it.
        """
        if "100-continue" in headers.get("expect", "").lower():
            return 0
        small = self.limits.pre_auth_body
        if declared is None:  # chunked: read on up to the small size, then give up
            return max(small - received, 0)
        return declared - received if declared <= small else 0

    async def _read_under_limits(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        limit: int,
        deadline: float,
        declared: int | None,
    ) -> None:
        headers = Headers(scope=scope)
        received = 0
        done = False  # the route has the whole body (or the client left)
        started = False
        refusal: tuple[int, str] | None = None

        async def counted_receive() -> Message:
            nonlocal received, done, refusal
            if done:
                return await receive()  # e.g. waiting for a disconnect: no deadline then
            if refusal is not None:
                raise _BodyRefused
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                refusal = (408, f"request body not received within {self.limits.body_timeout:g}s")
                raise _BodyRefused from None
            if message["type"] != "http.request":
                done = True
                return message
            received += len(message.get("body", b""))
            if received > limit:
                refusal = (413, _too_large(limit))
                raise _BodyRefused
            done = not message.get("more_body", False)
            return message

        async def closing_send(message: Message) -> None:
            nonlocal started
            if refusal is not None and not started:
                return  # the route's answer to a body it could not read: ours goes instead
            if message["type"] == "http.response.start":
                started = True
                if not done:  # answered without reading it all: do not read a large rest
                    message = {**message, "headers": [*message.get("headers", []), _CLOSE]}
            elif not done and refusal is None and _ends(message):
                # The route left a small rest unread: drop it, so the close is no reset.
                drain = self._drainable(headers, declared, received)
                await _then_drain(send, receive, drain, deadline)(message)
                return
            await send(message)

        try:
            await self.app(scope, counted_receive, closing_send)
        except Exception:
            if refusal is None:
                raise
        if refusal is not None and not started:
            await _refuse(scope, receive, send, *refusal)


def _ends(message: Message) -> bool:
    return message["type"] == "http.response.body" and not message.get("more_body", False)


def _then_drain(send: Send, receive: Receive, up_to: int, deadline: float) -> Send:
    """`send` that, before ending the response, reads and drops up to `up_to` body bytes.

    The answer goes out first, so a client that waits for it before sending the body has
    it at once; the connection then closes with nothing left unread, so with a plain FIN.
    """
    if up_to <= 0:
        return send

    async def draining_send(message: Message) -> None:
        if _ends(message):
            await send({**message, "more_body": True})
            await _drain(receive, up_to, deadline)
            message = {"type": "http.response.body", "body": b"", "more_body": False}
        await send(message)

    return draining_send


async def _drain(receive: Receive, up_to: int, deadline: float) -> None:
    """Read and drop the rest of a body: until its end, `up_to` bytes, or the deadline."""
    got = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout_at(deadline):
            while got <= up_to:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client left
                got += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return


def _content_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    if not value.strip().isdigit():
        raise ValueError(value)
    return int(value)


def _media_type_in(headers: Headers, wanted: tuple[str, ...]) -> bool:
    media = headers.get("content-type", "").partition(";")[0].strip().lower()
    return bool(media) and any(
        media.endswith(w) if w.startswith("+") else media == w for w in wanted
    )


def _too_large(limit: int) -> str:
    return f"request body too large (limit {limit} bytes)"


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    """A short JSON refusal; the connection closes, since the body was left unread."""
    response = JSONResponse({"detail": detail}, status_code=status, headers={"Connection": "close"})
    await response(scope, receive, send)


async def _login_first(scope: Scope, receive: Receive, send: Send, *, close: bool) -> None:
    """What the routes answer without a login: 401 from the API, the login form for pages."""
    path: str = scope["path"]
    response: Response
    if path.startswith("/api/"):
        response = JSONResponse({"detail": LOG_IN}, 401, {"WWW-Authenticate": "Bearer"})
    else:
        response = login_redirect(next_path(scope["method"], path))
    if close:
        response.headers["Connection"] = "close"
    await response(scope, receive, send)


async def validation_problem(request: Request, exc: Exception) -> JSONResponse:
    """422 naming where and what was wrong, never the values sent, and bounded in size."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    detail: list[dict[str, Any]] = [
        {
            "loc": [p if isinstance(p, int) else _clip(str(p)) for p in error.get("loc", ())],
            "msg": _clip(str(error.get("msg", "")), 200),
            "type": _clip(str(error.get("type", ""))),
        }
        for error in errors[:MAX_ERRORS]
    ]
    if len(errors) > MAX_ERRORS:
        detail.append({"loc": [], "msg": f"and {len(errors) - MAX_ERRORS} more", "type": "more"})
    return JSONResponse({"detail": detail}, status_code=422)


def _clip(text: str, size: int = _CLIP) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"
