"""Endpoints without login: /healthz, Prometheus /metrics and the favicon."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from opsroom.app import job_isolation_summary
from opsroom.errors import StoreError
from opsroom.web.context import WebContext
from opsroom.web.metrics import CONTENT_TYPE

router = APIRouter(include_in_schema=False)
FAVICON = Path(__file__).resolve().parent / "static" / "favicon.svg"


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    """200 when serving (catalog size, store reachable); 503 while shutting down."""
    ctx: WebContext = request.app.state.ctx
    store = "ok"
    try:
        await ctx.store.job_counts()
    except StoreError:
        store = "unreachable"
    status = "ok" if ctx.accepting and store == "ok" else "shutting_down"
    if store != "ok":
        status = "degraded"
    body = {"status": status, "catalog": len(ctx.engine.catalog.commands), "store": store}
    body["jobs"] = job_isolation_summary(ctx.engine.settings)  # how jobs are contained here
    deployer = ctx.engine.deployer
    if deployer.git is not None or deployer.rejected is not None:
        # Serving still, but maybe not the newest: a failed fetch or a rejected version.
        body["catalog_deploy"] = deployer.status()
    return JSONResponse(body, status_code=200 if status == "ok" else 503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus exposition format."""
    ctx: WebContext = request.app.state.ctx
    pool = ctx.engine.dispatcher.supervisor.python_pool.stats()
    return Response(await ctx.metrics.render(ctx.store, pool), media_type=CONTENT_TYPE)


@router.get("/favicon.ico")
async def favicon() -> FileResponse:
    """The icon, for browsers that ask before reading a page's <link rel="icon">."""
    return FileResponse(
        FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"}
    )
