"""The web app factory: JSON API, pages, static files, /healthz and /metrics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from opsroom.web.api import PREFIX, api_router
from opsroom.web.auth import Identity, LoginRequired, api_identity, login_redirect
from opsroom.web.context import WebContext
from opsroom.web.gate import Gate, Limits, validation_problem
from opsroom.web.hooks import router as hooks_router
from opsroom.web.hub import Hub
from opsroom.web.logs import RequestLog
from opsroom.web.metrics import Metrics
from opsroom.web.ops import router as ops_router
from opsroom.web.pages import page_router

if TYPE_CHECKING:
    from opsroom.app import App

STATIC = Path(__file__).resolve().parent / "static"


def create_app(
    engine: App,
    *,
    hub: Hub | None = None,
    metrics: Metrics | None = None,
    heartbeat: float = 15.0,
) -> FastAPI:
    """The ASGI app over a running engine; `app.state.ctx` is its `WebContext`."""
    from opsroom import __version__

    ctx = WebContext(
        engine=engine,
        hub=hub or Hub(engine.store),
        metrics=metrics or Metrics(),
        heartbeat=heartbeat,
    )
    app = FastAPI(
        title="opsroom",
        version=__version__,
        description="Run your scripts as chat commands: messages, jobs, catalog (SPEC §9).",
        openapi_url=None,  # served below, behind login
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.include_router(ops_router)
    app.include_router(hooks_router)
    app.include_router(api_router())
    app.include_router(page_router())
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get(f"{PREFIX}/openapi.json", include_in_schema=False)
    async def openapi(_: Annotated[Identity, Depends(api_identity)]) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> RedirectResponse:
        return login_redirect(exc.next_path)

    def count(method: str, status: int) -> None:
        ctx.metrics.http_requests.labels(method, str(status)).inc()

    # A refused request (422) never gets its input back, only where and what was wrong.
    app.add_exception_handler(RequestValidationError, validation_problem)
    web = engine.settings.web
    # Inside the request log, so refusals at the gate are logged and counted too.
    app.add_middleware(Gate, limits=Limits(max_body=web.max_body, body_timeout=web.body_timeout))
    app.add_middleware(RequestLog, count=count)
    return app


def context_of(app: FastAPI) -> WebContext:
    """The `WebContext` of an app made by `create_app`."""
    ctx: WebContext = app.state.ctx
    return ctx
