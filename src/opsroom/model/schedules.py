"""Schedules: a command run on a five-field cron in a time zone, in a room (SPEC §5.7)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Schedule:
    """A schedule as stored.

    `cursor` is how far its due times have been dealt with (fired, denied or reported
    missed): no due time at or before it is ever fired again. `version` grows with every
    change, so a process claims a due time only if nobody changed the schedule since it
    looked (compare-and-set).
    """

    id: int
    cron: str
    tz: str
    command: str  # the command line as typed, without the prefix
    room: str
    creator: str
    created_at: datetime
    paused: bool
    cursor: datetime
    version: int
    last_due: datetime | None = None  # the due time last fired or denied
    last_job_id: int | None = None
    last_result: str = ""
