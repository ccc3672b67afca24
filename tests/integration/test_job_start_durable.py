"""A job is never told started before its start is on disk (issue 15: group commit).

Its creation, claim and `job.start` audit entry are one durable transaction; whatever a
room hears first about a job that runs — "is running", "approved; starting", "(queued by
…) is starting" — comes after it. Checked with a real `opsroom run` killed with SIGKILL
the moment its first reply shows, and in-process by reading the store the moment each
announcement is sent; and 200 jobs started at once all run, none lost, none refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import signal
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from opsroom.config import Settings
from opsroom.model.blocks import Reply
from opsroom.model.jobs import JobState
from opsroom.model.messages import Inbound
from opsroom.render.text import render_reply
from opsroom.runner import tree
from opsroom.runner.tree import job_processes
from opsroom.store import engine as store_engine
from opsroom.testing import Bot
from stores import row, with_store
from support import FIXTURES, OPSROOM, Opsroom, async_wait_for, wait_for

JOBS = FIXTURES / "jobs_catalog"
APPROVALS = FIXTURES / "approval_catalog"
ROLES = [
    {"name": "ops", "members": ["local:alice", "local:bob"], "allow": ["*"]},
    {"name": "storage-leads", "members": ["local:bob"], "allow": ["storage *"]},
]


def first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first line the process writes to stdout, as soon as it is written."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout), f"no reply within {timeout:g} s"
    return proc.stdout.readline()


def test_kill_9_right_after_the_first_reply_leaves_the_start_on_disk(
    workdir: Path, opsroom: Opsroom, store_url: str
) -> None:
    opsroom = with_store(opsroom, store_url)
    # Told "job N is running" at once, while the script still sleeps.
    (workdir / "opsroom.toml").write_text("[runner]\nforeground_seconds = 0.01\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}
    env["OPSROOM_STORE_URL"] = store_url
    proc = subprocess.Popen(
        [OPSROOM, "run", "--json", "--catalog", str(JOBS), "!slow nap --seconds 60"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        reply = first_line(proc, 60)
        proc.send_signal(signal.SIGKILL)  # no chance to write anything more
    finally:
        proc.kill()
        proc.communicate()
    assert "is running" in reply, reply
    job_id = json.loads(reply)["job_id"]
    started = row(store_url, "SELECT process_token FROM jobs WHERE id = :id", id=job_id)
    assert started is not None
    # The script and its `sleep` outlive the killed process until the next opsroom.
    left = wait_for(lambda: script_and_sleep(started["process_token"]), 20, what="the script")

    entries = json.loads(opsroom("audit", "export", "--format", "json").stdout)
    mine = [(e["action"], e["outcome"]) for e in entries if e["job_id"] == job_id]
    assert mine == [("job.start", "")], entries
    assert [e["action"] for e in entries] == ["request", "job.start"]
    verdict = opsroom("audit", "verify", "--json")
    assert verdict.code == 0, verdict.stdout + verdict.stderr
    assert json.loads(verdict.stdout)["entries"] == 2

    # The next opsroom ends what the dead process left running, and says so.
    jobs = opsroom("jobs", "--json", "--catalog", str(JOBS))
    assert jobs.code == 0, jobs.stderr
    assert {j["id"]: j["state"] for j in jobs.json_lines[0]}[job_id] == "interrupted"
    # Collected where this test process adopted them (a subreaper, after in-process jobs).
    wait_for(lambda: reaped(left), 20, what="the job's processes to end")


def script_and_sleep(token: str) -> list[int]:
    """The nap's processes once both run (none before)."""
    pids = job_processes(token)
    return pids if len(pids) >= 2 else []


def reaped(pids: list[int]) -> bool:
    """Whether the pids are gone, reaping those that became this process's children."""
    tree.reap(pids)
    return not any(Path(f"/proc/{pid}").exists() for pid in pids)


def catalog_of_true(root: Path) -> Path:
    """A catalog whose one command, `bench true`, does nothing."""
    (root / "bench").mkdir(parents=True)
    (root / "bench" / "true.sh").write_text("#!/usr/bin/env bash\n# @describe Nothing.\ntrue\n")
    return root


Send = Callable[[Reply], Awaitable[None]]


def watching(bot: Bot, words: str, seen: list[tuple[str, list[str]]]) -> Send:
    """A room that, the moment it is told `words`, reads which audit entries exist."""

    async def send(reply: Reply) -> None:
        text = render_reply(reply)
        if words in text:
            trail = await bot.app.store.audit(limit=20)
            seen.append((text, [f"{r.event.action} {r.event.job_id}" for r in trail]))

    return send


async def test_an_approved_job_is_announced_once_its_start_is_recorded(store_url: str) -> None:
    settings = Settings.model_validate({"roles": ROLES})
    async with Bot.open(catalog_dir=str(APPROVALS), store_url=store_url, settings=settings) as bot:
        asked = await bot.say("!storage wipe vol7", as_="local:alice")
        assert asked.awaiting_approval, asked
        seen: list[tuple[str, list[str]]] = []
        send = watching(bot, "approved by local:bob; starting", seen)
        outcome = await bot.handle(f"!approve {asked.job_id}", send, as_="local:bob")
    assert outcome.state is JobState.SUCCEEDED, outcome
    [(said, trail)] = seen
    assert f"job.start {asked.job_id}" in trail, f"{said!r} was sent before the job's start"


async def test_an_adopted_job_is_announced_once_its_start_is_recorded(
    store_url: str, tmp_path: Path
) -> None:
    catalog = catalog_of_true(tmp_path / "catalog")
    async with Bot.open(catalog_dir=str(catalog), store_url=store_url) as bot:
        dispatcher = bot.app.dispatcher
        queued = Inbound(text="!bench true", principal="local:alice", room="local:r", wait=False)
        told: list[Reply] = []

        async def keep(reply: Reply) -> None:
            told.append(reply)

        left = await dispatcher.handle(queued, keep)
        assert left.outcome == "queued", told
        seen: list[tuple[str, list[str]]] = []
        send = watching(bot, "is starting", seen)
        [outcome] = await dispatcher.adopt_orphans(lambda room: send)
    assert outcome.state is JobState.SUCCEEDED, outcome
    [(said, trail)] = seen
    assert f"job.start {left.job_id}" in trail, f"{said!r} was sent before the job's start"


async def test_an_adopted_job_that_must_wait_its_turn_is_told_queued_not_starting(
    store_url: str, tmp_path: Path
) -> None:
    catalog = catalog_of_true(tmp_path / "catalog")
    (catalog / "bench" / "hold.sh").write_text(
        "#!/usr/bin/env bash\n# @describe Hold the one job slot.\nsleep 60\n"
    )
    settings = Settings.model_validate({"runner": {"concurrency": 1}})
    async with Bot.open(catalog_dir=str(catalog), store_url=store_url, settings=settings) as bot:
        dispatcher = bot.app.dispatcher
        holding = asyncio.create_task(bot.say("!bench hold"))
        [holder] = await async_wait_for(
            lambda: bot.app.store.list_jobs(states=[JobState.RUNNING]), what="the slot taken"
        )
        queued = Inbound(text="!bench true", principal="local:alice", room="local:r", wait=False)
        left = await dispatcher.handle(queued, lambda reply: asyncio.sleep(0))
        assert left.outcome == "queued"
        told: list[str] = []

        async def send(reply: Reply) -> None:
            told.append(render_reply(reply))

        adopting = asyncio.create_task(dispatcher.adopt_orphans(lambda room: send))
        behind = f"job {left.job_id} is queued behind job {holder.id}"
        await async_wait_for(lambda: any(behind in t for t in told), what="its place in line")
        while_queued = list(told)
        await bot.say(f"!cancel {holder.id}")
        [outcome] = await asyncio.wait_for(adopting, 60)
        await holding
    assert outcome.state is JobState.SUCCEEDED, told
    # Told it waits, and nothing that says it started while it did not.
    assert not any("is starting" in t for t in while_queued), while_queued


async def test_200_jobs_started_at_once_all_run_and_are_audited(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite's busy handler lets a writer wait this long for another's lock; shorter than
    # the default 10 s so that any of this process's writers left to wait there rather than
    # in order (as 200 jobs starting at once once did: "database is locked") shows here.
    monkeypatch.setattr(store_engine, "BUSY_TIMEOUT_MS", 1000)
    catalog = catalog_of_true(tmp_path / "catalog")
    settings = Settings.model_validate({"runner": {"concurrency": 500, "per_user": 500}})
    n = 200
    async with Bot.open(catalog_dir=str(catalog), store_url=store_url, settings=settings) as bot:
        said = await asyncio.gather(
            *(bot.say("!bench true", as_="local:alice") for _ in range(n)),
            return_exceptions=True,
        )
        problems = [s for s in said if isinstance(s, BaseException) or not s.succeeded]
        assert problems == [], problems[:3]
        jobs = await bot.app.store.list_jobs(limit=n + 10)
        verdict = await bot.app.store.check_audit()
        trail = await bot.app.store.audit(limit=3 * n + 10)
    assert sorted(j.id for j in jobs) == list(range(1, n + 1))
    assert {j.state for j in jobs} == {JobState.SUCCEEDED}
    assert verdict.intact, verdict.broken
    assert verdict.entries == 3 * n  # each job's request, start and end
    starts = {r.event.job_id for r in trail if r.event.action == "job.start"}
    ends = {r.event.job_id for r in trail if r.event.action == "job.end"}
    assert starts == ends == set(range(1, n + 1))
