"""Flood control: a token bucket pacing the bot's lines so servers never kick it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """`burst` lines at once, then `rate` lines per second."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def reserve(self) -> float:
        """Take one token; seconds to wait before using it (0 when one was free)."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= 1.0
        # A negative balance is a queue of reservations: each waits its turn.
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    async def take(self) -> None:
        """Wait until one more line may be sent."""
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)
