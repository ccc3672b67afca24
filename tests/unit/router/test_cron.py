"""Five-field cron in a time zone: next times, DST, and what is fired or missed (SPEC §5.7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsroom.errors import ParseError
from opsroom.router.cron import COUNT_LIMIT, parse_cron, plan

GRACE = timedelta(seconds=60)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_the_next_three_weekday_mornings_in_berlin_skip_the_weekend() -> None:
    cron = parse_cron("0 7 * * 1-5", "Europe/Berlin")
    friday_noon = utc(2026, 12, 4, 12, 0)
    assert [cron.show(t) for t in cron.upcoming(friday_noon, 3)] == [
        "Mon 2026-12-07 07:00 CET",
        "Tue 2026-12-08 07:00 CET",
        "Wed 2026-12-09 07:00 CET",
    ]
    # 07:00 in Berlin is 06:00 UTC in winter, 05:00 UTC in summer.
    assert cron.upcoming(friday_noon, 1) == [utc(2026, 12, 7, 6, 0)]
    assert cron.upcoming(utc(2026, 7, 3, 12, 0), 1) == [utc(2026, 7, 6, 5, 0)]


def test_a_time_the_clocks_skip_runs_once_when_they_jump() -> None:
    # Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC); 02:30 never happens.
    daily = parse_cron("30 2 * * *", "Europe/Berlin")
    assert daily.upcoming(utc(2026, 3, 28, 12, 0), 2) == [
        utc(2026, 3, 29, 1, 0),  # at the jump, 03:00 CEST
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST again
    ]
    quarterly = parse_cron("*/15 * * * *", "Europe/Berlin")
    assert [quarterly.show(t) for t in quarterly.upcoming(utc(2026, 3, 29, 0, 40), 3)] == [
        "Sun 2026-03-29 01:45 CET",
        "Sun 2026-03-29 03:00 CEST",  # 02:00, 02:15, 02:30, 02:45 and 03:00: one run
        "Sun 2026-03-29 03:15 CEST",
    ]


def test_a_time_the_clocks_repeat_runs_once_at_its_first_occurrence() -> None:
    # Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:30 happens twice.
    daily = parse_cron("30 2 * * *", "Europe/Berlin")
    assert daily.upcoming(utc(2026, 10, 24, 12, 0), 2) == [
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST; not again at 02:30 CET (01:30 UTC)
        utc(2026, 10, 26, 1, 30),
    ]
    second_pass = utc(2026, 10, 25, 1, 40)  # 02:40 CET, the repeated hour's second pass
    assert daily.latest(second_pass) == utc(2026, 10, 25, 0, 30)
    quarterly = parse_cron("*/15 * * * *", "Europe/Berlin")
    assert quarterly.latest(second_pass) == utc(2026, 10, 25, 0, 45)  # 02:45 CEST
    assert quarterly.upcoming(second_pass, 1) == [utc(2026, 10, 25, 2, 0)]  # 03:00 CET


def test_the_latest_time_fires_when_it_is_within_the_grace() -> None:
    hourly = parse_cron("0 * * * *", "UTC")
    todo = plan(hourly, cursor=utc(2026, 12, 6, 8, 30), now=utc(2026, 12, 6, 9, 0, 40), grace=GRACE)
    assert todo is not None
    assert todo.due == utc(2026, 12, 6, 9, 0)
    assert todo.missed == 0
    assert todo.cursor == utc(2026, 12, 6, 9, 0)
    # Nothing new after the cursor: nothing to do.
    assert plan(hourly, cursor=todo.cursor, now=utc(2026, 12, 6, 9, 30), grace=GRACE) is None


def test_older_times_since_the_cursor_are_missed_and_only_counted() -> None:
    hourly = parse_cron("0 * * * *", "UTC")
    cursor = utc(2026, 12, 6, 5, 30)
    todo = plan(hourly, cursor=cursor, now=utc(2026, 12, 6, 9, 0, 20), grace=GRACE)
    assert todo is not None
    assert (todo.due, todo.missed) == (utc(2026, 12, 6, 9, 0), 3)
    assert (todo.first_missed, todo.last_missed) == (utc(2026, 12, 6, 6, 0), utc(2026, 12, 6, 8, 0))
    # Five minutes late is not "a little late": 09:00 is missed too, nothing fires.
    late = plan(hourly, cursor=cursor, now=utc(2026, 12, 6, 9, 5), grace=GRACE)
    assert late is not None
    assert (late.due, late.missed, late.last_missed) == (None, 4, utc(2026, 12, 6, 9, 0))


def test_a_long_outage_is_counted_up_to_a_limit() -> None:
    minutely = parse_cron("* * * * *", "UTC")
    todo = plan(minutely, cursor=utc(2026, 1, 1), now=utc(2026, 12, 6, 9, 0, 10), grace=GRACE)
    assert todo is not None
    assert todo.missed == COUNT_LIMIT
    assert todo.missed_capped
    assert todo.due == utc(2026, 12, 6, 9, 0)


@pytest.mark.parametrize(
    ("expr", "tz", "says"),
    [
        ("* * * *", "UTC", "has 4 fields; a schedule takes five"),
        ("0 7 * * 1-5 2026", "UTC", "has 6 fields"),
        ("@daily", "UTC", "has 1 field;"),
        ("H 7 * * *", "UTC", "R and H are not cron"),
        ("61 * * * *", "UTC", "is not a valid cron expression"),
        ("0 7 * * *", "Europe/Berln", "did you mean Europe/Berlin"),
        ("0 7 * * *", "localtime", "is not an IANA time zone"),
    ],
)
def test_bad_expressions_and_zones_are_refused_with_the_reason(
    expr: str, tz: str, says: str
) -> None:
    with pytest.raises(ParseError) as refused:
        parse_cron(expr, tz)
    assert says in refused.value.message


def test_names_of_days_and_months_are_cron() -> None:
    cron = parse_cron("0 7 * MAR THU", "UTC")
    assert cron.upcoming(utc(2026, 12, 6), 1) == [utc(2027, 3, 4, 7, 0)]


EXPRESSIONS = ["*/15 * * * *", "30 2 * * *", "0 7 * * 1-5", "5 0-3 * * 0", "0 1 1 * *"]
ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC", "Asia/Kolkata"]


@settings(max_examples=150, deadline=None)
@given(
    expr=st.sampled_from(EXPRESSIONS),
    tz=st.sampled_from(ZONES),
    at=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)),
)
def test_forward_and_backward_agree_around_any_instant(expr: str, tz: str, at: datetime) -> None:
    cron = parse_cron(expr, tz)
    t = at.replace(tzinfo=UTC)
    following = cron.upcoming(t, 3)
    assert len(following) == 3
    assert following == sorted(set(following))  # strictly increasing: no time fires twice
    nxt = following[0]
    assert nxt > t
    # Nothing is due between t and the next time, and the next time is its own latest.
    before = cron.latest(nxt - timedelta(microseconds=1))
    assert before is None or before <= t
    assert cron.latest(nxt) == nxt
