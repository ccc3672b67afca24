"""The console's front page: newcomers land in the web chat."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import RedirectResponse, Response

from opsroom.web.auth import PageUser

router = APIRouter()


@router.get("/")
async def index(user: PageUser) -> Response:
    """Go to the web chat (login first, through `PageUser`)."""
    return RedirectResponse("/chat", status_code=303)
