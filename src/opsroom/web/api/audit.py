"""The audit trail: search it a page at a time, export it (JSON or CSV), check its chain."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from opsroom.audit_export import FORMATS, entry_dict, export_chunks, parse_when, verdict_dict
from opsroom.model.audit import AuditRecord
from opsroom.web.api.deps import Ctx
from opsroom.web.api.models import Problem
from opsroom.web.context import WebContext

router = APIRouter(tags=["audit"])

_WHEN = "an ISO date/time (UTC unless it says) or an age like 7d, 24h, 30m"
_MEDIA = {"json": "application/json", "csv": "text/csv; charset=utf-8"}


class BrokenOut(BaseModel):
    """The first entry that breaks the chain."""

    id: int
    problem: str
    message: str


class VerdictOut(BaseModel):
    """The chain check, as `opsroom audit verify --json` prints it."""

    intact: bool
    entries: int
    last_id: int | None
    last_at: str | None
    head: str
    anchor: str | None
    broken: BrokenOut | None


class EntryOut(BaseModel):
    """One audit entry."""

    id: int
    at: str
    action: str
    principal: str
    room: str
    command: str
    params: dict[str, Any] | None
    job_id: int | None
    outcome: str
    reason: str
    catalog_commit: str | None
    script_hash: str | None
    prev_hash: str
    hash: str


class EntriesOut(BaseModel):
    """A page of matching entries, newest first; `older` pages on (`before=`)."""

    entries: list[EntryOut]
    older: int | None


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """What to look for: every given field must match (text fields: contains, any case)."""

    principal: str = ""
    command: str = ""
    action: str = ""
    text: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, record: AuditRecord) -> bool:
        """Whether `record` is one the query asks for."""
        e = record.event
        if self.principal and self.principal.lower() not in e.principal.lower():
            return False
        if self.command and self.command.lower() not in e.command.lower():
            return False
        if self.action and self.action.lower() != e.action.lower():
            return False
        if self.text:
            blob = " ".join(
                (e.action, e.principal, e.room, e.command, e.outcome, e.reason, str(e.job_id or ""))
            )
            if self.text.lower() not in blob.lower():
                return False
        return True


def when(value: str | None, name: str) -> datetime | None:
    """A query parameter as a UTC time; 422 naming it when it is not one."""
    if not value or not value.strip():
        return None
    try:
        return parse_when(value, now=datetime.now(UTC))
    except ValueError as e:  # an age reaching past year 1 included
        raise HTTPException(422, f"{name}: {e}") from None


async def search(
    ctx: WebContext, query: AuditQuery, *, before: int | None = None, limit: int = 50
) -> tuple[list[AuditRecord], int | None]:
    """The newest `limit` matching entries below id `before`, and where the next page starts."""
    # The store reads the trail oldest first; keep the last matches seen.
    window: deque[AuditRecord] = deque(maxlen=limit + 1)
    async for record in ctx.store.iter_audit(since=query.since, until=query.until):
        if before is not None and record.id >= before:
            break
        if query.matches(record):
            window.append(record)
    found = list(window)
    older = None
    if len(found) > limit:
        found = found[1:]
        older = found[0].id
    return list(reversed(found)), older


async def verdict(ctx: WebContext) -> VerdictOut:
    """The chain status now."""
    return VerdictOut.model_validate(verdict_dict(await ctx.store.check_audit()))


@router.get(
    "/audit",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/json": {}, "text/csv": {}}},
        422: {"model": Problem},
    },
)
async def export(
    ctx: Ctx,
    since: Annotated[str | None, Query(description=f"entries at or after: {_WHEN}")] = None,
    until: Annotated[str | None, Query(description=f"entries before: {_WHEN}")] = None,
    format: Annotated[str, Query(pattern="^(json|csv)$", description="json or csv")] = "json",
) -> StreamingResponse:
    """Export audit entries oldest first, streamed, as `opsroom audit export` writes them."""
    start, end = when(since, "since"), when(until, "until")
    assert format in FORMATS
    chunks = export_chunks(ctx.store.iter_audit(since=start, until=end), format)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        chunks,
        media_type=_MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="opsroom-audit-{stamp}.{format}"'},
    )


@router.get("/audit/entries", response_model=EntriesOut, responses={422: {"model": Problem}})
async def entries(
    ctx: Ctx,
    principal: str = "",
    command: str = "",
    action: str = "",
    q: Annotated[str, Query(description="text anywhere in the entry")] = "",
    since: Annotated[str | None, Query(description=_WHEN)] = None,
    until: Annotated[str | None, Query(description=_WHEN)] = None,
    before: Annotated[int | None, Query(ge=1, description="page: ids below")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> EntriesOut:
    """Matching entries, newest first, a page at a time."""
    query = AuditQuery(principal, command, action, q, when(since, "since"), when(until, "until"))
    found, older = await search(ctx, query, before=before, limit=limit)
    return EntriesOut(entries=[EntryOut(**entry_dict(r)) for r in found], older=older)


@router.get("/audit/verify", response_model=VerdictOut)
async def verify(ctx: Ctx) -> VerdictOut:
    """Recompute the hash chain: intact, or the first broken entry and what is wrong with it."""
    return await verdict(ctx)
