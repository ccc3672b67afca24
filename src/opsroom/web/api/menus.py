"""POST /api/v1/rooms/{room}/choose: answer a menu (a Choices block) with one of its options."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from opsroom.model.messages import Inbound
from opsroom.router.outcome import Outcome
from opsroom.web.api.deps import Ctx, accepting, web_room
from opsroom.web.api.models import Accepted, Problem
from opsroom.web.auth import ApiUser

router = APIRouter(tags=["messages"])


class ChoiceIn(BaseModel):
    """Which menu, and which of its options (0-based, in the order shown)."""

    model_config = ConfigDict(extra="forbid")

    menu_id: str = Field(min_length=1, max_length=200)
    index: int = Field(ge=0, le=10_000)


@router.post(
    "/rooms/{room}/choose",
    status_code=202,
    response_model=Accepted,
    dependencies=[Depends(accepting)],
    responses={422: {"model": Problem}, 503: {"model": Problem}},
)
async def choose(room: str, body: ChoiceIn, ctx: Ctx, user: ApiUser) -> Accepted:
    """Pick an option of a menu the bot offered you; the command continues in the room.

    The choice is echoed to the room; an expired menu (or someone else's) gets a
    warning reply there instead.
    """
    name = web_room(room)
    dispatcher = ctx.engine.dispatcher
    menu = dispatcher.menus.by_id(body.menu_id)
    picked = (
        menu.options[body.index]
        if menu is not None and body.index < len(menu.options)
        else f"option {body.index + 1}"
    )
    echo = await ctx.hub.publish_text(name, author=user.principal, text=f"→ {picked}")
    inbound = Inbound(text=picked, principal=user.principal, room=name, display_name=user.username)

    async def answer() -> Outcome:
        outcome = await dispatcher.choose(inbound, body.menu_id, body.index, ctx.sender_for(name))
        await ctx.observe(outcome)
        return outcome

    ctx.spawn(answer())
    return Accepted(room=name, seq=echo.seq)
