"""Who is asking: sessions (cookie), API tokens (bearer), CSRF, and login providers.

A request is authenticated by `Authorization: Bearer <token>` or by the session cookie.
Requests that change something (not GET/HEAD/OPTIONS) and ride on the cookie must also
carry the session's CSRF token (header `X-CSRF-Token` or form field `csrf_token`);
bearer requests are exempt, since a browser never adds that header on its own.

Login providers sit behind `LoginProvider`: local accounts now; OpenID Connect (authlib)
plugs in as another provider that ends in `open_session` like the local one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Protocol
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection
from starlette.responses import RedirectResponse

from opsroom.errors import OpsroomError
from opsroom.web.passwords import new_token, token_hash, verify_password

if TYPE_CHECKING:
    from opsroom.store import Store
    from opsroom.web.context import WebContext

SESSION_COOKIE = "opsroom_session"
LOGIN_CSRF_COOKIE = "opsroom_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
LOG_IN = "log in or send Authorization: Bearer <token>"  # the API's 401 detail

_bearer = HTTPBearer(auto_error=False, description="An API token (POST /api/v1/tokens).")
_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="A login session.")


@dataclass(frozen=True, slots=True)
class Identity:
    """A logged-in person as the web sees them; `principal` is `web:<username>`."""

    username: str
    admin: bool
    via: str  # "session" | "token"
    session: str | None = None  # the cookie value, to derive the CSRF token

    @property
    def principal(self) -> str:
        """The stable identity used by policy and audit (SPEC §2)."""
        return f"web:{self.username}"

    @property
    def csrf(self) -> str:
        """The CSRF token forms and scripts must echo back (empty for bearer requests)."""
        return csrf_token(self.session) if self.session else ""


class LoginProvider(Protocol):
    """A way to log in; on success the caller opens a session for the username."""

    name: str

    async def authenticate(self, username: str, password: str) -> str | None:
        """The username that logged in, or None."""


class LocalAccounts:
    """Username and password checked against the salted scrypt hashes in the store."""

    name = "local"

    def __init__(self, store: Store) -> None:
        self.store = store

    async def authenticate(self, username: str, password: str) -> str | None:
        """The username when the password matches."""
        user = await self.store.web_user(username.strip().lower())
        if user is None or not verify_password(password, user.password_hash):
            return None
        return user.username


def csrf_token(session: str) -> str:
    """The CSRF token bound to a session: derived from it, so it needs no storage."""
    return hmac.new(session.encode(), b"opsroom-csrf", hashlib.sha256).hexdigest()


async def open_session(store: Store, username: str, *, ttl: float) -> str:
    """Start a session for `username`; returns the cookie value (only its hash is stored)."""
    token = new_token()
    await store.add_web_session(token_hash(token), username=username, ttl=ttl)
    return token


async def identify(request: HTTPConnection) -> Identity | None:
    """The caller, from a bearer token or the session cookie; cached on the request.

    Headers and cookies only, never the body: the gate (`opsroom.web.gate`) calls it
    before a body is read, and the dependencies below find its answer cached.
    """
    if hasattr(request.state, "identity"):
        found: Identity | None = request.state.identity
        return found
    ctx: WebContext = request.app.state.ctx
    identity: Identity | None = None
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        user = await ctx.store.api_token_user(token_hash(credentials.strip()))
        if user is not None:
            identity = Identity(user.username, user.admin, "token")
    elif cookie := request.cookies.get(SESSION_COOKIE):
        user = await ctx.store.web_session_user(token_hash(cookie))
        if user is not None:
            identity = Identity(user.username, user.admin, "session", session=cookie)
    request.state.identity = identity
    request.state.principal = identity.principal if identity else None
    return identity


async def check_csrf(request: Request, identity: Identity) -> None:
    """403 unless a cookie-authenticated change carries the session's CSRF token."""
    if request.method in _SAFE or identity.via != "session":
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD, "")
        sent = value if isinstance(value, str) else ""
    if not sent or not hmac.compare_digest(sent, identity.csrf):
        raise HTTPException(403, "missing or wrong CSRF token")


class LoginRequired(OpsroomError):
    """A page was asked for without a session: the handler redirects to /login."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def login_redirect(next_path: str) -> RedirectResponse:
    """Where a request without a login is sent: the login form, then back to `next_path`."""
    return RedirectResponse(f"/login?next={quote(next_path)}", status_code=303)


def next_path(method: str, path: str) -> str:
    """Where to return after logging in: the page asked for, or home after a form post."""
    return path if method in ("GET", "HEAD") else "/"


async def api_identity(
    request: Request,
    _bearer_doc: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    _cookie_doc: Annotated[str | None, Depends(_cookie)],
) -> Identity:
    """Dependency of the JSON API: the caller, or 401 JSON; 403 on a missing CSRF token."""
    identity = await identify(request)
    if identity is None:
        raise HTTPException(401, LOG_IN, {"WWW-Authenticate": "Bearer"})
    await check_csrf(request, identity)
    return identity


async def page_identity(request: Request) -> Identity:
    """Dependency of HTML pages: the caller, or a redirect to /login; 403 without CSRF."""
    identity = await identify(request)
    if identity is None:
        raise LoginRequired(next_path(request.method, request.url.path))
    await check_csrf(request, identity)
    return identity


async def admin_identity(identity: Annotated[Identity, Depends(api_identity)]) -> Identity:
    """Dependency for admin-only API calls: 403 for everyone else."""
    if not identity.admin:
        raise HTTPException(403, "only a web admin may do this")
    return identity


ApiUser = Annotated[Identity, Depends(api_identity)]
PageUser = Annotated[Identity, Depends(page_identity)]
AdminUser = Annotated[Identity, Depends(admin_identity)]
