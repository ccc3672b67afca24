"""Jobs pages: the filtered list (auto-refreshing) and one job with its live log."""

from __future__ import annotations

import shlex
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from starlette.responses import Response

from opsroom.model.commands import CommandSpec, ParamType
from opsroom.model.jobs import Job, JobState
from opsroom.router.builtins import format_duration
from opsroom.router.parser import option_name
from opsroom.web.api.deps import DEFAULT_ROOM
from opsroom.web.auth import PageUser
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
    types = {p.name: p for p in spec.params} if spec else {}
    words = [f"{prefix}{command}"]
    for name, value in params.items():
        p = types.get(name)
        option = option_name(p) if p else "--" + name.replace("_", "-")
        if p is not None and p.type is ParamType.SWITCH:
            if value:
                words.append(option)
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if isinstance(item, bool):
                item = "true" if item else "false"
            words += [option, shlex.quote(str(item))]
    return " ".join(words)


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


async def _log(ctx: WebContext, job: Job) -> dict[str, Any]:
    lines = await ctx.store.output(job.id, tail=LOG_TAIL)
    return {
        "job": job,
        "lines": lines,
        "skipped": max(0, job.output_lines - len(lines)),
        "duration": format_duration(job.duration),
        "attachments": await ctx.store.attachments(job.id),
    }


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
        created=job.created_at.strftime("%Y-%m-%d %H:%M:%S %Z"),
        active="jobs",
        **await _log(ctx, job),
    )


@router.get("/jobs/{job_id}/log")
async def job_log(request: Request, job_id: int, user: PageUser) -> Response:
    """The job's state and output tail (polled by the detail page until the job ends)."""
    ctx: WebContext = request.app.state.ctx
    job = await _job(ctx, job_id)
    return render(request, "jobs_log.html", user, **await _log(ctx, job))
