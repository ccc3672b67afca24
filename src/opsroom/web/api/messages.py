"""POST /api/v1/messages: say something in a web room, as `web:<user>`."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from opsroom.web.api.deps import Ctx, accepting, web_room
from opsroom.web.api.models import Accepted, MessageIn, OutcomeOut, Problem
from opsroom.web.auth import ApiUser

router = APIRouter(tags=["messages"])


@router.post(
    "/messages",
    status_code=202,
    response_model=Accepted | OutcomeOut,
    dependencies=[Depends(accepting)],
    responses={200: {"model": OutcomeOut}, 503: {"model": Problem}},
)
async def post_message(
    body: MessageIn,
    ctx: Ctx,
    user: ApiUser,
    wait: bool = Query(False, description="wait for the outcome (job end) and return it"),
) -> Accepted | JSONResponse:
    """Dispatch a message as the caller; replies go to the room (its events stream).

    202 at once, or with `wait=true` 200 and the outcome when the message was handled
    (for a command: when its job ended or awaits approval).
    """
    room = web_room(body.room)
    echo, task = await ctx.say(user.principal, room, body.text, display_name=user.username)
    if not wait:
        return Accepted(room=room, seq=echo.seq)
    # Shielded: a client that hangs up does not cancel the job it started.
    outcome = await asyncio.shield(task)
    return JSONResponse(OutcomeOut(**outcome.to_dict()).model_dump(mode="json"))
