"""Schedules (SPEC §5.7): made in chat, fired once per due time, checked as their creator.

The engine is real (SQLite file, catalog scripts run as child processes); the firing loop
takes an injected clock, so no test waits for a minute boundary or depends on today's
date. Two real processes race for the same due times; real `opsroom serve` processes
report missed runs once, serve the API and the console page, and keep schedules across
restarts.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import tomllib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_web_serve import Served, start_serve

from opsroom.config import Settings
from opsroom.engine.scheduler import Scheduler
from opsroom.model.audit import AuditEvent, AuditRecord
from opsroom.model.blocks import Reply
from opsroom.model.jobs import JobState
from opsroom.render.text import render_reply
from opsroom.store import Store
from opsroom.testing import Bot
from support import FIXTURES

ECHO = str(FIXTURES / "echo_catalog")
ROLES = """
[[roles]]
name = "ops"
members = ["slack:alice", "slack:bob"]
allow = ["schedule", "echo shell-text"]

[[roles]]
name = "viewers"
members = ["slack:carol"]
allow = ["schedule"]

[[roles]]
name = "root"
members = ["slack:root"]
allow = ["*"]
admin = true
"""
# Monday 2026-12-07, 05:59:30 UTC (06:59:30 in Berlin): a fixed, injected "now".
MONDAY = datetime(2026, 12, 7, 5, 59, 30, tzinfo=UTC)


class Clock:
    """The injected clock: tests move it, the desk and the loop read it."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@dataclass
class Rooms:
    """What each room was told, as a terminal would show it."""

    said: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def send_for(self, room: str) -> Callable[[Reply], Any]:
        async def send(reply: Reply) -> None:
            self.said[room].append(render_reply(reply))

        return send

    def text(self, room: str) -> str:
        return "\n".join(self.said[room])


def settings(text: str = ROLES, **bot: str) -> Settings:
    data = tomllib.loads(text)
    if bot:
        data["bot"] = bot
    return Settings.model_validate(data)


@dataclass
class Engine:
    """A Bot with its clock and a firing loop whose rooms are recorded."""

    bot: Bot
    clock: Clock
    rooms: Rooms
    scheduler: Scheduler
    stack: AsyncExitStack

    async def say(self, text: str, *, as_: str = "slack:alice", room: str = "slack:C1") -> str:
        said = await self.bot.say(text, as_=as_, room=room, direct=False)
        return said.text

    async def tick(self, at: datetime) -> list[tuple[int, str]]:
        self.clock.at = at
        happened = await self.scheduler.tick()
        await self.scheduler.settle()
        return [(h.schedule_id, h.kind) for h in happened]

    def loop(self) -> Scheduler:
        """Another firing loop on the same engine and clock (a restart, another process)."""
        return Scheduler(self.bot.app.dispatcher, send_for=self.rooms.send_for, now=self.clock)

    @property
    def store(self) -> Store:
        return self.bot.app.store


async def open_engine(
    db: Path | str, *, config: Settings | None = None, catalog: str = ECHO, at: datetime = MONDAY
) -> Engine:
    """An engine on the SQLite file `db`, or on the store whose URL `db` is."""
    url = db if isinstance(db, str) else f"sqlite:///{db}"
    stack = AsyncExitStack()
    bot = await stack.enter_async_context(
        Bot.open(catalog_dir=catalog, store_url=url, settings=config or settings())
    )
    clock = Clock(at)
    bot.app.dispatcher.schedules.now = clock
    rooms = Rooms()
    loop = Scheduler(bot.app.dispatcher, send_for=rooms.send_for, now=clock)
    return Engine(bot, clock, rooms, loop, stack)


async def close_engine(engine: Engine) -> None:
    await engine.stack.aclose()


@pytest.fixture
async def engine(store_url: str) -> AsyncIterator[Engine]:
    e = await open_engine(store_url)
    try:
        yield e
    finally:
        await close_engine(e)


async def audit_of(store: Store, prefix: str = "schedule.") -> list[AuditRecord]:
    return [r for r in reversed(await store.audit(limit=500)) if r.event.action.startswith(prefix)]


# --- made in chat -------------------------------------------------------------------------


async def test_the_reply_gives_the_id_and_the_next_three_times(engine: Engine) -> None:
    said = await engine.say(
        '!schedule add "0 7 * * 1-5" echo shell-text --text morning --tz Europe/Berlin'
    )
    assert (
        "schedule 1 added: !echo shell-text --text morning at 0 7 * * 1-5 (Europe/Berlin)" in said
    )
    assert (
        "Mon 2026-12-07 07:00 CET\n  Tue 2026-12-08 07:00 CET\n  Wed 2026-12-09 07:00 CET" in said
    )
    [made] = await engine.store.schedules()
    assert (made.creator, made.room, made.tz, made.command) == (
        "slack:alice",
        "slack:C1",
        "Europe/Berlin",
        "echo shell-text --text morning",
    )
    [entry] = await audit_of(engine.store)
    assert (entry.event.action, entry.event.principal, entry.event.command) == (
        "schedule.create",
        "slack:alice",
        "echo shell-text",
    )
    assert entry.event.params is not None
    assert entry.event.params["schedule"] == 1


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('!schedule add "0 7 * *" echo shell-text --text x', "has 4 fields; a schedule takes five"),
        ("!schedule add 0 7 * * * echo shell-text --text x", "in quotes"),
        ('!schedule add "0 0 30 2 *" echo shell-text --text x', "never falls due"),
        ('!schedule add "0 7 * * *" echo shell-text --text x --tz Berlin', "not an IANA time zone"),
        ('!schedule add "0 7 * * *" echo shell-text', "missing required parameter --text"),
        ('!schedule add "0 7 * * *" echo nothing', "unknown command"),
        ('!schedule add "* * * * *" schedule list', "a schedule cannot make or change schedules"),
        ("!schedule add", "give the cron expression"),
        ('!schedule add --tz UTC "0 7 * * *" --tz UTC echo shell-text --text x', "--tz once"),
        ("!schedule later", "say add, list, rm, pause or resume"),
    ],
)
async def test_bad_schedules_are_refused_saying_why_and_nothing_is_stored(
    engine: Engine, text: str, says: str
) -> None:
    said = await engine.say(text)
    assert says in said
    assert await engine.store.schedules() == []


async def test_policy_is_checked_when_it_is_made(engine: Engine) -> None:
    # carol may use `schedule` but not run echo; dave holds no role at all.
    said = await engine.say('!schedule add "0 7 * * *" echo shell-text --text x', as_="slack:carol")
    assert "denied: no rule allows echo shell-text" in said
    said = await engine.say('!schedule add "0 7 * * *" echo shell-text --text x', as_="slack:dave")
    assert "denied: slack:dave holds no role" in said
    assert await engine.store.schedules() == []


async def test_list_shows_this_rooms_schedules_and_all_only_to_admins(engine: Engine) -> None:
    await engine.say('!schedule add "0 7 * * *" echo shell-text --text here')
    await engine.say('!schedule add "0 8 * * *" echo shell-text --text there', room="slack:C2")
    here = await engine.say("!schedule list")
    assert "!echo shell-text --text here" in here
    assert "there" not in here
    assert "Mon 2026-12-07 07:00 UTC" in here
    assert "only an admin may list" in await engine.say("!schedule list all")
    everything = await engine.say("!schedule list all", as_="slack:root", room="slack:OPS")
    assert "slack:C1" in everything
    assert "slack:C2" in everything
    assert "No schedules in this room." in await engine.say("!schedule list", room="slack:C9")


async def test_a_trailing_tz_is_the_commands_own_when_it_has_such_an_option(
    tmp_path: Path,
) -> None:
    catalog = tmp_path / "catalog" / "clock"
    catalog.mkdir(parents=True)
    (catalog / "show.sh").write_text(
        "#!/usr/bin/env bash\n# @describe Show a zone.\n# @option --tz The zone\n"
        'printf "TZ=[%s]\\n" "$OPSROOM_ARG_TZ"\n'
    )
    (catalog / "plain.sh").write_text("#!/usr/bin/env bash\n# @describe No options.\necho plain\n")
    config = settings('[[roles]]\nname = "all"\nmembers = ["slack:*"]\nallow = ["*"]\n')
    e = await open_engine(tmp_path / "t.db", config=config, catalog=str(tmp_path / "catalog"))
    try:
        await e.say('!schedule add "0 7 * * *" clock show --tz Asia/Tokyo')
        await e.say('!schedule add --tz Asia/Tokyo "0 7 * * *" clock show --tz Europe/Paris')
        await e.say('!schedule add "0 7 * * *" clock plain --tz Asia/Tokyo')
        await e.say('!schedule add "0 7 * * *" --tz Asia/Tokyo clock show')
        first, second, third, fourth = await e.store.schedules()
        assert (first.tz, first.command) == ("UTC", "clock show --tz Asia/Tokyo")
        assert (second.tz, second.command) == ("Asia/Tokyo", "clock show --tz Europe/Paris")
        assert (third.tz, third.command) == ("Asia/Tokyo", "clock plain")
        assert (fourth.tz, fourth.command) == ("Asia/Tokyo", "clock show")
        await e.tick(datetime(2026, 12, 7, 7, 0, 5, tzinfo=UTC))
        assert "TZ=[Asia/Tokyo]" in e.rooms.text("slack:C1")
    finally:
        await close_engine(e)


async def test_a_command_holding_a_secret_is_not_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCHEDULE_TEST_TOKEN", "hunter2-very-secret")
    config = settings(ROLES + '\n[secrets]\nTOKEN = "env:SCHEDULE_TEST_TOKEN"\n')
    e = await open_engine(tmp_path / "t.db", config=config)
    try:
        said = await e.say('!schedule add "0 7 * * *" echo shell-text --text hunter2-very-secret')
        assert "holds the value of a configured secret" in said
        assert await e.store.schedules() == []
        records = await e.store.audit(limit=50)
        assert records, "the refusal is in the audit log, to be searched"
        for record in records:
            assert "hunter2-very-secret" not in json.dumps(record.event.params)
    finally:
        await close_engine(e)


# --- firing ---------------------------------------------------------------------------------


async def test_a_due_time_fires_once_in_its_room_as_its_creator(engine: Engine) -> None:
    await engine.say(
        '!schedule add "0 7 * * 1-5" echo shell-text --text morning --tz Europe/Berlin'
    )
    assert await engine.tick(MONDAY) == []
    assert engine.scheduler.sleep_for() == pytest.approx(30.0)  # 30.05 s away; rechecks at 30
    assert await engine.tick(datetime(2026, 12, 7, 6, 0, 2, tzinfo=UTC)) == [(1, "fired")]
    room = engine.rooms.text("slack:C1")
    assert "schedule 1 (0 7 * * 1-5, Europe/Berlin) — Mon 2026-12-07 07:00 CET" in room
    assert "TEXT=[morning]" in room
    [job] = await engine.store.list_jobs()
    assert (job.command, job.requester, job.room, job.state) == (
        "echo shell-text",
        "slack:alice",
        "slack:C1",
        JobState.SUCCEEDED,
    )
    # The same moment again, and another loop on the same store: nothing more.
    assert await engine.tick(datetime(2026, 12, 7, 6, 0, 9, tzinfo=UTC)) == []
    assert await engine.loop().tick() == []
    assert len(await engine.store.list_jobs()) == 1
    fired = [r for r in await audit_of(engine.store) if r.event.action == "schedule.fire"]
    assert len(fired) == 1
    assert fired[0].event.params is not None
    assert fired[0].event.params["due"] == "2026-12-07T06:00:00+00:00"
    [made] = await engine.store.schedules()
    assert made.last_job_id == job.id
    assert made.last_result == f"job {job.id} succeeded"
    assert (await engine.store.check_audit()).broken is None


async def test_the_loop_sleeps_until_the_next_due_time(engine: Engine) -> None:
    await engine.say('!schedule add "* * * * *" echo shell-text --text tick')
    await engine.tick(datetime(2026, 12, 7, 6, 0, 45, tzinfo=UTC))
    assert engine.scheduler.sleep_for() == pytest.approx(15.05)
    engine.clock.at = datetime(2026, 12, 7, 6, 0, 59, tzinfo=UTC)
    assert engine.scheduler.sleep_for() == pytest.approx(1.05)


async def test_missed_times_are_reported_once_and_never_run(engine: Engine) -> None:
    await engine.say('!schedule add "0 * * * *" echo shell-text --text hourly')
    # Nothing looked from 06:00 to 09:00:10 (opsroom was stopped): 06, 07, 08 were missed.
    assert await engine.tick(datetime(2026, 12, 7, 9, 0, 10, tzinfo=UTC)) == [
        (1, "missed"),
        (1, "fired"),
    ]
    room = engine.rooms.text("slack:C1")
    assert (
        "schedule 1 (!echo shell-text --text hourly, 0 * * * *) missed 3 runs between "
        "Mon 2026-12-07 06:00 UTC and Mon 2026-12-07 08:00 UTC while opsroom was not running"
    ) in room
    assert room.count("TEXT=[hourly]") == 1  # 09:00 ran; the missed ones never do
    # A restart (a new loop) and the same moment: said once, never replayed.
    assert await engine.loop().tick() == []
    assert engine.rooms.text("slack:C1").count("missed") == 1
    # All older than the grace: only reported, nothing runs.
    assert await engine.tick(datetime(2026, 12, 7, 12, 30, tzinfo=UTC)) == [(1, "missed")]
    assert "missed 3 runs between Mon 2026-12-07 10:00 UTC and Mon 2026-12-07 12:00 UTC" in (
        engine.rooms.text("slack:C1")
    )
    assert len(await engine.store.list_jobs()) == 1
    missed = [r for r in await audit_of(engine.store) if r.event.action == "schedule.missed"]
    assert [r.event.params["count"] for r in missed if r.event.params] == [3, 3]


async def test_a_firing_the_creator_may_no_longer_run_is_denied_audited_and_said(
    tmp_path: Path,
) -> None:
    db = tmp_path / "opsroom.db"
    first = await open_engine(db)
    await first.say('!schedule add "0 7 * * *" echo shell-text --text x')
    await close_engine(first)
    # Restarted with alice's role no longer allowing echo.
    fewer = ROLES.replace('allow = ["schedule", "echo shell-text"]', 'allow = ["schedule"]')
    later = await open_engine(db, config=settings(fewer))
    try:
        assert await later.tick(datetime(2026, 12, 7, 7, 0, 3, tzinfo=UTC)) == [(1, "denied")]
        assert (
            "schedule 1: !echo shell-text --text x was not run at Mon 2026-12-07 07:00 UTC — "
            "denied: no rule allows echo shell-text"
        ) in later.rooms.text("slack:C1")
        assert await later.store.list_jobs() == []
        denied = [r for r in await audit_of(later.store) if r.event.action == "schedule.denied"]
        assert len(denied) == 1
        assert (denied[0].event.principal, denied[0].event.outcome) == ("slack:alice", "denied")
        assert "no rule allows echo shell-text" in denied[0].event.reason
        # Denied once per due time, like a firing.
        assert await later.tick(datetime(2026, 12, 7, 7, 0, 30, tzinfo=UTC)) == []
    finally:
        await close_engine(later)


async def test_bot_timezone_is_the_default_zone_and_moves_with_daylight_saving(
    tmp_path: Path,
) -> None:
    saturday = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    berlin = await open_engine(
        tmp_path / "b.db", config=settings(timezone="Europe/Berlin"), at=saturday
    )
    utc = await open_engine(tmp_path / "u.db", at=saturday)
    try:
        text = '!schedule add "30 2 * * *" echo shell-text --text night'
        said = await berlin.say(text)
        assert "(Europe/Berlin)" in said
        # 02:30 does not exist on 29 March in Berlin: it runs when the clocks jump.
        assert "Sun 2026-03-29 03:00 CEST\n  Mon 2026-03-30 02:30 CEST" in said
        assert "Sun 2026-03-29 02:30 UTC" in await utc.say(text)
        at_the_jump = datetime(2026, 3, 29, 1, 0, 4, tzinfo=UTC)
        assert await berlin.tick(at_the_jump) == [(1, "fired")]
        assert await utc.tick(at_the_jump) == []
        assert "TEXT=[night]" in berlin.rooms.text("slack:C1")
    finally:
        await close_engine(berlin)
        await close_engine(utc)


# --- rm, pause, resume ----------------------------------------------------------------------


async def test_rm_pause_and_resume_belong_to_the_creator_and_admins(engine: Engine) -> None:
    await engine.say('!schedule add "0 * * * *" echo shell-text --text hourly')
    said = await engine.say("!schedule rm 1", as_="slack:bob")
    assert "denied: only slack:alice, who made schedule 1, or an admin may remove it" in said
    # An admin pauses it from another room: the schedule's room is told.
    said = await engine.say("!schedule pause 1", as_="slack:root", room="slack:OPS")
    assert "schedule 1 (!echo shell-text --text hourly at 0 * * * *) paused" in said
    assert "paused by slack:root" in engine.rooms.text("slack:C1")
    assert "already paused" in await engine.say("!schedule pause 1")
    # While paused its times pass without a run, and resuming reports none as missed.
    assert await engine.tick(datetime(2026, 12, 7, 9, 0, 5, tzinfo=UTC)) == []
    engine.clock.at = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    said = await engine.say("!schedule resume 1")
    assert "resumed; next run Mon 2026-12-07 10:00 UTC" in said
    assert await engine.tick(datetime(2026, 12, 7, 9, 59, tzinfo=UTC)) == []
    assert await engine.tick(datetime(2026, 12, 7, 10, 0, 1, tzinfo=UTC)) == [(1, "fired")]
    assert "missed" not in engine.rooms.text("slack:C1")
    said = await engine.say("!schedule rm 1")
    assert "schedule 1 (!echo shell-text --text hourly at 0 * * * *) removed" in said
    assert await engine.store.schedules() == []
    assert "there is no schedule 1" in await engine.say("!schedule rm 1")
    assert await engine.tick(datetime(2026, 12, 7, 11, 0, 1, tzinfo=UTC)) == []
    actions = [(r.event.action, r.event.principal) for r in await audit_of(engine.store)]
    assert actions == [
        ("schedule.create", "slack:alice"),
        ("schedule.pause", "slack:root"),
        ("schedule.resume", "slack:alice"),
        ("schedule.fire", "slack:alice"),
        ("schedule.remove", "slack:alice"),
    ]


async def test_schedules_survive_a_restart(store_url: str) -> None:
    db = store_url
    first = await open_engine(db)
    await first.say('!schedule add "0 7 * * *" echo shell-text --text after-restart')
    await close_engine(first)
    second = await open_engine(db)
    try:
        assert "after-restart" in await second.say("!schedule list")
        assert await second.tick(datetime(2026, 12, 7, 7, 0, 1, tzinfo=UTC)) == [(1, "fired")]
        assert "TEXT=[after-restart]" in second.rooms.text("slack:C1")
    finally:
        await close_engine(second)


# --- two processes, one store ----------------------------------------------------------------

RACER = """
import asyncio, json, sys
from datetime import datetime, timedelta
from pathlib import Path
from opsroom.engine.scheduler import Scheduler
from opsroom.testing import Bot

url, catalog, folder, me, other, start, steps = sys.argv[1:8]
folder, start, steps = Path(folder), datetime.fromisoformat(start), int(steps)

async def main():
    while not (folder / "go").exists():  # start together, to collide as much as possible
        await asyncio.sleep(0.001)
    async with Bot.open(catalog_dir=catalog, store_url=url) as bot:
        async def send(reply):
            pass
        clock = [start]
        loop = Scheduler(bot.app.dispatcher, send_for=lambda room: send, now=lambda: clock[0])
        fired = []
        for step in range(steps):
            clock[0] = start + timedelta(minutes=step, seconds=1)
            for happened in await loop.tick():
                fired.append([happened.kind, happened.due.isoformat()])
            # Both processes look at every moment: wait for the other to have looked too.
            (folder / f"{me}-{step}").touch()
            while not (folder / f"{other}-{step}").exists():
                await asyncio.sleep(0.001)  # the jobs this process started go on meanwhile
        await loop.settle()
    print(json.dumps(fired))

asyncio.run(main())
"""
STEPS = 12


async def test_two_processes_fire_each_due_time_exactly_once(
    tmp_path: Path, store_url: str
) -> None:
    db = store_url
    start = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
    # No roles, as in the racing processes: local users may run everything.
    first = await open_engine(db, config=Settings(), at=start - timedelta(seconds=30))
    said = await first.say(
        '!schedule add "* * * * *" echo shell-text --text raced', as_="local:ops", room="local:r"
    )
    assert "schedule 1 added" in said
    await close_engine(first)
    race_args = (start.isoformat(), str(STEPS))
    children = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(db), ECHO, str(tmp_path), me, other, *race_args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for me, other in (("a", "b"), ("b", "a"))
    ]
    (tmp_path / "go").touch()
    results = await asyncio.gather(*(asyncio.to_thread(c.communicate, None, 120) for c in children))
    fired: list[str] = []
    for child, (out, err) in zip(children, results, strict=True):
        assert child.returncode == 0, err
        for kind, due in json.loads(out):
            assert kind == "fired"
            fired.append(due)
    expected = [(start + timedelta(minutes=n)).isoformat() for n in range(STEPS)]
    assert sorted(fired) == expected  # every due time, each by one process only

    store = await Store.open(store_url)
    try:
        jobs = await store.list_jobs(limit=100)
        assert len(jobs) == STEPS
        assert {j.state for j in jobs} == {JobState.SUCCEEDED}
        entries = [r.event for r in await audit_of(store) if r.event.action == "schedule.fire"]
        assert sorted(e.params["due"] for e in entries if e.params) == expected
        assert (await store.check_audit()).broken is None
    finally:
        await store.close()


# --- opsroom serve: missed runs, the API and the console page --------------------------------


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def room_texts(db: Path, room: str) -> list[str]:
    async def read() -> list[str]:
        store = await Store.open(f"sqlite:///{db}")
        try:
            messages = await store.web_messages(room, limit=500)
        finally:
            await store.close()
        return [
            " ".join(str(b.get("text", "")) for b in m.payload.get("blocks", [])) for m in messages
        ]

    return asyncio.run(read())


def looked(served: Served) -> bool:
    return "schedules: 1 active" in served.log


def test_serve_reports_missed_runs_once_across_processes_and_restarts(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    now = datetime.now(UTC)
    at = now + timedelta(hours=12)  # daily at a time 12 h away: 3 fell due in the last 3 days

    async def make() -> None:
        store = await Store.open(f"sqlite:///{db}")
        try:
            await store.add_schedule(
                cron=f"{at.minute} {at.hour} * * *",
                tz="UTC",
                command="echo shell-text --text daily",
                room="web:ops",
                creator="web:admin",
                now=now - timedelta(days=3, hours=1),
                audit=lambda s: AuditEvent(action="schedule.create", principal="web:admin"),
            )
        finally:
            await store.close()

    asyncio.run(make())
    folders = [tmp_path / name for name in ("a", "b")]
    for folder in folders:
        folder.mkdir()
    store_args = ("--catalog", ECHO, "--store", f"sqlite:///{db}")

    def missed() -> list[str]:
        return [t for t in room_texts(db, "web:ops") if "missed" in t]

    first = start_serve(folders[0], *store_args)
    try:
        [report] = wait_for(missed, "the missed-runs report")
        assert "missed 3 runs between" in report
        assert "while opsroom was not running" in report
        second = start_serve(folders[1], *store_args)
        try:
            wait_for(lambda: looked(second), "the second process to look at its schedules")
            assert len(missed()) == 1
        finally:
            second.stop()
    finally:
        first.stop()
    again = start_serve(folders[0], *store_args)
    try:
        wait_for(lambda: looked(again), "the restarted process to look at its schedules")
        assert len(missed()) == 1
    finally:
        again.stop()
    assert not any("TEXT=[daily]" in t for t in room_texts(db, "web:ops"))  # never replayed


def test_serve_api_and_page_add_pause_resume_and_remove_and_keep_them(workdir: Path) -> None:
    served = start_serve(workdir, "--catalog", ECHO)
    try:
        with served.login() as c:
            body = {
                "cron": "0 7 * * 1-5",
                "command": "echo shell-text --text hi",
                "tz": "Europe/Berlin",
                "room": "web:ops",
            }
            made = c.post("/api/v1/schedules", json=body)
            assert made.status_code == 201, made.text
            schedule = made.json()["schedule"]
            assert (schedule["id"], schedule["tz"], schedule["creator"]) == (
                1,
                "Europe/Berlin",
                "web:admin",
            )
            assert len(schedule["next"]) == 3
            assert "schedule 1 added" in made.json()["replies"][0]["blocks"][0]["text"]
            # The room it posts in hears it was made.
            ops = c.get("/api/v1/rooms/ops/messages").json()
            assert any("schedule 1 added" in json.dumps(e) for e in ops)

            bad = c.post("/api/v1/schedules", json={**body, "cron": "0 7 * *"})
            assert bad.status_code == 422
            assert "a schedule takes five" in bad.json()["detail"]
            assert c.post("/api/v1/schedules", json={**body, "every": 1}).status_code == 422

            page = c.get("/schedules")
            assert page.status_code == 200
            assert "!echo shell-text --text hi" in page.text
            assert 'action="/schedules/1/pause"' in page.text
            paused = c.post("/schedules/1/pause", data={"csrf_token": c.headers["X-CSRF-Token"]})
            assert paused.status_code == 200
            assert "paused" in paused.text
            assert 'action="/schedules/1/resume"' in paused.text
            told = wait_for(
                lambda: [
                    e
                    for e in c.get("/api/v1/rooms/ops/messages").json()
                    if "paused by web:admin" in json.dumps(e)
                ],
                "the pause told in the room",
            )
            assert told
            listed = c.get("/api/v1/schedules").json()
            assert [(s["id"], s["paused"], s["next"]) for s in listed] == [(1, True, [])]
            resumed = c.post("/api/v1/schedules/1/resume")
            assert resumed.status_code == 200, resumed.text
            assert resumed.json()["schedule"]["paused"] is False
            assert c.post("/api/v1/schedules/99/pause").status_code == 404

            paths = c.get("/api/v1/openapi.json").json()["paths"]
            assert {"get", "post"} <= set(paths["/api/v1/schedules"])
            assert "delete" in paths["/api/v1/schedules/{schedule_id}"]
            assert "post" in paths["/api/v1/schedules/{schedule_id}/resume"]
    finally:
        served.stop()
    restarted = start_serve(workdir, "--catalog", ECHO)
    try:
        with restarted.login(password=served.password) as c:
            [kept] = c.get("/api/v1/schedules").json()
            assert (kept["id"], kept["command"]) == (1, "echo shell-text --text hi")
            gone = c.delete("/api/v1/schedules/1")
            assert gone.status_code == 200, gone.text
            assert c.get("/api/v1/schedules/1").status_code == 404
            assert c.get("/api/v1/schedules").json() == []
    finally:
        restarted.stop()
