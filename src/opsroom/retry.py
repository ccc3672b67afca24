"""How long to wait before trying again: capped exponential backoff with jitter.

Every retry loop in opsroom (chat platform reconnects, writes the store refused for a
moment) asks `Backoff.delay(attempt)` rather than doubling its own number. Pure: no clock
and no sleeping here, and the randomness can be handed in, so the waits are testable.

Jitter shortens each wait by a random fraction (at most `jitter`): bots that lost the
same server at the same moment then come back spread out, not all at once.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# Doubling stops growing the exponent here: 2**64 times any sane `first` is past any cap.
_MAX_DOUBLINGS = 64


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits that double from `first` seconds up to `cap`, each cut at random by `jitter`."""

    first: float
    cap: float
    jitter: float = 0.5  # 0.5: a wait of d becomes a random wait in (d/2, d]

    def __post_init__(self) -> None:
        if not self.first > 0:
            raise ValueError(f"backoff: the first wait must be above 0 s (got {self.first})")
        if not self.cap >= self.first:
            raise ValueError(f"backoff: the cap {self.cap} s is below the first wait")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"backoff: jitter is a fraction in [0, 1) (got {self.jitter})")

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry `attempt` (0: the first retry); `rand` gives [0, 1)."""
        doublings = min(max(attempt, 0), _MAX_DOUBLINGS)
        full = min(self.cap, self.first * 2.0**doublings)
        if not self.jitter:
            return full
        return full * (1.0 - self.jitter * rand())

    def delays(self, rand: Callable[[], float] = random.random) -> Iterator[float]:
        """The waits before retries 0, 1, 2, … without end."""
        attempt = 0
        while True:
            yield self.delay(attempt, rand)
            attempt += 1
