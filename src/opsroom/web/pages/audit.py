"""The audit page: search the trail, page through it, see the chain status, export it."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from starlette.responses import Response

from opsroom.audit_export import entry_dict
from opsroom.web.api.audit import AuditQuery, search, verdict, when
from opsroom.web.auth import PageUser
from opsroom.web.context import WebContext
from opsroom.web.pages.templating import render

router = APIRouter()
# Every action opsroom writes to the trail, as the Action filter offers them.
ACTIONS = (
    ("request", "request (a command was asked for)"),
    ("decision", "decision (refused by policy)"),
    ("approval", "approval (approve or deny)"),
    ("job.start", "job.start"),
    ("job.end", "job.end"),
    ("job.cancel", "job.cancel"),
    ("catalog.deploy", "catalog.deploy (a new catalog version went live)"),
    ("catalog.reject", "catalog.reject (a new catalog version was kept out)"),
    ("catalog.reload", "catalog.reload (someone asked for a reload)"),
)


def action_choices(current: str) -> list[tuple[str, str]]:
    """The Action filter's options; an action from an older link is kept, not dropped."""
    known = [value for value, _ in ACTIONS]
    extra = [(current, current)] if current and current not in known else []
    return [*ACTIONS, *extra]


@router.get("/audit")
async def audit(
    request: Request,
    user: PageUser,
    principal: str = "",
    command: str = "",
    action: str = "",
    q: str = "",
    since: str = "",
    until: str = "",
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """Matching entries newest first, 50 a page, with the chain status and export links."""
    ctx: WebContext = request.app.state.ctx
    error = ""
    try:
        start, end = when(since, "since"), when(until, "until")
    except HTTPException as e:
        error, start, end = str(e.detail), None, None
    query = AuditQuery(principal.strip(), command.strip(), action.strip(), q.strip(), start, end)
    found, older = await search(ctx, query, before=before, limit=50)
    form = {
        "principal": principal,
        "command": command,
        "action": action,
        "q": q,
        "since": since,
        "until": until,
    }
    kept = {k: v for k, v in form.items() if v}
    span = {k: v for k, v in (("since", since), ("until", until)) if v and not error}
    return render(
        request,
        "audit.html",
        user,
        form=form,
        error=error,
        entries=[entry_dict(r) for r in found],
        older_link=f"/audit?{urlencode({**kept, 'before': older})}" if older else None,
        newest_link=f"/audit?{urlencode(kept)}" if before else None,
        chain=await verdict(ctx),
        export_json=f"/api/v1/audit?{urlencode({**span, 'format': 'json'})}",
        export_csv=f"/api/v1/audit?{urlencode({**span, 'format': 'csv'})}",
        actions=action_choices(action.strip()),
        web_url=ctx.engine.settings.catalog.web_url,  # commits link to the repository
        active="audit",
    )
