"""Five-field cron in an IANA time zone, DST-correct (SPEC §5.7), over croniter.

croniter does the calendar arithmetic on naive wall-clock times; this module turns each
wall time into an instant in the schedule's zone:

- a wall time that occurs twice (the clocks go back) fires once, at its first occurrence;
- a wall time that does not exist (the clocks go forward) fires at the moment the clocks
  jump — once, however many skipped times fall into the gap (a daily 02:30 in
  Europe/Berlin runs at 03:00 on the last Sunday of March).

`plan` decides what a schedule does at a given moment: fire the latest due time if it is
at most `grace` old, and count the older ones since the cursor as missed (never run).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

from opsroom.config import time_zone
from opsroom.errors import ParseError

FIELDS = 5
COUNT_LIMIT = 1000  # missed times counted one by one; beyond, "more than 1,000"
_MAX_EXPR = 200
# croniter's own extensions that are not cron: R (random) and H (hashed) would give each
# process different due times.
_NOT_CRON = re.compile(r"(?<![A-Za-z])[RrHh](?![A-Za-z])")
_EXAMPLE = '"0 7 * * 1-5" (07:00 on weekdays)'


@dataclass(frozen=True, slots=True)
class Cron:
    """A validated five-field expression in a time zone."""

    expr: str
    tz: str
    zone: tzinfo

    def after(self, t: datetime) -> Iterator[datetime]:
        """Due instants strictly after `t`, ascending, in UTC (endless unless it never fires)."""
        it = croniter(self.expr, _wall(t.astimezone(self.zone)))
        last = t
        while True:
            try:
                wall = it.get_next(datetime)
            except CroniterBadDateError:
                return
            at = self._instant(wall)
            if at > last:  # walls in a gap share the instant of the jump
                last = at
                yield at

    def latest(self, t: datetime) -> datetime | None:
        """The last due instant at or before `t`, or None."""
        local = t.astimezone(self.zone)
        start = _wall(local)
        if local.fold:
            # `t` is in the second pass of a repeated hour: every wall time of that hour
            # already fired, in the first pass, before `t`.
            first = local.replace(fold=0).utcoffset() or timedelta()
            second = local.utcoffset() or timedelta()
            start += first - second
        it = croniter(self.expr, start + timedelta(seconds=1))
        while True:
            try:
                wall = it.get_prev(datetime)
            except CroniterBadDateError:
                return None
            at = self._instant(wall)
            if at <= t:
                return at

    def upcoming(self, t: datetime, n: int = 3) -> list[datetime]:
        """The next `n` due instants after `t`."""
        found: list[datetime] = []
        for at in self.after(t):
            found.append(at)
            if len(found) == n:
                break
        return found

    def count(self, after: datetime, upto: datetime) -> tuple[int, datetime | None, bool]:
        """Due instants in (`after`, `upto`]: how many (at most COUNT_LIMIT), the first, capped?"""
        n, first = 0, None
        for at in self.after(after):
            if at > upto:
                return n, first, False
            first = first or at
            n += 1
            if n >= COUNT_LIMIT:
                return n, first, True
        return n, first, False

    def show(self, at: datetime) -> str:
        """`Mon 2026-12-07 07:00 CET`: an instant as people in the schedule's zone read it."""
        return at.astimezone(self.zone).strftime("%a %Y-%m-%d %H:%M %Z")

    def _instant(self, wall: datetime) -> datetime:
        """The UTC instant of a wall time: its first occurrence, or the jump over its gap."""
        wall = wall.replace(tzinfo=None, fold=0)
        at = wall.replace(tzinfo=self.zone).astimezone(UTC)
        if _wall(at.astimezone(self.zone)) == wall:
            return at
        # A gap: fold=0 reads the wall time with the offset from before the jump (an
        # instant after it), fold=1 with the offset from after (an instant before it).
        before = wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        lo, hi = min(at, before), max(at, before)
        new_offset = hi.astimezone(self.zone).utcoffset()
        while hi - lo > timedelta(seconds=1):
            mid = lo + (hi - lo) / 2
            if mid.astimezone(self.zone).utcoffset() == new_offset:
                hi = mid
            else:
                lo = mid
        return hi.replace(microsecond=0)  # zones change offset on whole seconds


@dataclass(frozen=True, slots=True)
class Plan:
    """What a schedule does now: claim up to `cursor`, fire `due`, report what was missed."""

    cursor: datetime
    due: datetime | None
    missed: int = 0
    missed_capped: bool = False  # more than COUNT_LIMIT were missed
    first_missed: datetime | None = None
    last_missed: datetime | None = None


def plan(cron: Cron, *, cursor: datetime, now: datetime, grace: timedelta) -> Plan | None:
    """None when nothing fell due after `cursor`; else what to fire and what was missed.

    The latest due time fires when it is at most `grace` old (the loop woke a little
    late, or opsroom just started); every older one since the cursor was missed while
    nothing was running, and is only reported.
    """
    latest = cron.latest(now)
    if latest is None or latest <= cursor:
        return None
    due: datetime | None = None
    last_missed: datetime | None = latest
    if now - latest <= grace:
        due = latest
        last_missed = cron.latest(latest - timedelta(microseconds=1))
        if last_missed is not None and last_missed <= cursor:
            last_missed = None
    if last_missed is None:
        return Plan(cursor=latest, due=due)
    missed, first, capped = cron.count(cursor, last_missed)
    return Plan(
        cursor=latest,
        due=due,
        missed=missed,
        missed_capped=capped,
        first_missed=first,
        last_missed=last_missed,
    )


def parse_cron(expr: str, tz: str) -> Cron:
    """A `Cron` from five fields and a zone name; ParseError saying what is wrong."""
    shown = expr if len(expr) <= 60 else expr[:60] + "…"
    fields = expr.split()
    if len(expr) > _MAX_EXPR or len(fields) != FIELDS:
        raise ParseError(
            f"cron: {shown!r} has {len(fields)} field{'' if len(fields) == 1 else 's'}; a "
            f"schedule takes five — minute hour day-of-month month day-of-week — in quotes, "
            f"e.g. {_EXAMPLE}"
        )
    if any(_NOT_CRON.search(f) for f in fields):
        raise ParseError(f"cron: {shown!r}: R and H are not cron; give the times, e.g. {_EXAMPLE}")
    text = " ".join(fields)
    try:
        croniter(text, datetime(2000, 1, 1))
    except (CroniterBadCronError, CroniterError, ValueError, KeyError, IndexError) as e:
        raise ParseError(f"cron: {shown!r} is not a valid cron expression ({e})") from None
    try:
        zone = time_zone(tz)
    except ValueError as e:
        raise ParseError(f"tz: {e}") from None
    return Cron(text, tz, zone)


def _wall(local: datetime) -> datetime:
    """The naive wall-clock time of an aware datetime."""
    return local.replace(tzinfo=None, fold=0)
