"""Several bots on one PostgreSQL (SPEC §8), with real processes: two `opsroom serve`, each on
its own port, both connected to one (fake) Slack in HTTP mode, and `opsroom worker`s.

Slack delivers at least once, and behind a load balancer a retry may reach the other bot:
here the same signed event is posted to both bots at once. What each test proves is what a
person in the channel would notice: one answer, one job, one approval, one firing, one
"was interrupted".
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_web_serve import Served, start_serve
from test_workers import (
    HEARTBEAT,
    LOST_AFTER,
    PGID,
    Place,
    group_alive,
    running_worker,
    write_catalog,
)

from adapters.fake_slack import BOT_USER, TEAM, FakeSlack, Message, sign
from opsroom.config import Settings, StoreSettings, WorkersSettings
from opsroom.model.audit import AuditEvent
from opsroom.model.jobs import Job, JobState
from opsroom.store import Store
from opsroom.testing import Bot
from pg_cluster import Cluster
from stores import new_store_url, row
from support import async_wait_for, wait_for

CHANNEL = "C_OPS"
ALICE, BOB, CAROL = "U_ALICE", "U_BOB", "U_CAROL"
SIGNING = "8f742231b10e8888abcd99yyyzzz85a5"

SCRIPTS = {
    "mark.sh": ("", "echo marked"),
    "slow/wait.sh": ("background = true", PGID + "exec sleep 600"),
    "gated/wipe.sh": ('approval = "leads"\napprovals = 2', "echo wiped"),
    "lin/finish.sh": (
        'runs_on = "linux"\nbackground = true',
        'echo started; while [ ! -e "$OPSROOM_ARG_GATE" ]; do sleep 0.05; done; echo finished',
        "# @arg gate! a file to wait for\n",
    ),
    "doomed/wait.sh": ('runs_on = "doomed"\nbackground = true', PGID + "exec sleep 600"),
}

CONFIG = f"""
[store]
url = "{{url}}"
[catalog]
path = "{{catalog}}"
cache = false
[workers]
heartbeat = "{HEARTBEAT}"
lost_after = "{LOST_AFTER}"
[adapters.slack]
mode = "http"
bot_token = "env:SLACK_BOT_TOKEN"
signing_secret = "env:SLACK_SIGNING"
api_url = "{{api}}"

[[roles]]
name = "ops"
members = ["slack:{ALICE}", "slack:{BOB}", "slack:{CAROL}"]
allow = ["*"]

[[roles]]
name = "leads"
members = ["slack:{BOB}", "slack:{CAROL}"]
allow = ["*"]
"""


class BotProcess:
    """One `opsroom serve` process on the shared store, posting to the fake Slack."""

    def __init__(self, served: Served, name: str) -> None:
        self.served = served
        self.name = name

    @property
    def pid(self) -> int:
        """The serving process's pid."""
        return self.served.proc.pid

    @property
    def log(self) -> str:
        """What it logged so far (JSON lines)."""
        return self.served.log

    def logged(self, words: str) -> int:
        """How many of its log lines hold `words`."""
        return sum(words in line for line in self.log.splitlines())

    def kill(self) -> None:
        """kill -9: no goodbye, no heartbeat ever again."""
        self.served.proc.kill()
        self.served.proc.wait(30)
        self.served.close()

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it."""
        if self.served.proc.poll() is None:
            self.served.stop()

    async def post(self, body: dict[str, object]) -> None:
        """POST one signed Slack request to this bot's /hooks/slack, as Slack does."""
        raw = json.dumps(body).encode()
        ts = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "x-slack-request-timestamp": ts,
            "x-slack-signature": sign(SIGNING, ts, raw),
        }
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(
                f"{self.served.url}/hooks/slack", content=raw, headers=headers
            )
        assert response.status_code == 200, response.text


class Room:
    """#ops on the fake Slack: people say things there, through one bot or several."""

    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake
        self._ts = itertools.count(1)

    def message(self, user: str, text: str) -> tuple[str, dict[str, object]]:
        """A new message by `user` (kept in the channel) and the event body Slack sends."""
        ts = f"{1800000000 + next(self._ts)}.000100"
        self.fake.channels.setdefault(CHANNEL, []).append(Message(ts=ts, user=user, text=text))
        event = {
            "type": "message",
            "channel": CHANNEL,
            "user": user,
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "team": TEAM,
            "channel_type": "channel",
        }
        return ts, self.fake.event_callback(event)

    async def say(self, user: str, text: str, *bots: BotProcess) -> str:
        """`user` says `text`; Slack delivers the same event to each of `bots` at once."""
        ts, body = self.message(user, text)
        await asyncio.gather(*(bot.post(body) for bot in bots))
        return ts

    def said(self, *, thread: str | None = None) -> list[str]:
        """What the bots posted (top level, or in one thread), as people read it."""
        return [
            m.visible
            for m in self.fake.messages(CHANNEL)
            if m.user == BOT_USER and (thread is None or m.thread_ts == thread)
        ]

    def count(self, words: str, *, thread: str | None = None) -> int:
        """How many bot messages hold `words`."""
        return sum(words in text for text in self.said(thread=thread))

    async def shows(self, words: str, *, thread: str | None = None, within: float = 60) -> None:
        """Until a bot message holds `words`."""
        await async_wait_for(
            lambda: self.count(words, thread=thread) > 0,
            within,
            what=f"{words!r} in #ops; it shows {self.said()}",
        )


@pytest.fixture
def place(postgres: Cluster, tmp_path: Path) -> Iterator[Place]:
    """A PostgreSQL database of its own and the catalog, for one test's bots and workers."""
    catalog = write_catalog(tmp_path / "catalog", SCRIPTS)
    with new_store_url("postgresql", tmp_path, postgres) as url:
        yield Place(url, catalog, tmp_path)


@pytest.fixture
async def room() -> AsyncIterator[Room]:
    """The fake Slack both bots post to, and #ops on it."""
    fake = await FakeSlack.start()
    yield Room(fake)
    await fake.stop()


def _start_bot(place: Place, room: Room, name: str) -> BotProcess:
    folder = place.folder / name
    folder.mkdir()
    config = folder / "opsroom.toml"
    config.write_text(CONFIG.format(url=place.url, catalog=place.catalog, api=room.fake.api_url))
    env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING": SIGNING}
    return BotProcess(start_serve(folder, "--config", str(config), env=env), name)


@asynccontextmanager
async def bots(place: Place, room: Room, *names: str) -> AsyncIterator[list[BotProcess]]:
    """`opsroom serve` processes on the place's store, started side by side."""
    started = await asyncio.gather(
        *(asyncio.to_thread(_start_bot, place, room, name) for name in names)
    )
    try:
        yield list(started)
    finally:
        await asyncio.gather(*(asyncio.to_thread(b.stop) for b in started))


async def jobs_of(place: Place, command: str) -> list[Job]:
    """The jobs of one command, oldest first."""
    async with await Store.open(place.url) as store:
        found = await store.find_jobs(command=command, limit=100)
    return found[::-1]


async def job(place: Place, job_id: int) -> Job:
    """One job as the store has it now."""
    async with await Store.open(place.url) as store:
        found = await store.get_job(job_id)
    assert found is not None
    return found


async def audit(place: Place, job_id: int | None = None) -> list[AuditEvent]:
    """The audit trail (of one job), oldest first."""
    async with await Store.open(place.url) as store:
        records = await store.audit(limit=1000)
    events = [r.event for r in records[::-1]]  # newest first, as kept
    return [e for e in events if job_id is None or e.job_id == job_id]


async def the_job(place: Place, command: str) -> Job:
    """The one job of `command`, once there is one."""

    async def found() -> Job | None:
        jobs = await jobs_of(place, command)
        return jobs[0] if jobs else None

    got = await async_wait_for(found, 60, what=f"a job of {command}")
    assert isinstance(got, Job)
    return got


async def until_state(place: Place, job_id: int, *states: JobState) -> Job:
    """The job once it is in one of `states`."""

    async def reached() -> Job | None:
        current = await job(place, job_id)
        return current if current.state in states else None

    got = await async_wait_for(reached, 60, what=f"job {job_id} to be {states}")
    assert isinstance(got, Job)
    return got


async def output_line(place: Place, job_id: int, prefix: str) -> str:
    """The first kept output line of the job starting with `prefix`, once there is one."""

    async def found() -> str | None:
        async with await Store.open(place.url) as store:
            lines = await store.output(job_id)
        return next((t for _, t in lines if t.startswith(prefix)), None)

    line = await async_wait_for(found, 60, what=f"job {job_id} to print {prefix!r}")
    assert isinstance(line, str)
    return line


# --------------------------------------------------------------------------- starting together


async def test_bots_starting_together_on_a_new_store_make_one_admin_password(
    place: Place,
) -> None:
    from opsroom.web.accounts import ADMIN, bootstrap_admin
    from opsroom.web.passwords import verify_password

    async with await Store.open(place.url) as one, await Store.open(place.url) as other:
        passwords = await asyncio.gather(bootstrap_admin(one), bootstrap_admin(other))
        admin = await one.web_user(ADMIN)
        count = await one.web_user_count()
    printed = [p for p in passwords if p is not None]
    assert len(printed) == 1, "one bot prints the password; the other finds the account"
    assert count == 1
    assert admin is not None
    assert verify_password(printed[0], admin.password_hash), "the printed password works"


# --------------------------------------------------------------------------- deduplication


async def test_an_event_delivered_to_both_bots_runs_once(place: Place, room: Room) -> None:
    async with bots(place, room, "a", "b") as (a, b):
        asked = [await room.say(ALICE, "!mark", a, b) for _ in range(3)]
        for ts in asked:
            await room.shows("marked", thread=ts)
        # Each repeat was refused by the store in one bot or the other: all three decided.
        await async_wait_for(
            lambda: (
                a.logged("dropped a repeated slack delivery")
                + b.logged("dropped a repeated slack delivery")
                == 3
            ),
            60,
            what="both bots to decide on every delivery",
        )
        marks = await jobs_of(place, "mark")
    assert len(marks) == 3, "one job per message, not one per bot"
    assert [room.count("marked", thread=ts) for ts in asked] == [1, 1, 1]
    assert {j.owner.split(":")[1] for j in marks if j.owner} <= {str(a.pid), str(b.pid)}


# --------------------------------------------------------------------------- approvals


async def test_an_approval_is_decided_once_when_the_votes_reach_both_bots_at_once(
    place: Place, room: Room
) -> None:
    async with bots(place, room, "a", "b") as (a, b):
        asked = await room.say(ALICE, "!gated wipe", a)
        await room.shows("needs approval by 2 members of role leads", thread=asked)
        wipe = await the_job(place, "gated wipe")
        # Bob's and Carol's approvals, each delivered to both bots, all four at once.
        _, bob_vote = room.message(BOB, f"!approve {wipe.id}")
        _, carol_vote = room.message(CAROL, f"!approve {wipe.id}")
        await asyncio.gather(
            a.post(bob_vote), b.post(bob_vote), a.post(carol_vote), b.post(carol_vote)
        )
        done = await until_state(place, wipe.id, JobState.SUCCEEDED, JobState.FAILED)
        await room.shows(f"job {wipe.id} gated wipe: succeeded")
        await async_wait_for(
            lambda: (
                a.logged("dropped a repeated slack delivery")
                + b.logged("dropped a repeated slack delivery")
                == 2
            ),
            60,
            what="both bots to decide on both votes",
        )
        trail = await audit(place, wipe.id)
    assert done.state is JobState.SUCCEEDED
    assert [e.action for e in trail if e.action == "job.start"] == ["job.start"], "ran once"
    votes = sorted((e.principal, e.outcome) for e in trail if e.action == "approval")
    assert votes == [(f"slack:{BOB}", "approve"), (f"slack:{CAROL}", "approve")]
    assert room.count(f"job {wipe.id} gated wipe approved by") == 1
    assert room.count("1 more needed") == 1, "\n---\n".join(room.said())
    assert room.count("wiped") == 1
    assert room.count("is not waiting for approval") == 0, "no vote was turned away"


# --------------------------------------------------------------------------- schedules


async def test_a_due_time_fires_once_though_both_bots_run_the_scheduler(
    place: Place, room: Room
) -> None:
    now = datetime.now(UTC)
    due = now.replace(second=0, microsecond=0)
    if now - due > timedelta(seconds=30):
        # Too close to the next minute for both bots to start within the firing's grace:
        # use that next minute.
        due += timedelta(minutes=1)
        await async_wait_for(lambda: datetime.now(UTC) >= due, 60, what="the next minute")
    async with await Store.open(place.url) as store:
        schedule = await store.add_schedule(
            cron="* * * * *",
            tz="UTC",
            command="mark",
            room=f"slack:{CHANNEL}",
            creator=f"slack:{ALICE}",
            now=due - timedelta(seconds=1),
            audit=lambda s: AuditEvent(action="schedule.add", principal=s.creator, room=s.room),
        )
    async with bots(place, room, "a", "b") as (a, b):
        # Both schedulers have looked at what is due (the one that lost found it claimed).
        await async_wait_for(
            lambda: a.logged("schedules: 1 active") and b.logged("schedules: 1 active"),
            60,
            what="both schedulers' first look",
        )
        fired = await the_job(place, "mark")
        await until_state(place, fired.id, JobState.SUCCEEDED)
        await room.shows(f"job {fired.id} mark: succeeded")
        trail = await audit(place)
    firings = [
        e
        for e in trail
        if e.action in ("schedule.fire", "schedule.missed")
        and (e.params or {}).get("schedule") == schedule.id
    ]
    at_due = [e for e in firings if (e.params or {}).get("due") == due.isoformat()]
    assert [e.action for e in at_due] == ["schedule.fire"], "fired once, by one bot"
    assert room.count(f"schedule {schedule.id} (* * * * *, UTC)") == len(
        [e for e in firings if e.action == "schedule.fire"]
    )


# --------------------------------------------------------------------------- cancel


async def test_a_job_started_through_one_bot_is_cancelled_through_the_other(
    place: Place, room: Room
) -> None:
    async with bots(place, room, "a", "b") as (a, b):
        asked = await room.say(ALICE, "!slow wait", a)
        wait = await the_job(place, "slow wait")
        pgid = int((await output_line(place, wait.id, "pgid ")).split()[1])
        running = await job(place, wait.id)
        assert running.owner is not None
        assert running.owner.split(":")[1] == str(a.pid), "bot a runs it, as its own child"
        cancel = await room.say(ALICE, f"!cancel {wait.id}", b)
        # Bot b waits for the job's end before it answers: a acted on the store's request.
        await room.shows(f"job {wait.id} slow wait: cancelled", thread=cancel)
        ended = await job(place, wait.id)
        await room.shows(f"job {wait.id} slow wait: cancelled", thread=asked)
    assert ended.state is JobState.CANCELLED
    assert room.count("still stopping") == 0
    assert not group_alive(pgid), "its whole process group on bot a's host is gone"


# --------------------------------------------------------------------------- a bot dies


async def test_kill_9_of_a_bot_mid_job_the_other_serves_and_tells_its_job_interrupted_once(
    place: Place, room: Room
) -> None:
    async with bots(place, room, "a", "b") as (a, b):
        await room.say(ALICE, "!slow wait", a)
        wait = await the_job(place, "slow wait")
        pgid = int((await output_line(place, wait.id, "pgid ")).split()[1])
        a.kill()
        asked = await room.say(ALICE, "!whoami", b)
        await room.shows(f"slack:{ALICE}", thread=asked)
        interrupted = await until_state(place, wait.id, JobState.INTERRUPTED)
        told = f"job {wait.id} slow wait was interrupted"
        await room.shows(told)
        wait_for(lambda: not group_alive(pgid), 30, what="the dead bot's script to be ended")
        again = await room.say(ALICE, "!version", b)
        await room.shows("opsroom", thread=again)
        trail = await audit(place, wait.id)

        async def recorded_as_told() -> Job | None:
            # The job is marked told right after the room hears it, in a write of its own.
            current = await job(place, wait.id)
            return current if current.notified else None

        marked = await async_wait_for(recorded_as_told, 60, what="the job marked as told")
    assert isinstance(marked, Job)
    assert marked.notified
    assert room.count(told) == 1, "told once"
    assert f"pid {a.pid}" in (interrupted.error or "")
    assert [e.outcome for e in trail if e.action == "job.end"] == ["interrupted"]


async def test_kill_9_of_the_bot_following_a_worker_job_the_other_tells_its_end(
    place: Place, room: Room
) -> None:
    gate = place.folder / "gate"
    with running_worker(place, "linux", "lin-1") as worker:
        async with bots(place, room, "a", "b") as (a, b):
            await room.say(ALICE, f"!lin finish {gate}", a)
            finish = await the_job(place, "lin finish")
            await output_line(place, finish.id, "started")
            a.kill()
            await async_wait_for(
                lambda: b.logged(f"following job {finish.id} for a bot that is gone"),
                60,
                what="bot b to follow the job",
            )
            gate.touch()
            await room.shows(f"job {finish.id} lin finish: succeeded")
            done = await job(place, finish.id)
            lines = [t for _, t in await _output(place, finish.id)]
            # Followed to its end: nobody is left to take it over again.
            await async_wait_for(
                lambda: (
                    row(place.url, "SELECT 1 FROM followers WHERE job_id = :j", j=finish.id) is None
                ),
                30,
                what="the follow to be done",
            )
    assert done.state is JobState.SUCCEEDED
    assert done.owner is not None
    assert done.owner.split(":")[1] == str(worker.pid)
    assert lines == ["started", "finished"], "it ran on, on its worker"
    assert room.count(f"job {finish.id} lin finish: succeeded") == 1


async def _output(place: Place, job_id: int) -> list[tuple[str, str]]:
    async with await Store.open(place.url) as store:
        return await store.output(job_id)


# --------------------------------------------------------------------------- lost workers


async def test_serve_finds_a_lost_worker_whose_job_nobody_follows(place: Place, room: Room) -> None:
    settings = Settings(
        store=StoreSettings(url=place.url),
        workers=WorkersSettings.model_validate({"heartbeat": HEARTBEAT, "lost_after": LOST_AFTER}),
    )
    with running_worker(place, "doomed", "doomed-1") as doomed:
        # Asked from a process that then stops following (this test's own bot)...
        async with Bot.open(
            catalog_dir=str(place.catalog), store_url=place.url, settings=settings
        ) as asker:
            asking = asyncio.create_task(asker.handle("!doomed wait", _ignore))
            wait = await the_job(place, "doomed wait")
            pgid = int((await output_line(place, wait.id, "pgid ")).split()[1])
            asking.cancel()
            await asyncio.gather(asking, return_exceptions=True)
        # ... and no other worker: only `serve` is left to notice the worker die.
        async with bots(place, room, "a"):
            doomed.proc.kill()
            doomed.proc.wait(30)
            interrupted = await until_state(place, wait.id, JobState.INTERRUPTED)
            trail = await audit(place, wait.id)
    assert "worker doomed-1" in (interrupted.error or "")
    assert [e.outcome for e in trail if e.action == "job.end"] == ["interrupted"]
    lost = row(place.url, "SELECT lost_at FROM workers WHERE name = 'doomed-1'")
    assert lost is not None
    assert lost["lost_at"] is not None
    wait_for(lambda: not group_alive(pgid), 30, what="the orphaned script to be ended")


async def _ignore(_reply: object) -> None:
    return None


# --------------------------------------------------------------------------- bots elsewhere


async def test_a_bot_on_another_host_is_judged_by_its_heartbeats(place: Place) -> None:
    """Only a bot's own host can see its process: elsewhere, its heartbeats tell."""
    from opsroom.engine.watch import Watch
    from opsroom.model.blocks import Reply, Status
    from opsroom.store import Limits
    from stores import raw_sql

    settings = Settings(
        store=StoreSettings(url=place.url),
        workers=WorkersSettings.model_validate({"heartbeat": HEARTBEAT, "lost_after": LOST_AFTER}),
    )
    told: list[tuple[str, str]] = []
    follows: list[asyncio.Task[Any]] = []

    def send_for(room_name: str) -> Callable[[Reply], Awaitable[None]]:
        async def send(reply: Reply) -> None:
            told.extend((room_name, b.text) for b in reply.blocks if isinstance(b, Status))

        return send

    def spawn(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        follows.append(task)
        return task

    async with Bot.open(
        catalog_dir=str(place.catalog), store_url=place.url, settings=settings
    ) as bot:
        store = bot.app.store
        silent, beating, unknown = "far:100:b:1", "near:200:b:1", "elsewhere:300:b:1"
        for owner in (silent, beating):
            await store.register_bot(owner=owner, host=owner.split(":")[0], version="0")
        limits = Limits(total=10, per_command=None, per_user=10)
        jobs = {}
        for owner in (silent, beating, unknown):
            made = await store.create_job(
                command="slow wait", params={}, requester="slack:U1", room="slack:C1"
            )
            assert (await store.claim_job(made.id, owner=owner, limits=limits)).claimed
            jobs[owner] = made.id
        followed = await store.create_job(
            command="lin finish", params={}, requester="slack:U1", room="slack:C1"
        )
        assert (await store.claim_job(followed.id, owner="w:1:b:1", limits=limits)).claimed
        await store.follow_job(followed.id, follower=silent)
        await store.followed_to(followed.id, follower=silent, passed=7)
        raw_sql(
            place.url,
            "UPDATE bots SET last_heartbeat = now() - interval '1 hour' WHERE owner = :o",
            o=silent,
        )
        watch = Watch(bot.app.dispatcher, send_for=send_for, can_tell=lambda r: True, spawn=spawn)
        first = await watch.round()
        second = await watch.round()
        states = {o: (await bot.job(i)).state for o, i in jobs.items()}
        lost = await bot.job(jobs[silent])
        follower = row(
            place.url, "SELECT follower, passed FROM followers WHERE job_id = :j", j=followed.id
        )
        for task in follows:
            task.cancel()
        await asyncio.gather(*follows, return_exceptions=True)
        await watch.stop()
    assert [j.id for j in first.interrupted] == [jobs[silent]]
    assert states == {
        silent: JobState.INTERRUPTED,
        beating: JobState.RUNNING,  # a live bot's job is never touched
        unknown: JobState.RUNNING,  # nor one of a process nothing can judge from here
    }
    assert lost.error == (
        "the opsroom process running it (pid 100 on far) stopped sending heartbeats "
        "before the job did; it was not re-run"
    )
    assert told == [("slack:C1", f"job {lost.id} slow wait was interrupted: {lost.error}")]
    assert first.adopted == (followed.id,)
    assert follower == {"follower": bot.app.dispatcher.ctx.owner, "passed": 7}
    assert (second.interrupted, second.told, second.adopted) == ((), (), ()), "once"
