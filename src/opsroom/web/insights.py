"""What the job history says: runs per day, top commands, failure rates, durations, and
commands nobody used — pure functions over a list of jobs, so they test without a store.

A "run" is any job created in the window, whatever became of it. Failure rates count only
jobs that ran to an end (succeeded, failed, timed out, interrupted, cancelled); failed,
timed-out and interrupted ones are failures. Jobs that were denied, expired, or are still
waiting or running say nothing about the script and are left out of rates and durations.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from opsroom.model.jobs import Job, JobState

FAILURES = frozenset({JobState.FAILED, JobState.TIMED_OUT, JobState.INTERRUPTED})
RAN = FAILURES | {JobState.SUCCEEDED, JobState.CANCELLED}
WINDOW_DAYS = 30


@dataclass(frozen=True, slots=True)
class CommandStats:
    """One command's runs in the window: how many, how many failed, how long they took."""

    command: str
    runs: int  # jobs created, any state
    ended: int  # of them, those that ran to an end (the failure-rate denominator)
    failures: int
    p50: float | None  # seconds; None without a finished run
    p90: float | None
    p99: float | None

    @property
    def failure_rate(self) -> float | None:
        """Failures per run that ended, 0..1; None when none ended."""
        return self.failures / self.ended if self.ended else None


@dataclass(frozen=True, slots=True)
class Insights:
    """Everything the insights page shows, for one window ending at `until`."""

    since: datetime
    until: datetime
    runs_per_day: tuple[tuple[date, int], ...]
    top: tuple[tuple[str, int], ...]
    commands: tuple[CommandStats, ...]  # every command run in the window, by name
    never_used: tuple[str, ...]
    total: int

    @property
    def first_day(self) -> date:
        """The window's first UTC day."""
        return self.since.date()

    @property
    def last_day(self) -> date:
        """The window's last UTC day (`until` is the exclusive midnight after it)."""
        return (self.until - timedelta(microseconds=1)).date()


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def in_window(jobs: Iterable[Job], *, since: datetime, until: datetime) -> list[Job]:
    """Jobs created at or after `since` and before `until`."""
    return [j for j in jobs if since <= j.created_at < until]


def runs_per_day(
    jobs: Iterable[Job], *, last: date, days: int = WINDOW_DAYS
) -> list[tuple[date, int]]:
    """Jobs created on each UTC day of the `days` days ending with `last`, zeros included."""
    counts = Counter(j.created_at.astimezone(UTC).date() for j in jobs)
    first = last - timedelta(days=days - 1)
    return [(first + timedelta(days=i), counts[first + timedelta(days=i)]) for i in range(days)]


def top_commands(jobs: Iterable[Job], *, limit: int = 10) -> list[tuple[str, int]]:
    """The most run commands, most first; ties by name."""
    counts = Counter(j.command for j in jobs)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]


def command_stats(jobs: Iterable[Job]) -> list[CommandStats]:
    """Runs, failures and duration percentiles per command, by command name."""
    by_command: dict[str, list[Job]] = {}
    for job in jobs:
        by_command.setdefault(job.command, []).append(job)
    out = []
    for name in sorted(by_command):
        runs = by_command[name]
        ended = [j for j in runs if j.state in RAN]
        durations = [
            d for j in ended if j.state is not JobState.CANCELLED and (d := j.duration) is not None
        ]
        p = [percentile(durations, q) if durations else None for q in (50, 90, 99)]
        out.append(
            CommandStats(
                command=name,
                runs=len(runs),
                ended=len(ended),
                failures=sum(1 for j in ended if j.state in FAILURES),
                p50=p[0],
                p90=p[1],
                p99=p[2],
            )
        )
    return out


def never_used(catalog: Iterable[str], jobs: Iterable[Job]) -> list[str]:
    """Catalog commands with no job among `jobs`, by name."""
    used = {j.command for j in jobs}
    return sorted(set(catalog) - used)


def compute(
    jobs: Iterable[Job],
    catalog: Iterable[str],
    *,
    now: datetime,
    days: int = WINDOW_DAYS,
    top: int = 10,
) -> Insights:
    """All insights for the `days` UTC days ending today (`now`)."""
    today = now.astimezone(UTC).date()
    since = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(), UTC)
    until = datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC)
    recent = in_window(jobs, since=since, until=until)
    return Insights(
        since=since,
        until=until,
        runs_per_day=tuple(runs_per_day(recent, last=today, days=days)),
        top=tuple(top_commands(recent, limit=top)),
        commands=tuple(command_stats(recent)),
        never_used=tuple(never_used(catalog, recent)),
        total=len(recent),
    )
