"""Platform retries run once: the delivery-dedupe every webhook and websocket adapter shares.

Slack, Mattermost, Discord and Teams may deliver one event twice (a retry after a slow
acknowledgement, a replay after a reconnect, a second opsroom process behind the same
URL). Each adapter names every delivery by a stable key and asks `Deliveries.first(key)`:
a bounded memory answers a repeat at once, and the engine's `first_delivery` (the store,
under `opsroom serve`) answers across restarts and processes. Without the store the
memory alone answers, in this process only.

When the store refuses a key for a moment, the delivery is acted on (the request itself
is audited, or refused: no audit, no action) and the key is recorded in the background
until the store takes it, so a redelivery later is still recognised. `settle()` waits for
those recordings before the adapter closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from opsroom.retry import Backoff

__all__ = ["Deliveries", "FirstDelivery"]

FirstDelivery = Callable[[str], Awaitable[bool]]
REMEMBER = 2048  # keys answered from memory in front of the store
RECORD_BACKOFF = Backoff(first=0.1, cap=5.0)

log = logging.getLogger("opsroom.adapters.deliveries")


class Deliveries:
    """`first(key)`: True only for the first delivery of `key` (in the store when there is one)."""

    def __init__(
        self, platform: str, record: FirstDelivery | None, *, remember: int = REMEMBER
    ) -> None:
        self.platform = platform
        self._record = record
        self._remember = remember
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._recording = 0  # keys being recorded now; `settle` waits for them
        self._idle = asyncio.Event()
        self._idle.set()
        self._background: set[asyncio.Task[None]] = set()

    async def first(self, key: str) -> bool:
        """True the first time `key` is delivered; a repeat is logged and answered False."""
        if key in self._recent:
            self._dropped(key)
            return False
        self._recent[key] = None
        while len(self._recent) > self._remember:
            self._recent.popitem(last=False)
        if self._record is None:
            return True
        self._begin()
        try:
            first = await self._record(key)
        except Exception:  # the store's own error types vary by backend
            log.exception(
                "could not record a %s delivery yet; retrying in the background", self.platform
            )
            self._begin()
            task = asyncio.create_task(self._record_later(key))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return True
        finally:
            self._end()
        if not first:
            self._dropped(key)
        return first

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait (at most `timeout` seconds) for keys still being recorded, then stop trying."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=timeout)
        for task in list(self._background):
            task.cancel()

    def _dropped(self, key: str) -> None:
        log.info("dropped a repeated %s delivery", self.platform, extra={"key": key})

    def _begin(self) -> None:
        self._recording += 1
        self._idle.clear()

    def _end(self) -> None:
        self._recording -= 1
        if not self._recording:
            self._idle.set()

    async def _record_later(self, key: str) -> None:
        """Keep trying to record a key the store refused, backing off to 5 s."""
        assert self._record is not None
        try:
            for delay in RECORD_BACKOFF.delays():
                await asyncio.sleep(delay)
                try:
                    await self._record(key)
                    return
                except Exception as e:  # the store's own error types vary by backend
                    log.warning("still could not record a %s delivery (%s)", self.platform, e)
        finally:
            self._end()
