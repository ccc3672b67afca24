"""Jobs pages: the filtered list (auto-refreshing) and one job with its live log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request
from starlette.responses import Response

from opsroom.model.commands import CommandSpec
from opsroom.model.jobs import Job, JobState
from opsroom.router.builtins import format_duration
from opsroom.web.api.deps import DEFAULT_ROOM
from opsroom.web.auth import PageUser
from opsroom.web.commandline import typed_command
from opsroom.web.context import WebContext
from opsroom.web.pages.templating import render

router = APIRouter()
LOG_TAIL = 500  # lines the detail page shows; the rest is a download away


def _state(value: str | None) -> list[JobState] | None:
    if not value:
        return None
    try:
        return [JobState(value)]
    except ValueError:
        raise HTTPException(422, f"there is no job state {value!r}") from None


async def _rows(
    ctx: WebContext, state: str | None, command: str | None, requester: str | None, me: str
) -> list[dict[str, Any]]:
    who = me if requester == "me" else (requester or None)
    jobs = await ctx.store.find_jobs(
        states=_state(state), command=command or None, requester=who, before=None, limit=100
    )
    return [_row(j) for j in jobs]


def _row(job: Job) -> dict[str, Any]:
    return {
        "job": job,
        "created": job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        "duration": format_duration(job.duration),
    }


def rerun_text(prefix: str, command: str, params: dict[str, Any], spec: CommandSpec | None) -> str:
    """The chat message that runs `command` again with the same parameters."""
    return typed_command(prefix, command, params, spec)


def _filters(state: str | None, command: str | None, requester: str | None) -> dict[str, Any]:
    return {
        "state": state or "",
        "command": command or "",
        "requester": requester or "",
        "states": [s.value for s in JobState],
    }


Filter = Annotated[str | None, Query(max_length=200)]


@router.get("/jobs")
async def jobs_page(
    request: Request,
    user: PageUser,
    state: Filter = None,
    command: Filter = None,
    requester: Filter = None,
) -> Response:
    """Jobs, newest first, filtered by state, command and requester; refreshes itself."""
    ctx: WebContext = request.app.state.ctx
    rows = await _rows(ctx, state, command, requester, user.principal)
    return render(
        request,
        "jobs.html",
        user,
        rows=rows,
        query=request.url.query,
        active="jobs",
        **_filters(state, command, requester),
    )


@router.get("/jobs/table")
async def jobs_table(
    request: Request,
    user: PageUser,
    state: Filter = None,
    command: Filter = None,
    requester: Filter = None,
) -> Response:
    """The jobs table alone (what the list page polls)."""
    ctx: WebContext = request.app.state.ctx
    rows = await _rows(ctx, state, command, requester, user.principal)
    return render(request, "jobs_table.html", user, rows=rows, query=request.url.query)


async def _job(ctx: WebContext, job_id: int) -> Job:
    job = await ctx.store.get_job(job_id) if 0 < job_id < 2**31 else None
    if job is None:
        raise HTTPException(404, f"there is no job {job_id}")
    assert isinstance(job, Job)
    return job


@dataclass(frozen=True, slots=True)
class Results:
    """What a job reported besides its output lines: the blocks the chat showed."""

    progress: dict[str, Any] | None  # the latest progress event
    statuses: tuple[dict[str, Any], ...]
    tables: tuple[dict[str, Any], ...]


def results(events: list[dict[str, Any]]) -> Results:
    """The job's structured events, as the page shows them: the last progress only."""
    progress = None
    statuses: list[dict[str, Any]] = []
    tables: list[dict[str, Any]] = []
    for event in events:
        kind = event.get("type")
        if kind == "progress":
            progress = event
        elif kind == "status":
            statuses.append(event)
        elif kind == "table":
            tables.append(event)
    return Results(progress, tuple(statuses), tuple(tables))


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if at is not None else ""


async def _log(ctx: WebContext, job: Job) -> dict[str, Any]:
    lines = await ctx.store.output(job.id, tail=LOG_TAIL)
    approval = await ctx.store.approval(job.id)
    waited = None
    if job.started_at is not None:
        waited = (job.started_at - job.created_at).total_seconds()
    # A wait for a person is told however short; a moment in the queue (< 50 ms) is not.
    told = waited is not None and (approval is not None or waited >= 0.05)
    return {
        "job": job,
        "lines": lines,
        "skipped": max(0, job.output_lines - len(lines)),
        "duration": format_duration(job.duration),
        "attachments": await ctx.store.attachments(job.id),
        "results": results(await ctx.store.events(job.id)),
        "approval": approval,
        "started": _when(job.started_at),
        "finished": _when(job.finished_at),
        "waited": format_duration(waited) if told else "",
        "when": _when,
    }


def commit_url(web_url: str | None, commit: str | None, spec: CommandSpec | None) -> str | None:
    """The job's script at the commit it ran, in the repository's web view (`web_url`)."""
    if not web_url or not commit:
        return None
    if spec is None or not spec.path:
        return f"{web_url}/commit/{commit}"
    return f"{web_url}/blob/{commit}/{quote(spec.path)}"


@router.get("/jobs/{job_id}")
async def job_page(request: Request, job_id: int, user: PageUser) -> Response:
    """One job: details, parameters, live log, Cancel and Re-run."""
    ctx: WebContext = request.app.state.ctx
    job = await _job(ctx, job_id)
    spec = ctx.engine.dispatcher.ctx.registry.get(job.command)
    prefix = ctx.engine.settings.bot.prefix
    text = rerun_text(prefix, job.command, dict(job.params), spec)
    if job.dry_run:
        text += " --dry-run"
    return render(
        request,
        "jobs_detail.html",
        user,
        rerun=text,
        rerun_room=job.room if job.room.startswith("web:") else DEFAULT_ROOM,
        created=_when(job.created_at),
        command_line=typed_command(prefix, job.command, dict(job.params), spec),
        chat_room=job.room.removeprefix("web:") if job.room.startswith("web:") else None,
        commit_url=commit_url(ctx.engine.settings.catalog.web_url, job.catalog_commit, spec),
        active="jobs",
        **await _log(ctx, job),
    )


@router.get("/jobs/{job_id}/log")
async def job_log(request: Request, job_id: int, user: PageUser) -> Response:
    """The job's state and output tail (polled by the detail page until the job ends)."""
    ctx: WebContext = request.app.state.ctx
    job = await _job(ctx, job_id)
    return render(request, "jobs_log.html", user, **await _log(ctx, job))
