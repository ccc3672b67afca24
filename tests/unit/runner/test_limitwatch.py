"""The thread that reads jobs' cgroup counters (runner/limitwatch.py): a slow read never
holds the event loop, a hit reaches the job's loop, and the thread goes when no job is left."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from opsroom.runner.limitwatch import LimitWatch
from support import async_wait_for


async def test_a_slow_counter_read_does_not_hold_the_loop_and_a_hit_is_handed_over() -> None:
    watch = LimitWatch(poll=0.01)
    reading = threading.Event()
    release = threading.Event()
    answer: list[str | None] = [None]

    def stuck_then_hit() -> str | None:
        # As an open of a cgroup file waits while the kernel moves a process elsewhere.
        reading.set()
        release.wait(30)
        return answer[0]

    hit = watch.watch(stuck_then_hit)
    assert await asyncio.to_thread(reading.wait, 30)
    # The loop runs on while the read is stuck: other tasks finish.
    ticks = 0
    for _ in range(20):
        await asyncio.sleep(0.001)
        ticks += 1
    assert ticks == 20
    assert not hit.done()
    answer[0] = "memory limit 1 MiB reached"
    release.set()
    assert await asyncio.wait_for(hit, 30) == "memory limit 1 MiB reached"


async def test_the_thread_ends_once_no_job_is_watched() -> None:
    watch = LimitWatch(poll=0.01)
    calls: list[int] = []

    def reads(n: int) -> Callable[[], str | None]:
        def check() -> str | None:
            calls.append(n)
            return None

        return check

    first = watch.watch(reads(1))
    second = watch.watch(reads(2))
    await async_wait_for(lambda: {1, 2} <= set(calls))
    threads = [t for t in threading.enumerate() if t.name == "opsroom-limits"]
    assert threads
    first.cancel()
    seen = len(calls)
    await async_wait_for(lambda: calls[seen:].count(2) >= 2)
    assert 1 not in calls[seen + 1 :], "a cancelled watch is read no more"
    second.cancel()
    await async_wait_for(lambda: not any(t.is_alive() for t in threads))
    # And a new watch starts it again.
    third = watch.watch(lambda: "process limit 4 reached")
    assert await asyncio.wait_for(third, 30) == "process limit 4 reached"
