"""The event loop the CLI runs on, and how a stop signal reaches it, on this OS (SPEC §8).

The OS is the runner's platform selector's to tell (runner/platform.py); this module is
where the CLI and the web server ask it, since neither may reach into the runner.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

from opsroom.runner.platform import Platform, current, event_loop_policy


def prepare_event_loop(platform: Platform | None = None) -> asyncio.AbstractEventLoopPolicy | None:
    """Install the event loop policy this OS needs, before any loop starts; the policy
    installed, or None when the default stays (a selector loop on Windows: psycopg)."""
    policy = event_loop_policy(platform)
    if policy is not None:
        asyncio.set_event_loop_policy(policy)
    return policy


def on_stop_signals(
    loop: asyncio.AbstractEventLoop, callback: Callable[[], None], platform: Platform | None = None
) -> Callable[[], None]:
    """Call `callback` on the loop at each stop signal; returns what undoes it.

    SIGTERM and SIGINT on POSIX, watched by the loop. On Windows, where no loop watches
    signals, Python's own handlers for Ctrl+C and Ctrl+Break (what a service manager sends a
    console program to stop it) hand the call to the loop.
    """
    wanted = [signal.SIGTERM, signal.SIGINT]
    if not (platform or current()).windows:
        for sig in wanted:
            loop.add_signal_handler(sig, callback)

        def undo_loop() -> None:
            for sig in wanted:
                loop.remove_signal_handler(sig)

        return undo_loop
    sigbreak = getattr(signal, "SIGBREAK", None)  # Windows' own: Ctrl+Break
    if sigbreak is not None:
        wanted.append(sigbreak)

    def handler(signum: int, frame: Any) -> None:
        loop.call_soon_threadsafe(callback)

    before = {sig: signal.signal(sig, handler) for sig in wanted}

    def undo_handlers() -> None:
        for sig, previous in before.items():
            signal.signal(sig, previous)

    return undo_handlers
