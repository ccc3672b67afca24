"""POST /api/v1/messages: say something in a web room, as `web:<user>`; and click buttons."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

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


class ClickIn(BaseModel):
    """A button of a bot message was clicked: the value it carried."""

    model_config = ConfigDict(extra="forbid")

    value: str = Field(min_length=1, max_length=400, pattern=r"^(approve|deny|menu):[\w.:-]+$")
    message_id: str | None = Field(default=None, max_length=40)


class ClickAccepted(BaseModel):
    """The click was taken; replies arrive in the room."""

    accepted: bool = True
    room: str


@router.post(
    "/rooms/{room}/interactions",
    status_code=202,
    response_model=ClickAccepted,
    dependencies=[Depends(accepting)],
    responses={422: {"model": Problem}, 503: {"model": Problem}},
)
async def click(room: str, body: ClickIn, ctx: Ctx, user: ApiUser) -> ClickAccepted:
    """Click a button (`approve:<job>`, `deny:<job>`, `menu:<id>:<index>`) as the caller.

    It is handled like a click on Slack or Matrix: by the web chat's bridge, with the
    same policy as typing the command.
    """
    name = web_room(room)
    ctx.chat.click(user.principal, name, body.value, message_id=body.message_id)
    return ClickAccepted(room=name)
