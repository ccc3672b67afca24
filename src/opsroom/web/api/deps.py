"""Helpers the API routers share: the web context and room names."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from opsroom.web.context import WebContext

_ROOM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEFAULT_ROOM = "web:general"


def web_context(request: Request) -> WebContext:
    """The serving process's context."""
    ctx: WebContext = request.app.state.ctx
    return ctx


Ctx = Annotated[WebContext, Depends(web_context)]


def web_room(name: str) -> str:
    """`web:<name>` from `<name>` or `web:<name>`; 422 for anything else."""
    short = name.removeprefix("web:")
    if not _ROOM_NAME.match(short):
        raise HTTPException(
            422,
            f"a web room is web:<name> with letters, digits, '.', '_' or '-' (got {name!r})",
        )
    return f"web:{short}"


def accepting(ctx: Ctx) -> None:
    """503 once the server is shutting down."""
    if not ctx.accepting:
        raise HTTPException(503, "opsroom is shutting down; try again shortly")
