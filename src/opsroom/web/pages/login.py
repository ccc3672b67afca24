"""Log in (local accounts) and out."""

from __future__ import annotations

import hmac
from typing import Annotated

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

router = APIRouter()


def _next(target: str | None) -> str:
    # Only paths on this site: never an open redirect to //evil.example or https://...
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _secure(request: Request) -> bool:
    ctx: WebContext = request.app.state.ctx
    base = ctx.engine.settings.web.base_url or ""
    return base.startswith("https:") or request.url.scheme == "https"


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    """The login form; a double-submit cookie guards it against cross-site posts."""
    if await identify(request) is not None:
        return RedirectResponse(_next(next), status_code=303)
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_token()
    response = render(request, "login.html", None, csrf=token, next=_next(next), error="")
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request)
    )
    return response


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
        return render(
            request,
            "login.html",
            None,
            csrf=cookie,
            next=_next(next),
            error="Wrong username or password.",
            status_code=401,
        )
    session = await open_session(ctx.store, who, ttl=ctx.engine.settings.web.session_ttl)
    request.state.principal = f"web:{who}"
    response = RedirectResponse(_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session,
        max_age=int(ctx.engine.settings.web.session_ttl),
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
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
