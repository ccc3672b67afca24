"""Web chat rooms: list, history, and the live event stream (SSE)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from opsroom.web.api.deps import DEFAULT_ROOM, Ctx, web_room
from opsroom.web.api.models import RoomEvent, RoomOut
from opsroom.web.hub import HISTORY, event_dict
from opsroom.web.sse import sse_event

router = APIRouter(tags=["rooms"])


@router.get("/rooms", response_model=list[RoomOut])
async def rooms(ctx: Ctx) -> list[RoomOut]:
    """Web rooms with history, most recently active first (web:general always)."""
    names = await ctx.store.web_rooms(prefix="web:")
    if DEFAULT_ROOM not in names:
        names.append(DEFAULT_ROOM)
    return [RoomOut(room=r, name=r.removeprefix("web:")) for r in names]


@router.get("/rooms/{room}/messages", response_model=list[RoomEvent])
async def messages(
    room: str,
    ctx: Ctx,
    after: int = Query(0, ge=0, le=2**62, description="only events with a higher seq"),
    limit: int = Query(HISTORY, ge=1, le=1000),
) -> list[dict[str, object]]:
    """The room's history, oldest first: after `after`, or else the newest `limit`."""
    history = await ctx.hub.history(web_room(room), after=after, limit=limit)
    return [event_dict(m) for m in history]


@router.get(
    "/rooms/{room}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}},
)
async def events(
    room: str,
    ctx: Ctx,
    after: int | None = Query(None, ge=0, le=2**62, description="replay events after this seq"),
    last_event_id: str | None = Header(None, alias="Last-Event-ID"),
) -> StreamingResponse:
    """Live events of the room as SSE (`id:` is the seq; resume with Last-Event-ID)."""
    name = web_room(room)
    if last_event_id is not None and last_event_id.strip().isdigit():
        after = int(last_event_id.strip())

    async def stream() -> AsyncIterator[str]:
        yield ": connected\n\n"
        async for message in ctx.hub.follow(name, after=after, heartbeat=ctx.heartbeat):
            if message is None:
                yield ": keep-alive\n\n"
            else:
                yield sse_event(event_dict(message), event_id=message.seq)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
