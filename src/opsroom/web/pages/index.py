"""The console's front page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from opsroom.web.auth import PageUser
from opsroom.web.context import WebContext
from opsroom.web.pages.templating import render

router = APIRouter()


@router.get("/")
async def index(request: Request, user: PageUser) -> Response:
    """What is here: links to the console's parts."""
    ctx: WebContext = request.app.state.ctx
    return render(request, "index.html", user, commands=len(ctx.engine.catalog.commands))
