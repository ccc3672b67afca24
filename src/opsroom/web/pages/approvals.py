"""The approvals page: what waits for a decision, and approve/deny through the dispatcher."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from opsroom.web.api.approvals import DecisionOut, JobId, decide_as, decided, pending_for
from opsroom.web.auth import Identity, PageUser
from opsroom.web.context import WebContext
from opsroom.web.pages.templating import render

router = APIRouter()


async def _page(request: Request, user: Identity, result: DecisionOut | None = None) -> Response:
    ctx: WebContext = request.app.state.ctx
    return render(
        request,
        "approvals.html",
        user,
        pending=await pending_for(ctx, user.principal),
        decided=await decided(ctx, limit=20),
        result=result,
        active="approvals",
    )


@router.get("/approvals")
async def approvals(request: Request, user: PageUser) -> Response:
    """Pending requests, with buttons for those the viewer may decide, and recent decisions."""
    return await _page(request, user)


@router.post("/approvals/{job_id}/approve")
async def approve(request: Request, user: PageUser, job_id: JobId) -> Response:
    """Approve as `!approve N`; the page again, with what came of it."""
    ctx: WebContext = request.app.state.ctx
    result = await decide_as(ctx, user.principal, job_id, approve=True)
    return await _page(request, user, result)


@router.post("/approvals/{job_id}/deny")
async def deny(
    request: Request, user: PageUser, job_id: JobId, reason: Annotated[str, Form()] = ""
) -> Response:
    """Deny as `!deny N reason`; the page again, with what came of it."""
    ctx: WebContext = request.app.state.ctx
    result = await decide_as(ctx, user.principal, job_id, approve=False, reason=reason[:500])
    return await _page(request, user, result)
