"""Schedules (SPEC §5.7, §9): list them, and add, pause, resume or remove them as chat would.

Every change is said as the `schedule` built-in by the web user, through the dispatcher,
so policy, validation and the audit entry are exactly those of chat. A new schedule is
made in the room named in the request (web rooms; admins may name any room) and its
confirmation is posted there too; pause, resume and remove are said in the console and
told in the schedule's own room.
"""

from __future__ import annotations

import re
import shlex
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from opsroom.errors import ParseError
from opsroom.model.blocks import Reply, Status
from opsroom.model.messages import Inbound
from opsroom.model.schedules import Schedule
from opsroom.policy.rbac import is_admin
from opsroom.render.text import reply_to_dict
from opsroom.router.outcome import Outcome
from opsroom.web.api.deps import Ctx, accepting, web_room
from opsroom.web.api.models import OutcomeOut, Problem
from opsroom.web.auth import ApiUser
from opsroom.web.context import CONSOLE_ROOM, WebContext

router = APIRouter(tags=["schedules"])

ScheduleId = Annotated[int, Path(ge=1, lt=2**31, description="the schedule's number")]
_ROOM = re.compile(r"^[a-z][a-z0-9_-]{0,31}:\S{1,250}$")
_ADDED = re.compile(r"^schedule (\d+) added")
_PROBLEMS: dict[int | str, dict[str, Any]] = {
    403: {"model": Problem},
    404: {"model": Problem},
    422: {"model": Problem},
    503: {"model": Problem},
}


class ScheduleOut(BaseModel):
    """A schedule, its next due times and what its last firing did."""

    id: int
    cron: str
    tz: str
    command: str = Field(description="the command line as typed, without the prefix")
    room: str = Field(description="where it runs and posts")
    creator: str = Field(description="who made it; it runs as them")
    created_at: datetime
    paused: bool
    next: list[datetime] = Field(description="the next three due times (none while paused)")
    last_due: datetime | None
    last_job_id: int | None
    last_result: str
    you_may_change: bool = Field(description="the caller made it or is an admin")


class ScheduleIn(BaseModel):
    """A new schedule: what `schedule add "<cron>" <command> --tz <tz>` says in `room`."""

    model_config = ConfigDict(extra="forbid")

    cron: str = Field(
        min_length=1, max_length=200, description="five fields", examples=["0 7 * * 1-5"]
    )
    command: str = Field(
        min_length=1,
        max_length=4000,
        description="as typed in chat, without the prefix",
        examples=["store status --region emea"],
    )
    tz: str | None = Field(
        None, max_length=64, description="IANA zone; default [bot] timezone", examples=["UTC"]
    )
    room: str = Field(
        "web:general",
        max_length=300,
        description="where it runs and posts: web:<name>; admins may name any room",
    )


class ScheduleDone(OutcomeOut):
    """What the `schedule` built-in answered, and the schedule as it now stands."""

    replies: list[dict[str, Any]]
    schedule: ScheduleOut | None = None


async def admin(ctx: WebContext, principal: str) -> bool:
    """An opsroom admin by the roles (SPEC §6.1), as chat would judge."""
    dispatcher = ctx.engine.dispatcher
    groups = await dispatcher.groups.groups_of(principal)
    return is_admin(principal, ctx.engine.settings, groups=groups)


def schedule_out(ctx: WebContext, schedule: Schedule, *, may_change: bool) -> ScheduleOut:
    """The API form of a schedule."""
    desk = ctx.engine.dispatcher.schedules
    upcoming: list[datetime] = []
    if not schedule.paused:
        try:
            cron = desk.cron_of(schedule)
        except ParseError:
            pass
        else:
            upcoming = cron.upcoming(max(desk.now(), schedule.cursor), 3)
    return ScheduleOut(
        id=schedule.id,
        cron=schedule.cron,
        tz=schedule.tz,
        command=schedule.command,
        room=schedule.room,
        creator=schedule.creator,
        created_at=schedule.created_at,
        paused=schedule.paused,
        next=upcoming,
        last_due=schedule.last_due,
        last_job_id=schedule.last_job_id,
        last_result=schedule.last_result,
        you_may_change=may_change,
    )


async def visible(ctx: WebContext, principal: str) -> list[ScheduleOut]:
    """What `principal` may see: every schedule for an admin, else theirs and web rooms'."""
    everything = await admin(ctx, principal)
    found: list[Schedule] = await ctx.store.schedules()
    return [
        schedule_out(ctx, s, may_change=everything or s.creator == principal)
        for s in found
        if everything or s.creator == principal or s.room.startswith("web:")
    ]


async def say(
    ctx: WebContext, principal: str, room: str, words: str
) -> tuple[Outcome, list[Reply]]:
    """Say `<prefix>schedule <words>` as `principal` in `room`; the outcome and the replies."""
    replies: list[Reply] = []

    async def keep(reply: Reply) -> None:
        replies.append(reply)

    prefix = ctx.engine.settings.bot.prefix
    inbound = Inbound(text=f"{prefix}schedule {words}", principal=principal, room=room)
    outcome = await ctx.engine.dispatcher.handle(inbound, keep)
    await ctx.observe(outcome)
    return outcome, replies


async def change(ctx: WebContext, principal: str, schedule_id: int, verb: str) -> ScheduleDone:
    """`schedule rm|pause|resume N` said in the console (the schedule's room is told)."""
    if await ctx.store.schedule(schedule_id) is None:
        raise HTTPException(404, f"there is no schedule {schedule_id}")
    outcome, replies = await say(ctx, principal, CONSOLE_ROOM, f"{verb} {schedule_id}")
    _raise_refusal(outcome, replies)
    after = await ctx.store.schedule(schedule_id)
    return _done(ctx, outcome, replies, after, may_change=True)


async def add(ctx: WebContext, principal: str, body: ScheduleIn) -> ScheduleDone:
    """`schedule add "<cron>" <command> [--tz TZ]` said in `body.room`."""
    room = await _room(ctx, principal, body.room)
    words = f"add {shlex.quote(body.cron)}"
    if body.tz:
        words += f" --tz {shlex.quote(body.tz)}"
    outcome, replies = await say(ctx, principal, room, f"{words} {body.command}")
    _raise_refusal(outcome, replies)
    made = _added_id(replies)
    schedule = await ctx.store.schedule(made) if made is not None else None
    for reply in replies:
        # The room the schedule posts in hears that it was made, as if said there.
        await ctx.sender_for(room)(reply)
    return _done(ctx, outcome, replies, schedule, may_change=True)


@router.get("/schedules", response_model=list[ScheduleOut])
async def list_schedules(
    ctx: Ctx,
    user: ApiUser,
    room: Annotated[str | None, Query(max_length=300, description="only this room's")] = None,
) -> list[ScheduleOut]:
    """Schedules in id order: every one for an admin, else yours and those of web rooms."""
    found = await visible(ctx, user.principal)
    return [s for s in found if room is None or s.room == room]


@router.get("/schedules/{schedule_id}", response_model=ScheduleOut, responses=_PROBLEMS)
async def get_schedule(schedule_id: ScheduleId, ctx: Ctx, user: ApiUser) -> ScheduleOut:
    """One schedule (404 when it does not exist or is not yours to see)."""
    for schedule in await visible(ctx, user.principal):
        if schedule.id == schedule_id:
            return schedule
    raise HTTPException(404, f"there is no schedule {schedule_id}")


@router.post(
    "/schedules",
    response_model=ScheduleDone,
    status_code=201,
    dependencies=[Depends(accepting)],
    responses=_PROBLEMS,
)
async def create_schedule(body: ScheduleIn, ctx: Ctx, user: ApiUser) -> ScheduleDone:
    """Add a schedule as `schedule add` would; 403 when policy refuses, 422 when invalid."""
    return await add(ctx, user.principal, body)


@router.delete(
    "/schedules/{schedule_id}",
    response_model=ScheduleDone,
    dependencies=[Depends(accepting)],
    responses=_PROBLEMS,
)
async def remove_schedule(schedule_id: ScheduleId, ctx: Ctx, user: ApiUser) -> ScheduleDone:
    """Remove a schedule as `schedule rm N` would (its creator or an admin)."""
    return await change(ctx, user.principal, schedule_id, "rm")


@router.post(
    "/schedules/{schedule_id}/pause",
    response_model=ScheduleDone,
    dependencies=[Depends(accepting)],
    responses=_PROBLEMS,
)
async def pause_schedule(schedule_id: ScheduleId, ctx: Ctx, user: ApiUser) -> ScheduleDone:
    """Pause a schedule as `schedule pause N` would: its due times pass without a run."""
    return await change(ctx, user.principal, schedule_id, "pause")


@router.post(
    "/schedules/{schedule_id}/resume",
    response_model=ScheduleDone,
    dependencies=[Depends(accepting)],
    responses=_PROBLEMS,
)
async def resume_schedule(schedule_id: ScheduleId, ctx: Ctx, user: ApiUser) -> ScheduleDone:
    """Resume a paused schedule as `schedule resume N` would."""
    return await change(ctx, user.principal, schedule_id, "resume")


async def _room(ctx: WebContext, principal: str, room: str) -> str:
    """A web room for anyone; any `adapter:channel` room for admins."""
    if room.startswith("web:") or ":" not in room:
        return web_room(room)
    if not _ROOM.match(room):
        raise HTTPException(422, f"room: expected <adapter>:<channel>, e.g. web:ops (got {room!r})")
    if not await admin(ctx, principal):
        raise HTTPException(403, "only an admin may schedule into a room outside the web chat")
    return room


def _raise_refusal(outcome: Outcome, replies: list[Reply]) -> None:
    if outcome.outcome != "refused":
        return
    text = _first_text(replies) or outcome.output or "refused"
    raise HTTPException(403 if text.startswith("denied") else 422, text)


def _first_text(replies: list[Reply]) -> str:
    for reply in replies:
        for block in reply.blocks:
            if isinstance(block, Status):
                return block.text
    return ""


def _added_id(replies: list[Reply]) -> int | None:
    match = _ADDED.match(_first_text(replies))
    return int(match.group(1)) if match else None


def _done(
    ctx: WebContext,
    outcome: Outcome,
    replies: list[Reply],
    schedule: Schedule | None,
    *,
    may_change: bool,
) -> ScheduleDone:
    return ScheduleDone(
        **outcome.to_dict(),
        replies=[reply_to_dict(r) for r in replies],
        schedule=schedule_out(ctx, schedule, may_change=may_change) if schedule else None,
    )
