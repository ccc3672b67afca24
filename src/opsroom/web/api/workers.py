"""Workers (SPEC §8, §9): who serves which queue, whether it still beats, what it runs."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from opsroom.model.workers import Worker
from opsroom.web.api.deps import Ctx
from opsroom.web.auth import ApiUser

router = APIRouter(tags=["workers"])


class WorkerOut(BaseModel):
    """One worker as `opsroom workers` lists it."""

    model_config = ConfigDict(frozen=True)

    name: str
    queue: str
    state: str  # live | lost | stopped
    host: str
    os: str
    version: str
    catalog_commit: str | None
    started_at: datetime
    last_heartbeat: datetime
    running_jobs: list[int]


def worker_out(worker: Worker) -> WorkerOut:
    """The API's form of a worker."""
    return WorkerOut(
        name=worker.name,
        queue=worker.queue,
        state=worker.state,
        host=worker.host,
        os=worker.os,
        version=worker.version,
        catalog_commit=worker.catalog_commit,
        started_at=worker.started_at,
        last_heartbeat=worker.last_heartbeat,
        running_jobs=list(worker.running_jobs),
    )


async def current(ctx: Ctx) -> list[WorkerOut]:
    """The workers that have not stopped, by queue and name."""
    return [worker_out(w) for w in await ctx.engine.store.list_workers()]


@router.get("/workers", response_model=list[WorkerOut])
async def list_workers(ctx: Ctx, user: ApiUser) -> list[WorkerOut]:
    """Workers by queue and name (live and lost ones; stopped ones are left out)."""
    return await current(ctx)
