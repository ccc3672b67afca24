"""`!cancel` answers from the job's end itself, on every store backend (SPEC §5.5).

A job this process runs wakes the waiting cancel the moment its end is recorded: while the
job takes its time to stop, the cancel does not read the job from the store over and over.
A job another process runs is watched in the store, woken by the notice of its end
(PostgreSQL's, or the doorbell beside a SQLite file), and a job that outlasts the wait is
reported still stopping.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opsroom.config import RunnerSettings, Settings, StoreSettings, WorkersSettings
from opsroom.model.blocks import Reply, Status
from opsroom.model.jobs import Job, JobState
from opsroom.store import Store
from opsroom.testing import Bot, Said
from stores import row
from support import OPSROOM, async_wait_for, wait_for

STEPS = 30  # clean-up steps of 0.1 s after TERM: the job stops over 3 s at least

SCRIPTS = {
    # On TERM it cleans up in steps, leaving a mark at each, then exits. Its waits are
    # bash's own (a read that times out): a process started during the kill grace would
    # get a TERM of its own and end early.
    "stop/slowly.sh": f"""#!/usr/bin/env bash
# @describe Take a while to stop.
# @arg marks! a folder for the marks
exec {{nap}}<> <(:)
clean() {{
  for ((i = 1; i <= {STEPS}; i++)); do
    : > "$OPSROOM_ARG_MARKS/cleaning-$i"
    read -rt 0.1 -u "$nap" || true
  done
  exit 143
}}
trap clean TERM
: > "$OPSROOM_ARG_MARKS/started"
sleep 600 &
wait $!
""",
    # Ignores TERM until the test lets it go (its owner's kill grace is long).
    "stop/held.sh": """#!/usr/bin/env bash
# @describe Stop only when let go.
# @arg marks! a folder for the marks
trap ': > "$OPSROOM_ARG_MARKS/term"' TERM
: > "$OPSROOM_ARG_MARKS/started"
while [ ! -e "$OPSROOM_ARG_MARKS/go" ]; do sleep 0.05; done
exit 143
""",
}


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    """A catalog of the two scripts."""
    root = tmp_path / "catalog"
    for rel, text in SCRIPTS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    """Where the job leaves its marks."""
    folder = tmp_path / "marks"
    folder.mkdir()
    return folder


class JobReads:
    """Counts the looks at one job in the store (`get_job`, which a waiting cancel calls)."""

    def __init__(self, store: Store, job_id: int) -> None:
        self.count = 0
        self._store = store
        self._job_id = job_id
        self._read = store.get_job  # observed, not replaced: every look still reads

    def __enter__(self) -> JobReads:
        async def get_job(job_id: int) -> Job | None:
            if job_id == self._job_id:
                self.count += 1
            return await self._read(job_id)

        self._store.get_job = get_job  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        del self._store.get_job  # the class's own again


def _statuses(replies: tuple[Reply, ...]) -> list[str]:
    return [b.text for r in replies for b in r.blocks if isinstance(b, Status)]


async def cancel_while_it_stops(bot: Bot, job_id: int, marks: Path) -> tuple[Said, int, int]:
    """`!cancel job_id` to a `stop slowly` job: the answer, the looks at the job until its
    TERM was seen, and the looks while it cleaned up after (each step sleeps 0.1 s: a wait
    that looked would read the job several times a second meanwhile)."""
    with JobReads(bot.app.store, job_id) as reads:
        cancel = asyncio.create_task(bot.say(f"!cancel {job_id}"))
        await async_wait_for(lambda: (marks / "cleaning-2").exists(), 60, what="TERM")
        before = reads.count
        last = marks / f"cleaning-{STEPS - 5}"
        await async_wait_for(last.exists, 60, what="the clean-up to go on")
        while_stopping = reads.count - before
        said = await cancel
    return said, before, while_stopping


async def test_a_cancelled_job_of_this_process_is_reported_from_its_end_not_by_polling(
    catalog: Path, marks: Path, store_url: str
) -> None:
    # A long kill grace (the cancel waits that plus 3 s): the job ends by its own clean-up.
    settings = Settings(store=StoreSettings(url=store_url), runner=RunnerSettings(kill_grace=60))
    async with Bot.open(catalog_dir=str(catalog), store_url=store_url, settings=settings) as bot:
        job_said: list[Reply] = []

        async def to_room(reply: Reply) -> None:
            job_said.append(reply)

        running = asyncio.create_task(bot.handle(f"!stop slowly {marks}", to_room))
        await async_wait_for(lambda: (marks / "started").exists(), 60, what="the job to start")
        (job,) = await bot.app.store.list_jobs(limit=1)
        said, _, while_stopping = await cancel_while_it_stops(bot, job.id, marks)
        ended = await bot.job(job.id)
        await running
    assert ended.state is JobState.CANCELLED
    assert _statuses(said.replies) == [f"job {job.id} stop slowly: cancelled"]
    assert while_stopping == 0, f"the waiting cancel read the job {while_stopping} times"
    told = _statuses(tuple(job_said))
    assert [t for t in told if t.startswith(f"job {job.id} stop slowly: cancelled")], told


@dataclass
class Owner:
    """A second process, `opsroom run`, owning a job it gives 600 s to stop after TERM."""

    catalog: Path
    marks: Path
    store_url: str
    folder: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, command: str) -> int:
        """Run `!<command> <marks>`: the job's id once it started and its process is known."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}
        env.update(OPSROOM_STORE_URL=self.store_url, OPSROOM_RUNNER_KILL_GRACE="600")
        self.proc = subprocess.Popen(
            [OPSROOM, "run", "--json", "--catalog", str(self.catalog), f"!{command} {self.marks}"],
            cwd=self.folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: (self.marks / "started").exists(), 60, what="the job to start")
        found = wait_for(
            lambda: row(self.store_url, "SELECT id FROM jobs WHERE state = 'running' AND pid > 0"),
            30,
            what="its process to be recorded",
        )
        assert found is not None
        return int(found["id"])

    def outcome(self) -> dict[str, Any]:
        """What the owner's `opsroom run --json` said of the job once it returned."""
        assert self.proc is not None
        out, _ = self.proc.communicate(timeout=60)
        said: dict[str, Any] = json.loads(out.splitlines()[-1])
        return said


@pytest.fixture
def owner(catalog: Path, marks: Path, store_url: str, tmp_path: Path) -> Iterator[Owner]:
    """The second process; killed at the end if still there."""
    second = Owner(catalog, marks, store_url, tmp_path)
    yield second
    if second.proc is not None:
        if second.proc.poll() is None:
            second.proc.kill()
        second.proc.wait(30)


async def test_a_job_of_another_process_that_outlasts_the_wait_is_reported_still_stopping(
    catalog: Path, marks: Path, store_url: str, owner: Owner
) -> None:
    job_id = owner.start("stop held")
    # This bot waits 0.1 + 3 s; the owner gives the job 600 s to stop after TERM.
    settings = Settings(store=StoreSettings(url=store_url), runner=RunnerSettings(kill_grace=0.1))
    async with Bot.open(catalog_dir=str(catalog), store_url=store_url, settings=settings) as bot:
        said = await bot.say(f"!cancel {job_id}")
        stopping = await bot.job(job_id)
        await async_wait_for(lambda: (marks / "term").exists(), 60, what="the owner's TERM")
        (marks / "go").touch()
        outcome = owner.outcome()
        ended = await bot.job(job_id)
    assert _statuses(said.replies) == [
        f"cancel of job {job_id} requested; it is still stopping — `!job {job_id}` to check"
    ]
    assert stopping.state is JobState.RUNNING
    assert ended.state is JobState.CANCELLED
    assert outcome["state"] == "cancelled"


async def test_a_cancel_of_another_process_s_job_is_woken_by_its_end_on_every_store(
    catalog: Path, marks: Path, store_url: str, owner: Owner
) -> None:
    job_id = owner.start("stop slowly")
    # A look at the store only once a minute: what wakes the cancel sooner is the end's notice.
    settings = Settings(
        store=StoreSettings(url=store_url),
        runner=RunnerSettings(kill_grace=60),
        workers=WorkersSettings(recheck=60),
    )
    async with Bot.open(catalog_dir=str(catalog), store_url=store_url, settings=settings) as bot:
        # The owner hears of the request from its notice too, and the job gets its TERM.
        said, before, while_stopping = await cancel_while_it_stops(bot, job_id, marks)
    outcome = owner.outcome()
    assert before >= 1  # the cancel's first look (the reads are counted on this store)
    assert while_stopping == 0, f"the waiting cancel read the job {while_stopping} times"
    assert _statuses(said.replies) == [f"job {job_id} stop slowly: cancelled"]
    assert outcome["state"] == "cancelled"
