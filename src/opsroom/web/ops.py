"""Operations endpoints without login: /healthz and Prometheus /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from opsroom.app import job_isolation_summary
from opsroom.errors import StoreError
from opsroom.web.context import WebContext
from opsroom.web.metrics import CONTENT_TYPE

router = APIRouter(include_in_schema=False)


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
    return JSONResponse(body, status_code=200 if status == "ok" else 503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus exposition format."""
    ctx: WebContext = request.app.state.ctx
    return Response(await ctx.metrics.render(ctx.store), media_type=CONTENT_TYPE)
