"""Console actions — approve, deny, cancel — said as the chat commands they stand for.

A decision taken on a page must read in the job's room exactly like one typed there:
"approved by …", the job's progress and its result reach the requester's room through
its chat adapter (the same path an approval typed in that room takes), never the page
that asked. The request answers once the decision is known — or after `ACK_WAIT`, while
a cancelled job is still stopping — and the job goes on as a tracked background task of
the web app, which shutdown drains like any other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from opsroom.model.blocks import Reply
from opsroom.model.jobs import Job, JobState
from opsroom.model.messages import Inbound
from opsroom.router.outcome import Outcome
from opsroom.web.context import CONSOLE_ROOM, WebContext

ACK_WAIT = 2.0  # seconds a page waits for the first answer before it says "under way"
Send = Callable[[Reply], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What came of a console action, as far as it is known when the page answers."""

    outcome: Outcome
    replies: tuple[Reply, ...]  # what the person who acted sees on the page
    room: str | None  # the job's room, where its messages went; None when it has no chat


def room_sender(ctx: WebContext, room: str) -> Send | None:
    """Where a job's messages go: its room's chat adapter, the web chat, or nowhere."""
    bridge = ctx.bridges.get(room.partition(":")[0])
    if bridge is not None:
        return bridge.sender(room, None)
    if room.startswith("web:"):

        async def publish(reply: Reply) -> None:
            await ctx.hub.publish_reply(room, reply)

        return publish
    return None  # a terminal's room (`local:`): the job page shows what came of it


async def act(
    ctx: WebContext, principal: str, job: Job | None, text: str, *, wait: bool = False
) -> ActionResult:
    """Say `text` (`!approve 7`, `!cancel 7`, ...) as `principal` about `job`.

    Refusals stay on the page; every other reply goes to the job's room. With `wait`, the
    answer comes when the dispatcher is done (for an approval: when the job ended).
    """
    to_room = room_sender(ctx, job.room) if job is not None else None
    shown: list[Reply] = []
    answered = asyncio.Event()
    # The page's answer is settled by its first non-refusal reply (without `wait`) or when
    # it stops waiting: whatever is said after that (a job queued, its output) is the room's.
    settled = False

    async def send(reply: Reply) -> None:
        nonlocal settled
        if not settled:
            shown.append(reply)
            if reply.kind == "error":
                return  # a refusal stays on the page, until the page has its answer
            settled = not wait
        answered.set()
        if to_room is not None:
            await to_room(reply)

    async def handle() -> Outcome:
        inbound = Inbound(text=text, principal=principal, room=CONSOLE_ROOM)
        outcome = await ctx.engine.dispatcher.handle(inbound, send)
        await ctx.observe(outcome)
        return outcome

    task = ctx.spawn(handle())
    if wait:
        # Shielded: a client that hangs up does not cancel the job it started.
        outcome = await asyncio.shield(task)
        settled = True
    else:
        first = asyncio.ensure_future(answered.wait())
        try:
            await asyncio.wait({task, first}, timeout=ACK_WAIT, return_when="FIRST_COMPLETED")
        finally:
            first.cancel()
        settled = True
        outcome = task.result() if task.done() else await _under_way(ctx, job, answered.is_set())
    room = job.room if job is not None and to_room is not None else None
    return ActionResult(outcome, tuple(shown), room)


async def _under_way(ctx: WebContext, job: Job | None, answered: bool) -> Outcome:
    """The outcome so far of an action whose job goes on in the background; when nothing
    was said yet (a busy server still deciding), its `output` says where the rest goes, so
    the page never shows a bare "done" for what has not happened yet."""
    if job is None:
        return Outcome("running", output="" if answered else "under way")
    now: Job = await ctx.store.get_job(job.id) or job
    if now.state.finished:
        outcome = "succeeded" if now.state is JobState.SUCCEEDED else "failed"
    else:
        outcome = _SO_FAR.get(now.state, "running")
    said = "" if answered else f"under way: what comes of it is said in {now.room}"
    return Outcome(outcome, job_id=now.id, state=now.state, exit_code=now.exit_code, output=said)


# A job not over yet, as an action's outcome says it (router/outcome.py's words).
_SO_FAR = {JobState.AWAITING_APPROVAL: "awaiting_approval", JobState.QUEUED: "queued"}
