"""The one backoff every retry loop uses: doubling, capped, jittered, bad settings refused."""

from __future__ import annotations

import itertools
import re

import pytest

from opsroom.retry import Backoff


def test_waits_double_from_the_first_up_to_the_cap() -> None:
    waits = Backoff(first=0.5, cap=30.0, jitter=0)
    assert [waits.delay(n) for n in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_a_huge_attempt_number_stays_at_the_cap() -> None:
    assert Backoff(first=0.1, cap=5.0, jitter=0).delay(10_000) == 5.0
    assert Backoff(first=0.1, cap=5.0, jitter=0).delay(-3) == 0.1  # treated as the first


@pytest.mark.parametrize(("rand", "factor"), [(0.0, 1.0), (0.5, 0.75), (0.999, 0.5005)])
def test_jitter_shortens_a_wait_by_at_most_its_fraction(rand: float, factor: float) -> None:
    waits = Backoff(first=1.0, cap=60.0, jitter=0.5)
    assert waits.delay(3, rand=lambda: rand) == pytest.approx(8.0 * factor)


def test_real_randomness_stays_within_the_jitter_band() -> None:
    waits = Backoff(first=2.0, cap=2.0, jitter=0.5)
    seen = [waits.delay(0) for _ in range(200)]
    assert all(1.0 < s <= 2.0 for s in seen)
    assert len(set(seen)) > 1, "reconnecting bots must not all come back at the same moment"


def test_delays_is_the_same_sequence_without_end() -> None:
    waits = Backoff(first=1.0, cap=4.0, jitter=0)
    assert list(itertools.islice(waits.delays(), 5)) == [1, 2, 4, 4, 4]


@pytest.mark.parametrize(
    ("first", "cap", "jitter", "message"),
    [
        (0.0, 1.0, 0.5, "the first wait must be above 0 s"),
        (2.0, 1.0, 0.5, "the cap 1.0 s is below the first wait"),
        (1.0, 2.0, 1.0, "jitter is a fraction in [0, 1)"),
        (1.0, 2.0, -0.1, "jitter is a fraction in [0, 1)"),
    ],
)
def test_settings_that_would_spin_or_never_wait_are_refused(
    first: float, cap: float, jitter: float, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Backoff(first=first, cap=cap, jitter=jitter)
