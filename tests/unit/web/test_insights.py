"""Insights over synthetic job histories: percentiles, failure rates, runs per day, never used."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from opsroom.model.jobs import Job, JobState
from opsroom.web.insights import command_stats, compute, percentile, top_commands

FAILED, TIMED_OUT, INTERRUPTED = JobState.FAILED, JobState.TIMED_OUT, JobState.INTERRUPTED
SUCCEEDED, DENIED, EXPIRED = JobState.SUCCEEDED, JobState.DENIED, JobState.EXPIRED
NOW = datetime(2024, 5, 30, 15, 0, tzinfo=UTC)
_ids = iter(range(1, 10_000))


def job(
    command: str,
    state: JobState = JobState.SUCCEEDED,
    *,
    seconds: float | None = 1.0,
    days_ago: float = 0,
) -> Job:
    created = NOW - timedelta(days=days_ago)
    started = created if seconds is not None else None
    finished = created + timedelta(seconds=seconds) if seconds is not None else None
    return Job(
        id=next(_ids),
        command=command,
        params={},
        state=state,
        requester="local:alice",
        room="local:cli",
        created_at=created,
        started_at=started,
        finished_at=finished,
    )


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 50, 5.0),
        ([5.0], 99, 5.0),
        ([1.0, 2.0], 50, 1.5),
        ([3.0, 1.0, 2.0], 50, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 90, 3.7),
        ([float(i) for i in range(1, 101)], 50, 50.5),
        ([float(i) for i in range(1, 101)], 90, 90.1),
        ([float(i) for i in range(1, 101)], 99, 99.01),
        ([10.0, 10.0, 10.0, 100.0], 99, 97.3),
    ],
)
def test_percentiles_interpolate_between_ranks(
    values: list[float], q: float, expected: float
) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


@pytest.mark.parametrize(
    ("states", "runs", "ended", "failures", "rate"),
    [
        ([JobState.SUCCEEDED] * 3, 3, 3, 0, 0.0),
        ([JobState.SUCCEEDED, JobState.FAILED], 2, 2, 1, 0.5),
        (
            [JobState.FAILED, JobState.TIMED_OUT, JobState.INTERRUPTED, JobState.SUCCEEDED],
            4,
            4,
            3,
            0.75,
        ),
        # A cancel ran to an end and did not fail.
        ([JobState.CANCELLED, JobState.FAILED], 2, 2, 1, 0.5),
        # Denied, expired, waiting and running jobs never ran to an end: no rate from them.
        (
            [JobState.DENIED, JobState.EXPIRED, JobState.AWAITING_APPROVAL, JobState.RUNNING],
            4,
            0,
            0,
            None,
        ),
        ([JobState.DENIED, JobState.FAILED, JobState.QUEUED], 3, 1, 1, 1.0),
    ],
)
def test_failure_rates_count_only_runs_that_ended(
    states: list[JobState], runs: int, ended: int, failures: int, rate: float | None
) -> None:
    (stats,) = command_stats([job("x", s) for s in states])
    assert (stats.runs, stats.ended, stats.failures, stats.failure_rate) == (
        runs,
        ended,
        failures,
        rate,
    )


def test_duration_percentiles_per_command_leave_out_cancelled_and_unstarted_jobs() -> None:
    jobs = [job("a", seconds=s) for s in (1, 2, 3, 4)]
    jobs += [job("a", JobState.CANCELLED, seconds=500), job("a", JobState.DENIED, seconds=None)]
    jobs += [job("b", JobState.FAILED, seconds=10)]
    a, b = command_stats(jobs)
    assert a.command == "a"
    assert a.p50 == 2.5
    assert a.p90 == pytest.approx(3.7)
    assert a.p99 == pytest.approx(3.97)
    assert (b.command, b.p50, b.p90, b.p99) == ("b", 10, 10, 10)
    (never,) = command_stats([job("c", JobState.EXPIRED, seconds=None)])
    assert (never.p50, never.p90, never.p99) == (None, None, None)


def test_top_commands_most_first_ties_by_name_and_limited() -> None:
    jobs = [job("b")] * 2 + [job("a")] * 2 + [job("c")] * 5 + [job("d")]
    assert top_commands(jobs) == [("c", 5), ("a", 2), ("b", 2), ("d", 1)]
    assert top_commands(jobs, limit=2) == [("c", 5), ("a", 2)]


def test_compute_counts_the_last_30_days_and_lists_commands_unused_in_them() -> None:
    jobs = [
        job("store status", days_ago=0),
        job("store status", days_ago=0.2),
        job("store status", JobState.FAILED, days_ago=1),
        job("net check", days_ago=29),
        job("old thing", days_ago=31),  # before the window: counts as never used
    ]
    catalog = ["store status", "net check", "old thing", "vm snap"]
    got = compute(jobs, catalog, now=NOW)
    assert got.since == datetime(2024, 5, 1, tzinfo=UTC)
    assert got.until == datetime(2024, 5, 31, tzinfo=UTC)
    assert len(got.runs_per_day) == 30
    assert got.runs_per_day[0] == (date(2024, 5, 1), 1)
    assert got.runs_per_day[-1] == (date(2024, 5, 30), 2)
    assert got.runs_per_day[-2] == (date(2024, 5, 29), 1)
    assert sum(n for _, n in got.runs_per_day) == got.total == 4
    assert got.top == (("store status", 3), ("net check", 1))
    assert got.never_used == ("old thing", "vm snap")
    rates = {s.command: s.failure_rate for s in got.commands}
    assert rates == {"net check": 0.0, "store status": pytest.approx(1 / 3)}


def test_an_empty_history_gives_zero_days_and_every_command_unused() -> None:
    got = compute([], ["b", "a"], now=NOW, days=7)
    assert [n for _, n in got.runs_per_day] == [0] * 7
    assert got.top == ()
    assert got.commands == ()
    assert got.never_used == ("a", "b")


def test_the_window_is_named_by_its_first_and_last_day() -> None:
    got = compute([], [], now=NOW)
    assert got.last_day == NOW.date(), "the window ends today, not tomorrow"
    assert (got.last_day - got.first_day).days == 29, "30 days, both ends included"
