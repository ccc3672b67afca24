"""Queued jobs start the moment their turn comes, not at a look every half second.

A job held by a concurrency limit waits in its process's line (engine/line.py). The line
is tried when a job of the process ends, when a job in line is cancelled here, and on
PostgreSQL when another process's job ends (its notice). The timed look, which catches
what nothing tells (another process's end on SQLite), is set to an hour in these tests:
every job here that starts or hears of its cancel does so without it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from opsroom.config import Settings
from opsroom.engine import line
from opsroom.model.jobs import Job, JobState
from opsroom.testing import Bot, Said
from pg_cluster import Cluster
from stores import new_store_url

HOUR = 3600.0
WAIT = 60  # seconds: only a job that never starts takes this long


@pytest.fixture(autouse=True)
def no_timed_look(monkeypatch: pytest.MonkeyPatch) -> None:
    """The line's timed look out of reach: whatever starts is started by what tells."""
    monkeypatch.setattr(line, "LOOK_SECONDS", HOUR)


@pytest.fixture
def pg_store_url(postgres: Cluster, tmp_path: Path) -> Iterator[str]:
    """A new PostgreSQL store: processes that share it tell each other of ends."""
    with new_store_url("postgresql", tmp_path, postgres) as url:
        yield url


def catalog(root: Path) -> Path:
    """`bench true` does nothing; `bench hold` runs until its gate file exists."""
    (root / "bench").mkdir(parents=True)
    (root / "bench" / "true.sh").write_text("#!/usr/bin/env bash\n# @describe Nothing.\ntrue\n")
    (root / "bench" / "hold.sh").write_text(
        "#!/usr/bin/env bash\n"
        "# @describe Hold a place until the gate file exists (at most a minute).\n"
        "# @option --gate! The file to wait for\n"
        'for _ in $(seq 1200); do [ -e "$OPSROOM_ARG_GATE" ] && exit 0; sleep 0.05; done\n'
        "exit 1\n"
    )
    return root


def settings(concurrency: int, per_user: int) -> Settings:
    """Limits as given; the look for missed notices an hour apart."""
    return Settings.model_validate(
        {
            "runner": {"concurrency": concurrency, "per_user": per_user},
            "workers": {"recheck": HOUR},
        }
    )


@contextlib.asynccontextmanager
async def two_engines(cat: Path, store_url: str) -> AsyncIterator[tuple[Bot, Bot]]:
    """Two engines on one store, as two opsroom processes would be: one place in all."""
    limits = settings(1, 10)
    async with (
        Bot.open(catalog_dir=str(cat), store_url=store_url, settings=limits) as first,
        Bot.open(catalog_dir=str(cat), store_url=store_url, settings=limits) as second,
    ):
        yield first, second


async def running(bot: Bot, n: int) -> list[Job]:
    """The running jobs, once there are `n` of them."""
    async with asyncio.timeout(WAIT):
        while len(jobs := await bot.app.store.list_jobs(states=[JobState.RUNNING])) < n:
            await asyncio.sleep(0.02)
    return jobs


async def hold_the_place(bot: Bot, gate: Path) -> tuple[asyncio.Task[Said], Job]:
    """`bench hold` running (the one place taken) until `gate` exists: its request, its job."""
    holder = asyncio.create_task(bot.say(f"!bench hold --gate {gate}"))
    [held] = await running(bot, 1)
    return holder, held


async def queued(bot: Bot, n: int) -> list[Job]:
    """The queued jobs, once there are `n` of them."""
    async with asyncio.timeout(WAIT):
        while len(jobs := await bot.app.store.list_jobs(states=[JobState.QUEUED])) < n:
            await asyncio.sleep(0.02)
    return jobs


async def test_a_burst_beyond_the_limit_runs_through_as_places_free(
    store_url: str, tmp_path: Path
) -> None:
    n = 24
    cat = catalog(tmp_path / "catalog")
    async with Bot.open(catalog_dir=str(cat), store_url=store_url, settings=settings(2, n)) as bot:
        async with asyncio.timeout(WAIT):
            said = await asyncio.gather(*(bot.say("!bench true") for _ in range(n)))
        jobs = await bot.app.store.list_jobs(limit=n + 1)
    assert [s.outcome.state for s in said] == [JobState.SUCCEEDED] * n
    assert len(jobs) == n
    waited = [s for s in said if "is queued" in s.text]
    assert waited, "the burst was meant to exceed the limit of 2"
    assert all("2 jobs are running (the limit)" in s.text for s in waited)


async def test_a_job_in_line_hears_of_its_cancel_at_once(store_url: str, tmp_path: Path) -> None:
    cat = catalog(tmp_path / "catalog")
    gate = tmp_path / "gate"
    async with Bot.open(catalog_dir=str(cat), store_url=store_url, settings=settings(1, 10)) as bot:
        holder, held = await hold_the_place(bot, gate)
        waiter = asyncio.create_task(bot.say("!bench true", as_="local:bob"))
        [in_line] = await queued(bot, 1)
        cancel = await bot.say(f"!cancel {in_line.id}", as_="local:bob")
        async with asyncio.timeout(WAIT):
            gone = await waiter
        assert not holder.done(), "the place is still held"
        gate.touch()
        async with asyncio.timeout(WAIT):
            done = await holder
    assert "cancelled" in cancel.text, cancel.text
    assert f"job {in_line.id} bench true was cancelled before it started" in gone.text
    assert gone.outcome.state is JobState.CANCELLED
    assert done.outcome.state is JobState.SUCCEEDED
    assert held.id != in_line.id


async def test_a_requester_at_their_limit_does_not_hold_up_others_behind(
    store_url: str, tmp_path: Path
) -> None:
    # Two places, one per requester. Alice and Carol hold both; Alice's second job and then
    # Bob's wait. When Carol's ends, Alice's is still held by her own limit: Bob's starts.
    cat = catalog(tmp_path / "catalog")
    alice_gate, carol_gate = tmp_path / "alice", tmp_path / "carol"
    async with Bot.open(catalog_dir=str(cat), store_url=store_url, settings=settings(2, 1)) as bot:
        alice = asyncio.create_task(bot.say(f"!bench hold --gate {alice_gate}", as_="local:alice"))
        carol = asyncio.create_task(bot.say(f"!bench hold --gate {carol_gate}", as_="local:carol"))
        await running(bot, 2)
        alice_again = asyncio.create_task(bot.say("!bench true", as_="local:alice"))
        await queued(bot, 1)
        bob = asyncio.create_task(bot.say("!bench true", as_="local:bob"))
        await queued(bot, 2)
        carol_gate.touch()
        async with asyncio.timeout(WAIT):
            bob_said: Said = await bob
            await carol
        assert not alice.done(), "Alice's first job still runs"
        assert not alice_again.done(), "and holds her second back"
        alice_gate.touch()
        async with asyncio.timeout(WAIT):
            again: Said = await alice_again
            await alice
    assert bob_said.outcome.state is JobState.SUCCEEDED, bob_said.text
    assert again.outcome.state is JobState.SUCCEEDED, again.text
    assert "is queued behind job" in bob_said.text, "Bob's job waited for a place"


async def test_a_job_queued_behind_another_process_starts_on_its_end_notice(
    pg_store_url: str, tmp_path: Path
) -> None:
    cat = catalog(tmp_path / "catalog")
    gate = tmp_path / "gate"
    async with two_engines(cat, pg_store_url) as (first, second):
        holder, _ = await hold_the_place(first, gate)
        waiter = asyncio.create_task(second.say("!bench true", as_="local:bob"))
        await queued(second, 1)
        gate.touch()
        async with asyncio.timeout(WAIT):
            done = await holder
            started = await waiter
    assert done.outcome.state is JobState.SUCCEEDED
    assert "is queued behind job" in started.text
    assert started.outcome.state is JobState.SUCCEEDED, started.text


async def test_a_job_in_line_cancelled_by_another_process_hears_so_at_the_next_look(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process's cancel tells this one nothing on SQLite (on PostgreSQL its notice
    # does). The cancelled job is second in line: a round stops at the first, held by the
    # limit; the timed look finds the second no longer queued.
    monkeypatch.setattr(line, "LOOK_SECONDS", 0.05)
    cat = catalog(tmp_path / "catalog")
    gate = tmp_path / "gate"
    async with two_engines(cat, store_url) as (first, second):
        holder, _ = await hold_the_place(first, gate)
        ahead = asyncio.create_task(first.say("!bench true", as_="local:carol"))
        await queued(first, 1)
        waiter = asyncio.create_task(first.say("!bench true", as_="local:bob"))
        in_line = max(await queued(first, 2), key=lambda j: j.id)
        await second.say(f"!cancel {in_line.id}", as_="local:bob")
        async with asyncio.timeout(WAIT):
            gone = await waiter
        assert not holder.done(), "the place is still held"
        assert not ahead.done(), "by the job running, before the one ahead"
        gate.touch()
        async with asyncio.timeout(WAIT):
            await holder
            started = await ahead
    assert gone.outcome.state is JobState.CANCELLED, gone.text
    assert f"job {in_line.id} bench true was cancelled before it started" in gone.text
    assert started.outcome.state is JobState.SUCCEEDED, started.text
