"""The catalog pages: search as you type, and each command's generated documentation."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import Response

from opsroom.catalog.spec_json import param_to_dict
from opsroom.config import Settings
from opsroom.model.commands import CommandSpec, Language
from opsroom.router.parser import usage_line
from opsroom.web.auth import PageUser
from opsroom.web.context import WebContext
from opsroom.web.pages.templating import render

router = APIRouter()


@dataclass(frozen=True, slots=True)
class RoleGrant:
    """A role that may run a command, and where or with what values only."""

    role: str
    members: tuple[str, ...]
    rooms: tuple[str, ...] | None
    where: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True, slots=True)
class Change:
    """When the script last changed: a commit, or only the file's time outside git."""

    commit: str | None
    author: str | None
    at: datetime


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


def who_may_run(spec: CommandSpec, settings: Settings) -> list[RoleGrant]:
    """The roles whose `allow` matches the command and whose `deny` does not."""
    grants = []
    names = {p.name.casefold(): p.name for p in spec.params}
    for role in settings.roles:
        if any(fnmatchcase(spec.name, d) for d in role.deny):
            continue
        if not any(fnmatchcase(spec.name, a) for a in role.allow):
            continue
        where = tuple(
            (names[k.casefold()], tuple(v)) for k, v in role.where.items() if k.casefold() in names
        )
        rooms = tuple(role.rooms) if role.rooms is not None else None
        grants.append(RoleGrant(role.name, tuple(role.members), rooms, where))
    return grants


async def last_change(root: Path, path: str) -> Change | None:
    """The last commit touching `path` in the catalog's git checkout, else the file's mtime."""
    if not path:
        return None
    try:
        proc = await asyncio.create_subprocess_exec(
            "git",
            "log",
            "-1",
            "--format=%H%x00%an%x00%aI",
            "--",
            path,
            cwd=root,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=10)
    except (OSError, TimeoutError):
        out = b""
    fields = out.decode(errors="replace").strip().split("\0")
    if len(fields) == 3 and fields[0]:
        return Change(fields[0], fields[1], datetime.fromisoformat(fields[2]))
    try:
        mtime = (root / path).stat().st_mtime
    except OSError:
        return None
    return Change(None, None, datetime.fromtimestamp(mtime, UTC))


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
    return render(
        request,
        name,
        user,
        commands=found,
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
    root: Path = ctx.engine.dispatcher.ctx.catalog_root
    usage = usage_line(spec, prefix)
    no_pwsh = spec.language is Language.POWERSHELL and shutil.which("pwsh") is None
    return render(
        request,
        "command.html",
        user,
        spec=spec,
        usage=usage,
        params=[param_to_dict(p) for p in spec.params],
        grants=who_may_run(spec, settings),
        roles_configured=bool(settings.roles),
        change=await last_change(root, spec.path),
        no_pwsh=no_pwsh,
        prefix=prefix,
        active="catalog",
        chat_link=f"/chat/general?say={quote(f'{prefix}{spec.name} ')}",
    )
