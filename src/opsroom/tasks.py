"""Ending the background tasks every room keeps: a reader, a timer, a listener."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def stop_task(task: asyncio.Future[Any] | None) -> None:
    """Cancel `task` (None: nothing to do) and wait until it has ended; what it raises on
    its way out stays its own, so the caller goes on with its close."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def raise_if_cancelled() -> None:
    """Raise CancelledError when the running task has been asked to stop.

    For loops that log a failure and go on: a failure met because of the cancel (a
    library's clean-up failing after it, in its place) must not keep the loop, and the
    shutdown waiting for it, going.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
