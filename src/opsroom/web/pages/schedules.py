"""The schedules page: what runs when, and pause, resume or remove as `schedule` would."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import Response

from opsroom.web.api.schedules import ScheduleDone, ScheduleId, change, visible
from opsroom.web.auth import Identity, PageUser
from opsroom.web.context import WebContext
from opsroom.web.pages.templating import render

router = APIRouter()


async def _page(
    request: Request,
    user: Identity,
    result: ScheduleDone | None = None,
    error: str = "",
    status_code: int = 200,
) -> Response:
    ctx: WebContext = request.app.state.ctx
    return render(
        request,
        "schedules.html",
        user,
        schedules=await visible(ctx, user.principal),
        prefix=ctx.engine.settings.bot.prefix,
        result=result,
        error=error,
        active="schedules",
        status_code=status_code,
    )


@router.get("/schedules")
async def schedules(request: Request, user: PageUser) -> Response:
    """Schedules the viewer may see, with their next runs and what the last one did."""
    return await _page(request, user)


async def _act(request: Request, user: Identity, schedule_id: int, verb: str) -> Response:
    ctx: WebContext = request.app.state.ctx
    try:
        result = await change(ctx, user.principal, schedule_id, verb)
    except HTTPException as e:
        return await _page(request, user, error=str(e.detail), status_code=e.status_code)
    return await _page(request, user, result)


@router.post("/schedules/{schedule_id}/pause")
async def pause(request: Request, user: PageUser, schedule_id: ScheduleId) -> Response:
    """Pause as `schedule pause N`; the page again, with what came of it."""
    return await _act(request, user, schedule_id, "pause")


@router.post("/schedules/{schedule_id}/resume")
async def resume(request: Request, user: PageUser, schedule_id: ScheduleId) -> Response:
    """Resume as `schedule resume N`; the page again, with what came of it."""
    return await _act(request, user, schedule_id, "resume")


@router.post("/schedules/{schedule_id}/remove")
async def remove(request: Request, user: PageUser, schedule_id: ScheduleId) -> Response:
    """Remove as `schedule rm N`; the page again, with what came of it."""
    return await _act(request, user, schedule_id, "rm")
