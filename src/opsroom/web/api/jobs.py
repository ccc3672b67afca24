"""Jobs: list with filters, one job with its output tail and files, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response

from opsroom.model.jobs import Job, JobState
from opsroom.render.text import reply_to_dict
from opsroom.web.actions import act
from opsroom.web.api.deps import Ctx, accepting
from opsroom.web.api.models import AttachmentOut, CancelOut, JobDetail, JobOut, OutputLine, Problem
from opsroom.web.auth import ApiUser

router = APIRouter(tags=["jobs"])
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem}}


async def _job(ctx: Ctx, job_id: int) -> Job:
    job = await ctx.store.get_job(job_id) if 0 < job_id < 2**31 else None
    if job is None:
        raise HTTPException(404, f"there is no job {job_id}")
    assert isinstance(job, Job)
    return job


@router.get("/jobs", response_model=list[JobOut])
async def list_jobs(
    ctx: Ctx,
    user: ApiUser,
    state: Annotated[list[JobState] | None, Query(description="repeat for several")] = None,
    command: str | None = None,
    requester: Annotated[str | None, Query(description="a principal, or `me`")] = None,
    before: Annotated[int | None, Query(ge=1, le=2**31, description="page: ids below")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[JobOut]:
    """Jobs, newest first."""
    who = user.principal if requester == "me" else requester
    jobs = await ctx.store.find_jobs(
        states=state, command=command, requester=who, before=before, limit=limit
    )
    return [JobOut.of(j) for j in jobs]


@router.get("/jobs/{job_id}", response_model=JobDetail, responses=_NOT_FOUND)
async def get_job(
    job_id: int, ctx: Ctx, tail: Annotated[int, Query(ge=0, le=10000)] = 200
) -> JobDetail:
    """One job, the last `tail` lines of its output, and its attached files."""
    job = await _job(ctx, job_id)
    lines = await ctx.store.output(job.id, tail=tail)
    files = await ctx.store.attachments(job.id)
    return JobDetail(
        **JobOut.of(job).model_dump(),
        output=[OutputLine(stream=s, text=t) for s, t in lines],
        attachments=[
            AttachmentOut(
                id=aid,
                name=name,
                content_type=ctype,
                size=size,
                url=f"/api/v1/jobs/{job.id}/attachments/{aid}",
            )
            for aid, name, ctype, size in files
        ],
    )


@router.get(
    "/jobs/{job_id}/attachments/{attachment_id}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, **_NOT_FOUND},
)
async def attachment(job_id: int, attachment_id: int, ctx: Ctx) -> Response:
    """Download a file a job attached."""
    job = await _job(ctx, job_id)
    files = {aid: (name, ctype) for aid, name, ctype, _ in await ctx.store.attachments(job.id)}
    data = await ctx.store.attachment_data(attachment_id) if attachment_id in files else None
    if data is None:
        raise HTTPException(404, f"job {job_id} has no file {attachment_id}")
    name, ctype = files[attachment_id]
    safe = name.replace('"', "").replace("\\", "")
    return Response(
        data,
        media_type=ctype,
        headers={
            "Content-Disposition": f'attachment; filename="{safe}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=CancelOut,
    dependencies=[Depends(accepting)],
    responses={**_NOT_FOUND, 503: {"model": Problem}},
)
async def cancel(
    job_id: int,
    ctx: Ctx,
    user: ApiUser,
    wait: Annotated[bool, Query(description="answer when the job has stopped")] = False,
) -> CancelOut:
    """Cancel a job exactly as `!cancel N` would (same policy: requester or admin).

    The job's room hears it as if `!cancel N` had been typed there; the answer comes at
    once, or with `wait` once the job has stopped (or is still stopping after a while).
    """
    job = await _job(ctx, job_id)
    prefix = ctx.engine.settings.bot.prefix
    done = await act(ctx, user.principal, job, f"{prefix}cancel {job.id}", wait=wait)
    return CancelOut(
        **done.outcome.to_dict(),
        replies=[reply_to_dict(r) for r in done.replies],
        room=done.room,
    )
