"""The insights page: charts of the real job history, drawn on the server as SVG."""

from __future__ import annotations

from fastapi import APIRouter, Request
from markupsafe import Markup
from starlette.responses import Response

from opsroom.web.api.insights import insights
from opsroom.web.auth import PageUser
from opsroom.web.charts import bar_chart, hbar_chart
from opsroom.web.context import WebContext
from opsroom.web.insights import WINDOW_DAYS
from opsroom.web.pages.templating import render

router = APIRouter()


@router.get("/insights")
async def insights_page(request: Request, user: PageUser) -> Response:
    """Runs per day, top commands, failure rates, durations and never-used commands."""
    ctx: WebContext = request.app.state.ctx
    found = await insights(ctx, days=WINDOW_DAYS)
    rated = [s for s in found.commands if s.failure_rate is not None]
    rated.sort(key=lambda s: (-(s.failure_rate or 0), s.command))
    timed = [s for s in found.commands if s.p50 is not None]
    charts = {
        "days": bar_chart(
            [(d.strftime("%m-%d"), n) for d, n in found.runs_per_day],
            chart_id="chart-runs-per-day",
            title=f"Runs per day, last {WINDOW_DAYS} days",
        ),
        "top": hbar_chart(
            list(found.top), chart_id="chart-top-commands", title="Most run commands", width=460
        ),
        "failures": hbar_chart(
            [(s.command, round(100 * (s.failure_rate or 0), 1)) for s in rated],
            chart_id="chart-failure-rate",
            title="Failure rate per command",
            unit="%",
            width=460,
            max_value=100,
        ),
        "p90": hbar_chart(
            [(s.command, round(s.p90 or 0, 2)) for s in timed],
            chart_id="chart-duration-p90",
            title="Duration p90 per command (seconds)",
            unit="s",
        ),
    }
    return render(
        request,
        "insights.html",
        user,
        found=found,
        timed=timed,
        # The charts escape every label themselves (web.charts).
        charts={k: Markup(v) for k, v in charts.items()},  # noqa: S704
        days=WINDOW_DAYS,
        active="insights",
    )
