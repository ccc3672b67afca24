"""The workers page: who serves which queue, its last heartbeat, and the jobs it runs."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from opsroom.web.api.workers import current
from opsroom.web.auth import PageUser
from opsroom.web.context import WebContext
from opsroom.web.pages.templating import render

router = APIRouter()


@router.get("/workers")
async def workers(request: Request, user: PageUser) -> Response:
    """Every worker that has not stopped, by queue and name."""
    ctx: WebContext = request.app.state.ctx
    return render(request, "workers.html", user, workers=await current(ctx), active="workers")
