"""The catalog pages: search as you type, and each command's generated documentation.

Whether someone may run a command is policy's answer (`policy.rbac`), the very function
the chat asks: the pages show what the person would be told in the web chat's room.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import Response

from opsroom.catalog.source import last_change
from opsroom.catalog.spec_json import param_to_dict
from opsroom.model.commands import CommandSpec
from opsroom.policy.rbac import Decision, decide_each, who_may_run
from opsroom.router.parser import usage_line
from opsroom.web.api.deps import DEFAULT_ROOM
from opsroom.web.auth import PageUser
from opsroom.web.context import WebContext
from opsroom.web.pages.templating import render

router = APIRouter()


def search(specs: list[CommandSpec], q: str) -> list[CommandSpec]:
    """Commands whose name, aliases, summary or description contain every word.

    Best first: commands whose name words start with the words typed ("stor stat" finds
    `store status` before `storage migrate`), then by name.
    """
    words = q.lower().split()
    found = []
    for spec in specs:
        text = " ".join((spec.name, *spec.aliases, spec.summary, spec.description)).lower()
        if all(w in text for w in words):
            found.append((-_name_hits(spec, words), spec.name, spec))
    return [spec for *_, spec in sorted(found, key=lambda t: (t[0], t[1]))]


def _name_hits(spec: CommandSpec, words: list[str]) -> int:
    """How many typed words begin a word of the command's name or of one of its aliases."""
    names = [spec.name, *spec.aliases]
    name_words = [w for name in names for w in name.lower().replace("-", " ").split()]
    return sum(1 for w in words if any(n.startswith(w) for n in name_words))


async def decisions(
    ctx: WebContext, principal: str, specs: list[CommandSpec], room: str = DEFAULT_ROOM
) -> dict[str, Decision]:
    """What the chat would answer `principal` asking for each command in `room`."""
    groups = await ctx.engine.dispatcher.groups.groups_of(principal)
    answers = decide_each(principal, room, specs, ctx.engine.settings, groups=groups)
    return {spec.name: answer for spec, answer in zip(specs, answers, strict=True)}


def _ctx(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.ctx
    return ctx


def _listed(ctx: WebContext) -> list[CommandSpec]:
    return [s for s in ctx.engine.catalog.commands if not s.hidden]


@router.get("/catalog")
async def catalog(request: Request, user: PageUser, q: str = "") -> Response:
    """Every command; with htmx, only the list for the words typed so far."""
    ctx = _ctx(request)
    found = search(_listed(ctx), q)
    partial = request.headers.get("HX-Request") == "true"
    name = "catalog_list.html" if partial else "catalog.html"
    answers = await decisions(ctx, user.principal, found)
    return render(
        request,
        name,
        user,
        commands=found,
        refused={n: d.reason for n, d in answers.items() if not d.allowed},
        room=DEFAULT_ROOM,
        q=q,
        total=len(_listed(ctx)),
        deploy=ctx.engine.deployer.status(),  # a failed fetch or a rejected version, said
        active="catalog",
    )


@router.get("/catalog/{name}")
async def command(request: Request, user: PageUser, name: str) -> Response:
    """One command's documentation, derived from its script."""
    ctx = _ctx(request)
    wanted = " ".join(name.lower().split())
    spec = next(
        (s for s in ctx.engine.catalog.commands if wanted == s.name or wanted in s.aliases), None
    )
    if spec is None:
        raise HTTPException(404, f"there is no command {name!r}")
    settings = ctx.engine.settings
    prefix = settings.bot.prefix
    root = ctx.engine.dispatcher.ctx.catalog_root
    usage = usage_line(spec, prefix)
    [yours] = (await decisions(ctx, user.principal, [spec])).values()
    # `git log` is the catalog's to run, and blocking: off the event loop.
    change = await asyncio.to_thread(last_change, root, spec.path)
    return render(
        request,
        "command.html",
        user,
        spec=spec,
        usage=usage,
        params=[param_to_dict(p) for p in spec.params],
        who=who_may_run(spec, settings),
        yours=yours,
        room=DEFAULT_ROOM,
        change=change,
        notes=ctx.engine.dispatcher.spec_notes(spec),  # e.g. its interpreter is missing here
        prefix=prefix,
        active="catalog",
        chat_link=f"/chat/{DEFAULT_ROOM.removeprefix('web:')}?say={quote(f'{prefix}{spec.name} ')}",
    )
