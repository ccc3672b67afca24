"""Insights from the job history: runs per day, top commands, failure rates, durations."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from opsroom.model.jobs import Job
from opsroom.web.api.deps import Ctx
from opsroom.web.context import WebContext
from opsroom.web.insights import WINDOW_DAYS, Insights, compute

router = APIRouter(tags=["insights"])

_PAGE = 500
_MOST = 200_000  # jobs read at most for one view; a month of a very busy bot


class DayOut(BaseModel):
    """Jobs created on one UTC day."""

    day: date
    runs: int


class CountOut(BaseModel):
    """A command and how often it ran."""

    command: str
    runs: int


class StatsOut(BaseModel):
    """One command's runs, failures and durations (seconds) in the window."""

    command: str
    runs: int
    ended: int
    failures: int
    failure_rate: float | None
    p50: float | None
    p90: float | None
    p99: float | None


class InsightsOut(BaseModel):
    """What the job history of the window says."""

    since: datetime
    until: datetime
    total: int
    runs_per_day: list[DayOut]
    top_commands: list[CountOut]
    commands: list[StatsOut]
    never_used: list[str]

    @classmethod
    def of(cls, found: Insights) -> InsightsOut:
        """From the computed insights."""
        return cls(
            since=found.since,
            until=found.until,
            total=found.total,
            runs_per_day=[DayOut(day=d, runs=n) for d, n in found.runs_per_day],
            top_commands=[CountOut(command=c, runs=n) for c, n in found.top],
            commands=[
                StatsOut(
                    command=s.command,
                    runs=s.runs,
                    ended=s.ended,
                    failures=s.failures,
                    failure_rate=s.failure_rate,
                    p50=s.p50,
                    p90=s.p90,
                    p99=s.p99,
                )
                for s in found.commands
            ],
            never_used=list(found.never_used),
        )


async def recent_jobs(ctx: WebContext, since: datetime) -> list[Job]:
    """Jobs created at or after `since`, newest first, read a page at a time."""
    out: list[Job] = []
    before: int | None = None
    while len(out) < _MOST:
        page: list[Job] = await ctx.store.find_jobs(before=before, limit=_PAGE)
        out.extend(j for j in page if j.created_at >= since)
        # Ids grow with creation time: a page reaching before `since` is the last one.
        if len(page) < _PAGE or page[-1].created_at < since:
            break
        before = page[-1].id
    return out


async def insights(ctx: WebContext, *, days: int = WINDOW_DAYS) -> Insights:
    """Insights for the `days` days ending today, over the real job history."""
    now = datetime.now(UTC)
    since = datetime.combine(now.date() - timedelta(days=days - 1), datetime.min.time(), UTC)
    jobs = await recent_jobs(ctx, since)
    names = [s.name for s in ctx.engine.catalog.commands if not s.hidden]
    return compute(jobs, names, now=now, days=days)


@router.get("/insights", response_model=InsightsOut)
async def get_insights(
    ctx: Ctx, days: Annotated[int, Query(ge=1, le=366)] = WINDOW_DAYS
) -> InsightsOut:
    """Runs per day, top commands, failure rate and duration percentiles per command, and
    catalog commands nobody ran, over the last `days` days (UTC)."""
    return InsightsOut.of(await insights(ctx, days=days))
