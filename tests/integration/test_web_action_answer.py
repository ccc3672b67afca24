"""A console action's answer is the decision alone; what follows it is the room's.

The real engine and web context on each store, a real catalog, real job processes: approving
from a page answers with what the decision said, even when the job is queued in the same
breath; the job's room hears everything, in order.
"""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support import async_wait_for

if TYPE_CHECKING:
    from opsroom.web.context import WebContext

ROLES = """
[[roles]]
name = "ops"
members = ["web:*"]
allow = ["*"]

[[roles]]
name = "storage-leads"
members = ["web:bob"]

[runner]
concurrency = 1
"""

SLEEP = """#!/usr/bin/env bash
# @describe Hold the one job slot for a while.
echo holding
sleep 30
"""

WIPE = '''# opsroom: approval = "storage-leads"
"""Wipe a volume (a test script that says what it does at once)."""


def main(volume: str) -> str:
    """Wipe one volume.

    Args:
        volume: The volume to wipe.
    """
    from opsroom import script as ops

    ops.status(f"wiping {volume}")
    ops.status("wipe verified", "success")
    return f"wiped {volume}"
'''


@asynccontextmanager
async def web_context(tmp_path: Path, store_url: str) -> AsyncIterator[WebContext]:
    """The serving process's web context on a two-script catalog and `store_url`."""
    from opsroom.app import App
    from opsroom.config import Settings
    from opsroom.web.app import context_of, create_app

    catalog = tmp_path / "catalog"
    (catalog / "storage").mkdir(parents=True)
    (catalog / "storage" / "wipe.py").write_text(WIPE)
    (catalog / "demo").mkdir()
    (catalog / "demo" / "hold.sh").write_text(SLEEP)
    engine = await App.open(
        Settings.model_validate(tomllib.loads(ROLES)),
        catalog_dir=str(catalog),
        store_url=store_url,
    )
    ctx = context_of(create_app(engine))
    try:
        yield ctx
    finally:
        await asyncio.gather(*ctx.tasks, return_exceptions=True)
        ctx.hub.close()
        await engine.close()


async def test_approving_answers_with_the_decision_and_the_job_speaks_in_its_room(
    tmp_path: Path, store_url: str
) -> None:
    from opsroom.model.jobs import JobState
    from opsroom.render.text import render_reply
    from opsroom.web.actions import act

    async with web_context(tmp_path, store_url) as ctx:
        # The installation's one job slot is taken: the approved job will queue behind it.
        await act(ctx, "web:alice", None, "!demo hold")
        [holder] = [j.id for j in await ctx.store.list_jobs(states=[JobState.RUNNING])]
        asked = await act(ctx, "web:alice", None, "!storage wipe vol9")
        job_id = asked.outcome.job_id
        assert job_id is not None
        assert asked.outcome.outcome == "awaiting_approval"
        job = await ctx.store.get_job(job_id)
        assert job is not None
        after = max((m.seq for m in await ctx.hub.history(job.room)), default=0)
        try:
            approved = await act(ctx, "web:bob", job, f"!approve {job_id}")
            # The page's answer is the decision; "queued", said right after it, is the room's.
            # Not "starting": it waits for the slot first.
            decision = f"✔ job {job_id} storage wipe approved by web:bob"
            assert [render_reply(r) for r in approved.replies] == [decision]
            assert approved.outcome.outcome == "queued"  # behind the job holding the slot
            assert approved.room == job.room
        finally:
            await act(ctx, "web:alice", None, f"!cancel {holder}")

        async def said() -> list[str]:
            events = await ctx.hub.history(job.room, after=after)
            texts = [str(m.payload.get("text", "")) for m in events]
            return texts if any("wiped vol9" in t for t in texts) else []

        # The room heard it all, in order: the decision, the wait, the job's own words.
        heard: list[str] = await async_wait_for(said, what="the job's result in its room")
        assert heard[0] == decision
        assert f"job {job_id} is queued behind job {holder}" in heard[1]
        assert any("wiping vol9" in t for t in heard[2:])


async def test_a_decision_slower_than_the_page_is_answered_as_under_way_not_done(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opsroom.model.jobs import JobState
    from opsroom.web import actions

    async with web_context(tmp_path, store_url) as ctx:
        asked = await actions.act(ctx, "web:alice", None, "!storage wipe vol3")
        job_id = asked.outcome.job_id
        assert job_id is not None
        job = await ctx.store.get_job(job_id)
        assert job is not None
        # The page waits for no answer at all: a server too busy to decide in ACK_WAIT.
        monkeypatch.setattr(actions, "ACK_WAIT", 0.0)
        approved = await actions.act(ctx, "web:bob", job, f"!approve {job_id}")
        # Whatever was decided by then, the answer says it as it is: never an empty answer
        # that a page shows as "done" while the job still waits for its approval.
        assert approved.replies == ()
        said = approved.outcome
        assert said.output == f"under way: what comes of it is said in {job.room}"
        # Its state as the store had it then, in the words of an outcome.
        expected = {
            JobState.AWAITING_APPROVAL: "awaiting_approval",
            JobState.QUEUED: "queued",
            JobState.RUNNING: "running",
        }
        assert said.state in expected
        assert said.outcome == expected[said.state]
        ended = await async_wait_for(
            lambda: _finished(ctx, job_id), what="the approved job to run and end"
        )
        assert ended is JobState.SUCCEEDED


async def _finished(ctx: WebContext, job_id: int) -> object:
    job = await ctx.store.get_job(job_id)
    return job.state if job is not None and job.state.finished else None
