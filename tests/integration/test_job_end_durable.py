"""A job's end is one durable transaction, and the room hears of it only after (issue 15).

The end (state, exit code, error), the job's last output lines and its `job.end` audit
entry commit together, before the final reply is sent: an `opsroom run` killed with SIGKILL
the moment its final reply shows leaves all of them on disk. When the audit entry cannot be
written (a trigger in the store refuses it), nothing of the end is kept — the job stays
`running`, nobody is told — and the supervisor retries until the store takes it. The same
holds for jobs that end without running: a missing secret, a refusal before the start.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import selectors
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from opsroom.config import Settings
from opsroom.errors import StoreError
from opsroom.model.blocks import Reply
from opsroom.model.jobs import JobState
from opsroom.render.text import render_reply
from opsroom.testing import Bot
from stores import backend_of, raw_sql, row, with_store
from support import FIXTURES, OPSROOM, Opsroom, async_wait_for

JOBS = FIXTURES / "jobs_catalog"

REFUSE_JOB_END = {
    "sqlite": (
        "CREATE TRIGGER refuse_job_end BEFORE INSERT ON audit WHEN NEW.action = 'job.end' "
        "BEGIN SELECT RAISE(ABORT, 'job.end refused by the test'); END",
    ),
    "postgresql": (
        "CREATE FUNCTION refuse_job_end() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.action = 'job.end' THEN RAISE EXCEPTION 'job.end refused by the test'; "
        "END IF; RETURN NEW; END $$",
        "CREATE TRIGGER refuse_job_end BEFORE INSERT ON audit FOR EACH ROW "
        "EXECUTE FUNCTION refuse_job_end()",
    ),
}
ALLOW_JOB_END = {
    "sqlite": ("DROP TRIGGER refuse_job_end",),
    "postgresql": (
        "DROP TRIGGER refuse_job_end ON audit",
        "DROP FUNCTION refuse_job_end()",
    ),
}

PRINTS_AND_FAILS = """#!/usr/bin/env bash
# @describe Print two lines, then fail.
echo "first line"
echo "second line"
exit 3
"""

NEEDS_A_SECRET = """#!/usr/bin/env bash
# @describe Needs a secret nobody set.
# opsroom: secrets = ["ABSENT"]
echo "never runs"
"""


def first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first line the process writes to stdout, as soon as it is written."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout), f"no reply within {timeout:g} s"
    return proc.stdout.readline()


def test_kill_9_right_after_the_final_reply_leaves_the_end_and_its_entry_on_disk(
    workdir: Path, opsroom: Opsroom, store_url: str
) -> None:
    opsroom = with_store(opsroom, store_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}
    env["OPSROOM_STORE_URL"] = store_url
    proc = subprocess.Popen(
        [OPSROOM, "run", "--json", "--catalog", str(JOBS), "!slow nap --seconds 0"],
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
    assert "slow nap: succeeded" in reply, reply
    job_id = json.loads(reply)["job_id"]

    # Read as it is on disk, before any opsroom could mark a `running` job interrupted.
    ended = row(
        store_url,
        "SELECT state, exit_code, output_lines FROM jobs WHERE id = :id",
        id=job_id,
    )
    assert ended == {"state": "succeeded", "exit_code": 0, "output_lines": 2}
    kept = row(store_url, "SELECT COUNT(*) AS n FROM job_output WHERE job_id = :id", id=job_id)
    assert kept == {"n": 2}
    entry = row(
        store_url,
        "SELECT outcome FROM audit WHERE action = 'job.end' AND job_id = :id",
        id=job_id,
    )
    assert entry == {"outcome": "succeeded"}, "the end was told before its entry was kept"

    entries = json.loads(opsroom("audit", "export", "--format", "json").stdout)
    assert [(e["action"], e["job_id"]) for e in entries] == [
        ("request", None),
        ("job.start", job_id),
        ("job.end", job_id),
    ]
    verdict = opsroom("audit", "verify", "--json")
    assert verdict.code == 0, verdict.stdout + verdict.stderr
    assert json.loads(verdict.stdout)["entries"] == 3


class _Retries(logging.Handler):
    """Counts the supervisor's "could not keep the end of job N yet" warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Count a retry of a job's end; other warnings do not count."""
        if record.getMessage().startswith("could not keep the end of job"):
            self.count += 1


@contextmanager
def retries_counted() -> Iterator[_Retries]:
    """The supervisor's retries of a job's end, counted while the block runs."""
    handler = _Retries()
    log = logging.getLogger("opsroom.jobs")
    log.addHandler(handler)
    try:
        yield handler
    finally:
        log.removeHandler(handler)


def catalog(root: Path) -> Path:
    """`t fail` prints two lines and exits 3; `t secret` needs a secret that is not set."""
    (root / "t").mkdir(parents=True)
    (root / "t" / "fail.sh").write_text(PRINTS_AND_FAILS)
    (root / "t" / "secret.sh").write_text(NEEDS_A_SECRET)
    return root


async def end_and_trail(bot: Bot, job_id: int) -> tuple[JobState, list[str]]:
    """The job's state and its audit entries' actions, as the store has them now."""
    job = await bot.job(job_id)
    trail = await bot.app.store.audit(limit=50)
    return job.state, [r.event.action for r in reversed(trail) if r.event.job_id == job_id]


async def test_an_end_whose_entry_is_refused_keeps_nothing_and_is_retried(
    store_url: str, tmp_path: Path
) -> None:
    backend = backend_of(store_url)
    async with Bot.open(catalog_dir=str(catalog(tmp_path / "catalog")), store_url=store_url) as bot:
        told: list[tuple[str, JobState, list[str]]] = []

        async def send(reply: Reply) -> None:
            if reply.job_id is not None and "t fail:" in render_reply(reply):
                # What the store holds at the moment the room is told.
                state, actions = await end_and_trail(bot, reply.job_id)
                told.append((render_reply(reply), state, actions))

        raw_sql(store_url, *REFUSE_JOB_END[backend])
        with retries_counted() as retries:
            asked = asyncio.create_task(bot.handle("!t fail", send))
            await async_wait_for(lambda: retries.count >= 2, what="two refused ends")
            [job] = await bot.app.store.find_jobs()
            state, actions = await end_and_trail(bot, job.id)
            assert state is JobState.RUNNING, "the end was kept without its audit entry"
            assert actions == ["job.start"]
            assert job.exit_code is None
            assert job.finished_at is None
            assert told == [], "the room was told of an end that is not on disk"
            assert not asked.done()

            raw_sql(store_url, *ALLOW_JOB_END[backend])
            outcome = await asyncio.wait_for(asked, timeout=60)

        assert (outcome.state, outcome.exit_code) == (JobState.FAILED, 3), outcome
        assert outcome.output == "first line\nsecond line"
        [(reply, state_when_told, actions_when_told)] = told
        assert "t fail: failed (exit code 3)" in reply, reply
        assert state_when_told is JobState.FAILED
        assert actions_when_told == ["job.start", "job.end"]
        ended = await bot.job(job.id)
        assert (ended.state, ended.exit_code, ended.output_lines) == (JobState.FAILED, 3, 2)
        assert await bot.app.store.output(job.id) == [
            ("stdout", "first line"),
            ("stdout", "second line"),
        ]
        [entry] = [r for r in await bot.app.store.audit(limit=50) if r.event.action == "job.end"]
        assert (entry.event.job_id, entry.event.outcome) == (job.id, "failed")
        verdict = await bot.app.store.check_audit()
    assert verdict.intact, verdict.broken
    assert verdict.entries == 3


async def test_a_job_failed_before_its_start_is_told_once_its_end_and_entry_are_kept(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = backend_of(store_url)
    monkeypatch.delenv("OPSROOM_TEST_ABSENT_SECRET", raising=False)
    settings = Settings.model_validate({"secrets": {"ABSENT": "env:OPSROOM_TEST_ABSENT_SECRET"}})
    root = catalog(tmp_path / "catalog")
    async with Bot.open(catalog_dir=str(root), store_url=store_url, settings=settings) as bot:
        told: list[tuple[str, JobState, list[str]]] = []

        async def send(reply: Reply) -> None:
            if reply.job_id is not None and "failed" in render_reply(reply):
                state, actions = await end_and_trail(bot, reply.job_id)
                told.append((render_reply(reply), state, actions))

        raw_sql(store_url, *REFUSE_JOB_END[backend])
        with retries_counted() as retries:
            asked = asyncio.create_task(bot.handle("!t secret", send))
            await async_wait_for(lambda: retries.count >= 1, what="a refused end")
            [job] = await bot.app.store.find_jobs()
            # Claimed (no entry yet: its start was never audited, it never started).
            assert await end_and_trail(bot, job.id) == (JobState.RUNNING, [])
            assert told == []
            raw_sql(store_url, *ALLOW_JOB_END[backend])
            outcome = await asyncio.wait_for(asked, timeout=60)
        assert outcome.state is JobState.FAILED, outcome
        [(reply, state_when_told, actions_when_told)] = told
        assert "t secret: failed" in reply, reply
        assert (state_when_told, actions_when_told) == (JobState.FAILED, ["job.end"])
        verdict = await bot.app.store.check_audit()
    assert verdict.intact, verdict.broken


async def test_a_job_ended_unstarted_keeps_its_end_only_with_its_entry(
    store_url: str, tmp_path: Path
) -> None:
    backend = backend_of(store_url)
    root = catalog(tmp_path / "catalog")
    async with Bot.open(catalog_dir=str(root), store_url=store_url) as bot:
        supervisor = bot.app.dispatcher.supervisor
        queued = await bot.app.store.create_job(
            command="t fail", params={}, requester="local:alice", room="local:r"
        )
        raw_sql(store_url, *REFUSE_JOB_END[backend])
        with pytest.raises(StoreError, match=r"job\.end refused by the test"):
            await supervisor.end_unstarted(queued, "its command left the catalog")
        assert await end_and_trail(bot, queued.id) == (JobState.QUEUED, [])

        raw_sql(store_url, *ALLOW_JOB_END[backend])
        ended = await supervisor.end_unstarted(queued, "its command left the catalog")
        assert (ended.state, ended.error) == (JobState.FAILED, "its command left the catalog")
        assert await end_and_trail(bot, queued.id) == (JobState.FAILED, ["job.end"])
        [entry] = await bot.app.store.audit(limit=1)
        assert entry.event.reason == "its command left the catalog"
        verdict = await bot.app.store.check_audit()
    assert verdict.intact, verdict.broken
