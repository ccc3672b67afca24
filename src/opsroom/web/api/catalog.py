"""The catalog: every command, and one command's whole derived spec."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from opsroom.catalog.spec_json import spec_to_dict
from opsroom.web.api.deps import Ctx
from opsroom.web.api.models import CommandOut, Problem

router = APIRouter(tags=["catalog"])


@router.get("/catalog", response_model=list[CommandOut])
async def commands(ctx: Ctx, q: str | None = None, hidden: bool = False) -> list[CommandOut]:
    """Commands by name; `q` keeps those whose name or summary contains every word."""
    words = (q or "").lower().split()
    out = []
    for spec in sorted(ctx.engine.catalog.commands, key=lambda s: s.name):
        if spec.hidden and not hidden:
            continue
        text = f"{spec.name} {' '.join(spec.aliases)} {spec.summary}".lower()
        if all(w in text for w in words):
            out.append(
                CommandOut(
                    name=spec.name,
                    summary=spec.summary,
                    language=spec.language.value,
                    aliases=list(spec.aliases),
                    params=len(spec.params),
                    hidden=spec.hidden,
                    owner=spec.owner,
                )
            )
    return out


@router.get("/catalog/{name}", responses={404: {"model": Problem}})
async def command(name: str, ctx: Ctx) -> dict[str, Any]:
    """The whole derived spec of one command (by name or alias), as `catalog show --format json`."""
    wanted = " ".join(name.lower().split())
    for spec in ctx.engine.catalog.commands:
        if wanted == spec.name or wanted in spec.aliases:
            return spec_to_dict(spec)
    raise HTTPException(404, f"there is no command {name!r}")
