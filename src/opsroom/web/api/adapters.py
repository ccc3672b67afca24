"""Chat adapters and their connection state (the console's status strip reads the same)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from opsroom.web.api.deps import Ctx
from opsroom.web.connections import adapter_statuses

router = APIRouter(tags=["adapters"])


class AdapterOut(BaseModel):
    """One chat adapter of this server."""

    name: str = Field(description="the platform: web, slack, matrix, irc, ...")
    state: Literal["connecting", "connected", "disconnected", "closed"]
    waiting: int = Field(description="replies held until the platform is reachable again")


@router.get("/adapters", response_model=list[AdapterOut])
async def adapters(ctx: Ctx) -> list[AdapterOut]:
    """Every running chat adapter with its connection state, the web chat first."""
    return [
        AdapterOut.model_validate({"name": s.name, "state": s.state, "waiting": s.waiting})
        for s in adapter_statuses(ctx)
    ]
