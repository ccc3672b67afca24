"""The web chat: rooms, the live message stream, and a message box with command completion."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from opsroom.router.parser import usage_line
from opsroom.web.accounts import has_demo_roles
from opsroom.web.api.deps import DEFAULT_ROOM, web_room
from opsroom.web.auth import PageUser
from opsroom.web.connections import adapter_statuses
from opsroom.web.context import WebContext
from opsroom.web.pages.templating import render

router = APIRouter()
SAY_LIMIT = 8000  # the message box's maxlength


@dataclass(frozen=True, slots=True)
class Completion:
    """One command the message box offers: what to type, and how to call it."""

    value: str
    usage: str
    summary: str


def completions(ctx: WebContext) -> list[Completion]:
    """Every visible command (built-ins too), with its usage line, sorted by name."""
    prefix = ctx.engine.settings.bot.prefix
    specs = sorted(
        (s for s in ctx.engine.dispatcher.ctx.registry if not s.hidden), key=lambda s: s.name
    )
    return [Completion(f"{prefix}{s.name}", usage_line(s, prefix), s.summary) for s in specs]


def suggestions(ctx: WebContext) -> list[str]:
    """A few commands worth trying in an empty room: help, and some of the catalog."""
    prefix = ctx.engine.settings.bot.prefix
    names = {s.name for s in ctx.engine.dispatcher.ctx.registry if not s.hidden}
    picked = [f"{prefix}help"]
    # The bundled examples' friendliest commands first, when this catalog has them.
    for name in ("store status 42", "network status dc1", "jobs"):
        if name.rsplit(" ", 1)[0] in names or name in names:
            picked.append(f"{prefix}{name}")
    if has_demo_roles(ctx.engine.settings) and "storage decommission" in names:
        # The approvals demo of embedded defaults: a second account approves it.
        picked.append(f"{prefix}storage decommission netapp-legacy")
    return picked


@router.get("/chat")
async def chat_default(user: PageUser, room: str | None = None) -> Response:
    """The default room, or the room named in `?room=` (the "open a room" form)."""
    target = web_room(room) if room and room.strip() else DEFAULT_ROOM
    return RedirectResponse(f"/chat/{target.removeprefix('web:')}", status_code=303)


@router.get("/partials/adapters")
async def adapters_strip(request: Request, user: PageUser) -> Response:
    """The chat page's adapter status strip alone (htmx polls it)."""
    ctx: WebContext = request.app.state.ctx
    return render(request, "adapters_strip.html", user, adapters=adapter_statuses(ctx))


@router.get("/chat/{room}")
async def chat(request: Request, room: str, user: PageUser, say: str = "") -> Response:
    """One web room: its history and live events, and a box to talk to the bot.

    `?say=` puts a message in the box, unsent (the catalog's "Run in chat" link).
    """
    ctx: WebContext = request.app.state.ctx
    name = web_room(room)
    rooms = [r.removeprefix("web:") for r in await ctx.store.web_rooms(prefix="web:")]
    short = name.removeprefix("web:")
    for extra in (DEFAULT_ROOM.removeprefix("web:"), short):
        if extra not in rooms:
            rooms.append(extra)
    return render(
        request,
        "chat.html",
        user,
        room=name,
        room_name=short,
        rooms=rooms,
        prefix=ctx.engine.settings.bot.prefix,
        completions=completions(ctx),
        adapters=adapter_statuses(ctx),
        say=say[:SAY_LIMIT],
        suggestions=suggestions(ctx),
        active="chat",
    )
