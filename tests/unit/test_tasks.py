"""Background loops of `opsroom serve` stop when cancelled, whatever failure the cancel causes."""

from __future__ import annotations

import asyncio

from opsroom.tasks import raise_if_cancelled


async def test_a_loop_that_logs_failures_and_goes_on_stops_when_its_cancel_turns_into_one() -> None:
    rounds = 0
    entered = asyncio.Event()

    async def work() -> None:
        try:
            entered.set()
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            # A library cleaning up after the cancel fails, and its error replaces the cancel.
            raise RuntimeError("could not roll back") from None

    async def loop() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            try:
                await work()
            except Exception:
                raise_if_cancelled()
            await asyncio.sleep(0.01)

    task = asyncio.create_task(loop())
    await entered.wait()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert done, f"the loop outlived its cancel ({rounds} rounds)"
    assert task.cancelled()
    assert rounds == 1


async def test_a_failure_without_a_cancel_lets_the_loop_go_on() -> None:
    failures = 0

    async def loop() -> int:
        nonlocal failures
        while failures < 3:
            try:
                raise RuntimeError("the store is away")
            except Exception:
                raise_if_cancelled()
                failures += 1
            await asyncio.sleep(0)
        return failures

    assert await loop() == 3
