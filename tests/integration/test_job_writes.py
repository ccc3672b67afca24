"""A job that starts at once costs two write transactions: its start and its end (issue 15).

The request's audit entry, the job's creation, its claim and its `job.start` entry are one
transaction; its end, its last lines, its `job.end` entry — and its process id, when the
job ended before the output writer's next batch — are the other. The audit trail reads as
before: request, then start, then end, chained. A job that runs longer shows its process
once the output writer's next batch is kept.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from opsroom.engine.output import FLUSH_SECONDS
from opsroom.model.blocks import Reply
from opsroom.model.jobs import JobState
from opsroom.store import Store, inline
from opsroom.testing import Bot
from support import async_wait_for


class Commits:
    """Counts the store's commits as its driver makes them (observed, not replaced).

    SQLite's durable batches commit on the driver itself, out of SQLAlchemy's sight, so
    there every commit of the inline driver counts; elsewhere SQLAlchemy's commit event.
    """

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self._engine = store._db.engine.sync_engine
        self._sqlite = self._engine.dialect.name == "sqlite"
        self._monkeypatch = monkeypatch

    def __enter__(self) -> Commits:
        if self._sqlite:
            commit = inline.Connection.commit

            async def counted(conn: inline.Connection) -> None:
                await commit(conn)
                self.count += 1

            self._monkeypatch.setattr(inline.Connection, "commit", counted)
        else:
            event.listen(self._engine, "commit", self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sqlite:
            self._monkeypatch.undo()
        else:
            event.remove(self._engine, "commit", self._seen)

    def _seen(self, _conn: Any) -> None:
        self.count += 1


def catalog(root: Path) -> Path:
    """`bench true` does nothing; `bench wait` says its pid, then waits for a file."""
    (root / "bench").mkdir(parents=True)
    (root / "bench" / "true.sh").write_text("#!/usr/bin/env bash\n# @describe Nothing.\ntrue\n")
    (root / "bench" / "wait.sh").write_text(
        "#!/usr/bin/env bash\n# @describe Say the pid, wait for the file (60 s at most).\n"
        "# @option --marks <PATH> Where to write\n"
        'echo $$ > "$OPSROOM_ARG_MARKS/pid"\n'
        'while [ ! -e "$OPSROOM_ARG_MARKS/go" ] && (( SECONDS < 60 )); do sleep 0.05; done\n'
    )
    return root


async def test_a_job_that_runs_at_once_costs_two_commits_and_audits_as_before(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = catalog(tmp_path / "catalog")
    async with Bot.open(catalog_dir=str(root), store_url=store_url) as bot:
        store = bot.app.store
        assert (await bot.say("!bench true")).succeeded  # the first one sets things up
        with Commits(store, monkeypatch) as commits:
            said = [await bot.say("!bench true") for _ in range(3)]
        assert all(s.succeeded for s in said), said
        ids = [s.job_id for s in said]
        jobs = [await store.get_job(i) for i in ids if i is not None]
        # A job still running FLUSH_SECONDS after it started (a very busy machine) may have
        # its pid kept on its own before its end; a job of `true` normally ends far sooner.
        slow = sum(
            1
            for j in jobs
            if j
            and j.started_at
            and j.finished_at
            and (j.finished_at - j.started_at).total_seconds() >= FLUSH_SECONDS
        )
        assert 2 * 3 <= commits.count <= 2 * 3 + slow, (commits.count, slow)
        job_id = ids[-1]
        assert job_id is not None
        job = await store.get_job(job_id)
        assert job is not None
        assert job.pid is not None
        assert job.pid > 1, job  # kept with its end
        trail = (await store.audit(limit=6))[::-1]
        assert [(r.event.action, r.event.job_id, r.event.outcome) for r in trail[-3:]] == [
            ("request", None, "allowed"),
            ("job.start", job_id, ""),
            ("job.end", job_id, JobState.SUCCEEDED.value),
        ]
        assert trail[-3].event.command == "bench true"
        assert trail[-2].prev_hash == trail[-3].hash
        assert trail[-1].prev_hash == trail[-2].hash
        assert (await store.check_audit()).intact


async def test_a_running_job_shows_its_process_once_the_next_batch_is_kept(
    tmp_path: Path, store_url: str
) -> None:
    root = catalog(tmp_path / "catalog")
    marks = tmp_path / "marks"
    marks.mkdir()
    async with Bot.open(catalog_dir=str(root), store_url=store_url) as bot:
        store = bot.app.store
        said: list[Reply] = []

        async def keep(reply: Reply) -> None:
            said.append(reply)

        running = asyncio.create_task(bot.handle(f"!bench wait --marks {marks}", keep))
        try:
            pid = await async_wait_for(
                lambda: (marks / "pid").is_file() and (marks / "pid").read_text().strip(),
                60,
                what="the script to say its pid",
            )
            (job,) = await store.list_jobs(limit=1)
            assert job.state is JobState.RUNNING
            shown = await async_wait_for(
                lambda: _pid_of(store, job.id), 30, what="the job's process to be recorded"
            )
            assert shown == int(pid)
        finally:
            (marks / "go").touch()
            outcome = await running
        assert outcome.outcome == "succeeded", outcome
        ended = await store.get_job(job.id)
        assert ended is not None
        assert ended.pid == int(pid)


async def _pid_of(store: Store, job_id: int) -> int | None:
    """The job's recorded process, once there is one (0: not yet)."""
    job = await store.get_job(job_id)
    assert job is not None
    return job.pid or None
