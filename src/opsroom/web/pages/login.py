"""Log in (local accounts, or single sign-on with OpenID Connect) and out."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from starlette.responses import RedirectResponse, Response

from opsroom.web.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    LocalAccounts,
    PageUser,
    identify,
    open_session,
)
from opsroom.web.context import WebContext
from opsroom.web.pages.templating import render
from opsroom.web.passwords import new_token, token_hash

if TYPE_CHECKING:
    from opsroom.web.oidc import OidcLogin

router = APIRouter()
OIDC_CALLBACK = "/login/oidc/callback"


def _next(target: str | None) -> str:
    # Only paths on this site: never an open redirect to //evil.example or https://...
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _secure(request: Request) -> bool:
    ctx: WebContext = request.app.state.ctx
    base = ctx.engine.settings.web.base_url or ""
    return base.startswith("https:") or request.url.scheme == "https"


def _sso_label(request: Request) -> str | None:
    ctx: WebContext = request.app.state.ctx
    oidc = ctx.engine.settings.web.oidc
    return oidc.button_label if oidc is not None else None


def _login_page(
    request: Request, next_path: str, error: str = "", status_code: int = 200
) -> Response:
    """The login form; a double-submit cookie guards it against cross-site posts."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_token()
    response = render(
        request,
        "login.html",
        None,
        csrf=token,
        next=next_path,
        error=error,
        sso_label=_sso_label(request),
        status_code=status_code,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request)
    )
    return response


def _set_session(request: Request, response: Response, session: str) -> None:
    ctx: WebContext = request.app.state.ctx
    response.set_cookie(
        SESSION_COOKIE,
        session,
        max_age=int(ctx.engine.settings.web.session_ttl),
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    """The login form, with the single sign-on button when `[web.oidc]` is configured."""
    if await identify(request) is not None:
        return RedirectResponse(_next(next), status_code=303)
    return _login_page(request, _next(next))


@router.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check the password; on success a session cookie and a redirect to `next`."""
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not csrf_token or not hmac.compare_digest(cookie, csrf_token):
        raise HTTPException(403, "missing or wrong CSRF token; reload the login page")
    ctx: WebContext = request.app.state.ctx
    who = await LocalAccounts(ctx.store).authenticate(username, password)
    if who is None:
        return _login_page(request, _next(next), "Wrong username or password.", 401)
    session = await open_session(ctx.store, who, ttl=ctx.engine.settings.web.session_ttl)
    request.state.principal = f"web:{who}"
    response = RedirectResponse(_next(next), status_code=303)
    _set_session(request, response, session)
    return response


def _oidc(request: Request) -> OidcLogin:
    """The process's OpenID Connect login (one per app: it caches the discovery document)."""
    from opsroom.web.oidc import OidcLogin

    ctx: WebContext = request.app.state.ctx
    settings = ctx.engine.settings.web.oidc
    if settings is None:
        raise HTTPException(404, "single sign-on is not configured ([web.oidc])")
    login: OidcLogin | None = getattr(request.app.state, "oidc_login", None)
    if login is None or login.settings is not settings:
        login = OidcLogin(settings)
        request.app.state.oidc_login = login
    return login


def _redirect_uri(request: Request) -> str:
    # base_url when set: the Host header is the client's to choose.
    ctx: WebContext = request.app.state.ctx
    base = ctx.engine.settings.web.base_url or str(request.base_url)
    return base.rstrip("/") + OIDC_CALLBACK


@router.get("/login/oidc")
async def oidc_start(request: Request, next: str | None = None) -> Response:
    """Start single sign-on: a redirect to the provider, the pending sign-in in a cookie."""
    from opsroom.web.oidc import PENDING_COOKIE, PENDING_TTL, SsoError

    login = _oidc(request)
    try:
        url, pending = await login.begin(_redirect_uri(request), _next(next))
    except SsoError as e:
        return _login_page(request, _next(next), f"Single sign-on failed: {e.message}", e.status)
    response = RedirectResponse(url, status_code=303)
    # Lax, not strict: the provider sends the browser back with a cross-site navigation.
    response.set_cookie(
        PENDING_COOKIE,
        pending.encode(),
        max_age=PENDING_TTL,
        path="/login/oidc",
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )
    return response


@router.get(OIDC_CALLBACK)
async def oidc_callback(request: Request) -> Response:
    """The provider's answer: on a valid ID token, a session exactly like a local login."""
    from opsroom.web.oidc import (
        PENDING_COOKIE,
        Pending,
        SsoError,
        sso_account,
        username_from_claims,
    )

    login = _oidc(request)
    ctx: WebContext = request.app.state.ctx
    raw = request.cookies.get(PENDING_COOKIE, "")
    pending = Pending.decode(raw) if raw else None
    try:
        claims = await login.finish(pending, request.query_params, _redirect_uri(request))
        who = await sso_account(ctx.store, username_from_claims(claims, login.settings))
    except SsoError as e:
        response = _login_page(
            request,
            _next(pending.next if pending else None),
            f"Single sign-on failed: {e.message}",
            e.status,
        )
    else:
        session = await open_session(ctx.store, who, ttl=ctx.engine.settings.web.session_ttl)
        request.state.principal = f"web:{who}"
        response = RedirectResponse(_next(pending.next if pending else None), status_code=303)
        _set_session(request, response, session)
    # One use only: a replayed callback finds no pending sign-in.
    response.delete_cookie(PENDING_COOKIE, path="/login/oidc")
    return response


@router.post("/logout")
async def logout(request: Request, user: PageUser) -> Response:
    """End the session (CSRF-checked like every form post)."""
    ctx: WebContext = request.app.state.ctx
    if user.session:
        await ctx.store.drop_web_session(token_hash(user.session))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
