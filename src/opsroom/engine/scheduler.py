"""The firing loop of schedules (SPEC §5.7), run by `opsroom serve`.

Each due time is claimed in the store before anything happens: the claim moves the
schedule's cursor past it with a compare-and-set, and writes the audit entry in the same
transaction, so however many processes share the store, one fires it — and a time that
cannot be audited is not fired. The claiming process then checks the creator's policy
again (done before the claim, so the entry says fired or denied) and runs the command as
a new message from the creator in the schedule's room, through the dispatcher, like any
chat request. Due times older than `grace` were missed while nothing was running: they
are reported once in the room, never run.

The loop sleeps until the next due time it knows of, and at most `recheck` seconds, to
see schedules that other processes added; `now` is injected so tests drive the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsroom.engine.schedules import utcnow
from opsroom.errors import ParseError, StoreError, UserError
from opsroom.model.audit import AuditEvent
from opsroom.model.blocks import Reply, Status
from opsroom.model.messages import Inbound
from opsroom.model.schedules import Schedule
from opsroom.router.cron import COUNT_LIMIT, Cron, Plan, plan
from opsroom.router.outcome import Outcome
from opsroom.tasks import raise_if_cancelled

if TYPE_CHECKING:
    from opsroom.engine.dispatch import Dispatcher

log = logging.getLogger("opsroom.schedules")

Send = Callable[[Reply], Awaitable[None]]
Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]
GRACE = timedelta(seconds=60)  # a due time this late still fires; older ones were missed
RECHECK = 30.0  # seconds between looks for schedules other processes added or changed
_LATE = 0.05  # seconds slept past a due time, so the clock has surely reached it


@dataclass(frozen=True, slots=True)
class Happened:
    """What this process did about one schedule in one tick."""

    schedule_id: int
    kind: str  # fired | denied | missed
    due: datetime | None
    detail: str = ""


class Scheduler:
    """Fires the due times of every schedule in the store, once across processes."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        send_for: Callable[[str], Send],
        spawn: Spawn | None = None,
        now: Callable[[], datetime] = utcnow,
        grace: timedelta = GRACE,
        recheck: float = RECHECK,
    ) -> None:
        self.dispatcher = dispatcher
        self.desk = dispatcher.schedules
        self.desk.tell = send_for
        self.store = dispatcher.ctx.store
        self.send_for = send_for
        self.now = now
        self.grace = grace
        self.recheck = recheck
        self._spawn = spawn or asyncio.ensure_future
        self._runs: set[asyncio.Task[Any]] = set()
        self._crons: dict[tuple[str, str], Cron | None] = {}
        # Per schedule: (version, the first due time after its cursor); unchanged schedules
        # need no cron arithmetic until that time comes.
        self._next: dict[int, tuple[int, datetime | None]] = {}
        self._wake: datetime | None = None

    async def run(self) -> None:
        """Tick, then sleep until the next due time (or a change here, or `recheck`)."""
        first = True
        while True:
            self.desk.changed.clear()
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                raise_if_cancelled()
                log.exception("schedules: could not look at what is due")
            else:
                if first:
                    first = False
                    when = self._wake.isoformat() if self._wake else "none"
                    log.info("schedules: %d active, next due %s", len(self._next), when)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.desk.changed.wait(), self.sleep_for())

    def sleep_for(self) -> float:
        """Seconds until the next known due time, at most `recheck`."""
        if self._wake is None:
            return self.recheck
        ahead = (self._wake - self.now()).total_seconds() + _LATE
        return min(self.recheck, max(0.0, ahead))

    async def settle(self) -> None:
        """Wait for the commands this scheduler started to end (tests, shutdown)."""
        while self._runs:
            await asyncio.gather(*list(self._runs), return_exceptions=True)

    async def tick(self) -> list[Happened]:
        """Claim and act on everything due now; what this process did."""
        now = self.now()
        happened: list[Happened] = []
        wake: datetime | None = None
        schedules = await self.store.schedules(active=True)
        self._next = {s.id: self._next[s.id] for s in schedules if s.id in self._next}
        for schedule in schedules:
            cron = self._cron(schedule)
            if cron is None:
                continue
            known = self._next.get(schedule.id)
            if known is None or known[0] != schedule.version:
                known = (schedule.version, _first(cron, schedule.cursor))
                self._next[schedule.id] = known
            upcoming = known[1]
            if upcoming is not None and upcoming <= now:
                todo = plan(cron, cursor=schedule.cursor, now=now, grace=self.grace)
                if todo is not None:
                    happened += await self._claim(schedule, cron, todo)
                    upcoming = _first(cron, max(todo.cursor, now))
                    # Our own claim bumped the version; whoever claimed, the next due
                    # time is past `now`.
                    self._next[schedule.id] = (schedule.version + 1, upcoming)
            if upcoming is not None and (wake is None or upcoming < wake):
                wake = upcoming
        self._wake = wake
        return happened

    def _cron(self, schedule: Schedule) -> Cron | None:
        key = (schedule.cron, schedule.tz)
        if key not in self._crons:
            try:
                self._crons[key] = self.desk.cron_of(schedule)
            except ParseError as e:
                log.error("schedule %d cannot be read: %s", schedule.id, e.message)
                self._crons[key] = None
        return self._crons[key]

    async def _claim(self, schedule: Schedule, cron: Cron, todo: Plan) -> list[Happened]:
        events: list[AuditEvent] = []
        text = await self.desk.masked(schedule.command)
        if todo.missed and todo.first_missed is not None and todo.last_missed is not None:
            events.append(
                self.desk.event(
                    "schedule.missed",
                    schedule,
                    text=text,
                    outcome="missed",
                    count=todo.missed,
                    first=todo.first_missed.isoformat(),
                    last=todo.last_missed.isoformat(),
                )
            )
        denied = ""
        if todo.due is not None:
            try:
                await self.desk.check(schedule.creator, schedule.room, schedule.command)
            except UserError as e:
                denied = e.message
            events.append(
                self.desk.event(
                    "schedule.denied" if denied else "schedule.fire",
                    schedule,
                    text=text,
                    outcome="denied" if denied else "allowed",
                    reason=denied,
                    due=todo.due.isoformat(),
                )
            )
        try:
            claimed = await self.store.claim_schedule(
                schedule.id,
                version=schedule.version,
                cursor=todo.cursor,
                due=todo.due,
                result=f"denied: {denied}" if denied else "started",
                audit=events,
            )
        except StoreError:
            # No audit, no action: the due time stays unclaimed for the next look.
            log.exception("schedule %d: could not claim its due time", schedule.id)
            return []
        if not claimed:
            return []  # another process claimed it, or the schedule changed meanwhile
        send = self.send_for(schedule.room)
        happened = []
        if todo.missed:
            happened.append(Happened(schedule.id, "missed", todo.last_missed, str(todo.missed)))
            await self._say(send, self._missed_text(schedule, cron, todo), "warning")
        if todo.due is not None and denied:
            happened.append(Happened(schedule.id, "denied", todo.due, denied))
            await self._say(
                send,
                f"schedule {schedule.id}: `{self._line(schedule)}` was not run at "
                f"{cron.show(todo.due)} — {denied}",
                "error",
            )
        elif todo.due is not None:
            happened.append(Happened(schedule.id, "fired", todo.due))
            task = self._spawn(self._fire(schedule, cron, todo.due, send))
            self._runs.add(task)
            task.add_done_callback(self._runs.discard)
        return happened

    async def _fire(self, schedule: Schedule, cron: Cron, due: datetime, send: Send) -> Outcome:
        """Run the command as its creator in its room, like a message said there."""
        await self._say(
            send,
            f"schedule {schedule.id} ({schedule.cron}, {schedule.tz}) — "
            f"{cron.show(due)}: `{self._line(schedule)}` as {schedule.creator}",
            "info",
        )
        inbound = Inbound(
            text=self._line(schedule),
            principal=schedule.creator,
            room=schedule.room,
            direct=True,
            interactive=False,  # nobody is there to answer a menu
        )
        try:
            outcome = await self.dispatcher.handle(inbound, send)
        except Exception as e:
            # The firing was claimed and audited; what broke is logged, never retried.
            log.exception("schedule %d: the run at %s failed", schedule.id, due.isoformat())
            outcome = Outcome("failed", output=str(e))
        result = outcome.outcome if outcome.state is None else outcome.state.value
        if outcome.job_id is not None:
            result = f"job {outcome.job_id} {result}"
        with contextlib.suppress(StoreError):
            await self.store.schedule_ran(
                schedule.id, due=due, job_id=outcome.job_id, result=result
            )
        return outcome

    def _line(self, schedule: Schedule) -> str:
        return f"{self.dispatcher.ctx.settings.bot.prefix}{schedule.command}"

    def _missed_text(self, schedule: Schedule, cron: Cron, todo: Plan) -> str:
        assert todo.first_missed is not None
        assert todo.last_missed is not None
        head = f"schedule {schedule.id} (`{self._line(schedule)}`, {schedule.cron})"
        if todo.missed == 1:
            when = f"missed 1 run at {cron.show(todo.first_missed)}"
        else:
            count = f"more than {COUNT_LIMIT:,}" if todo.missed_capped else str(todo.missed)
            when = (
                f"missed {count} runs between {cron.show(todo.first_missed)} and "
                f"{cron.show(todo.last_missed)}"
            )
        return f"{head} {when} while opsroom was not running; they are not run late."

    async def _say(self, send: Send, text: str, level: str) -> None:
        try:
            await send(Reply((Status(text, level),), kind="notice"))
        except Exception:
            log.exception("schedules: could not post to a room")


def _first(cron: Cron, after: datetime) -> datetime | None:
    return next(cron.after(after), None)
