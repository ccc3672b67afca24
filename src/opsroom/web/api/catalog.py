"""The catalog: every command, and one command's whole derived spec."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from opsroom.catalog.spec_json import spec_to_dict
from opsroom.web.api.deps import DEFAULT_ROOM, Ctx
from opsroom.web.api.models import CommandOut, Problem
from opsroom.web.auth import ApiUser
from opsroom.web.pages.catalog import decisions  # the page's answer, word for word

router = APIRouter(tags=["catalog"])


@router.get("/catalog", response_model=list[CommandOut])
async def commands(
    ctx: Ctx,
    user: ApiUser,
    q: str | None = None,
    hidden: bool = False,
) -> list[CommandOut]:
    """Commands by name; `q` keeps those whose name or summary contains every word.

    Each says whether the caller may run it in the web chat's room (`runnable`) and, when
    not, what the chat would answer there (`refused`): policy's answer, as the page shows it.
    """
    words = (q or "").lower().split()
    found = []
    for spec in sorted(ctx.engine.catalog.commands, key=lambda s: s.name):
        if spec.hidden and not hidden:
            continue
        text = f"{spec.name} {' '.join(spec.aliases)} {spec.summary}".lower()
        if all(w in text for w in words):
            found.append(spec)
    answers = await decisions(ctx, user.principal, found, DEFAULT_ROOM)
    return [
        CommandOut(
            name=spec.name,
            summary=spec.summary,
            language=spec.language.value,
            aliases=list(spec.aliases),
            params=len(spec.params),
            hidden=spec.hidden,
            owner=spec.owner,
            runnable=answers[spec.name].allowed,
            refused=None if answers[spec.name].allowed else answers[spec.name].reason,
        )
        for spec in found
    ]


@router.get("/catalog/{name}", responses={404: {"model": Problem}})
async def command(name: str, ctx: Ctx) -> dict[str, Any]:
    """The whole derived spec of one command (by name or alias), as `catalog show --format json`."""
    wanted = " ".join(name.lower().split())
    for spec in ctx.engine.catalog.commands:
        if wanted == spec.name or wanted in spec.aliases:
            return spec_to_dict(spec)
    raise HTTPException(404, f"there is no command {name!r}")
