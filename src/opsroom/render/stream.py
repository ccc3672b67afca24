"""A job's replies as one live message: what it shows, and when it may be edited (pure).

Where a platform edits messages, a job gets one status message edited in place as it runs:
`LiveView` folds each of the job's replies into what that message shows now (its status,
progress, the last lines of output and how many more the full log holds; at the end, the
outcome). `edit_delay` decides whether an edit may go out now or must wait for the
platform's edit rate; `progress_due` thins out progress where every update would be a
new message. No clock is read here: the caller passes `now`, so each decision is tested
with plain numbers.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from opsroom.model.blocks import Block, Code, Progress, Reply, Status

__all__ = ["LIVE_KINDS", "LIVE_TAIL", "LiveView", "edit_delay", "is_final", "progress_due"]

LIVE_KINDS = frozenset({"job", "progress", "output"})  # a job's replies that a live view folds
LIVE_TAIL = 15  # output lines kept in a live status message


@dataclass(slots=True)
class LiveView:
    """What one job's status message shows; fed each of the job's replies in order."""

    status: list[Block] = field(default_factory=list)
    progress: Progress | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=LIVE_TAIL))
    seen: int = 0  # output lines the job printed so far, shown or left out
    link: str | None = None  # where its full log is
    final: Reply | None = None

    def view(self, job_id: int) -> Reply:
        """What the status message shows now."""
        if self.final is not None:
            return self.final
        blocks: list[Block] = list(self.status)
        if self.progress is not None:
            blocks.append(self.progress)
        if self.tail:
            blocks.append(self.code())
        return Reply(tuple(blocks), job_id=job_id, kind="job")

    def code(self) -> Code:
        """The last lines, and how many more the full log holds."""
        return Code(tuple(self.tail), more=max(0, self.seen - len(self.tail)), link=self.link)

    def add_output(self, block: Code) -> None:
        """Lines of a live batch or of the final reply, and the count left out before them."""
        self.tail.extend(block.lines)
        self.seen += block.more + len(block.lines)
        self.link = block.link or self.link

    def absorb(self, reply: Reply) -> bool:
        """Fold one of the job's replies in; True when it was the last (the outcome)."""
        if is_final(reply):
            # The last lines shown live stay; the outcome, tables and files join them, and
            # "N more lines" counts every line the message no longer shows.
            for block in reply.blocks:
                if isinstance(block, Code):
                    self.add_output(block)
            rest = tuple(b for b in reply.blocks if not isinstance(b, Code))
            code = (self.code(),) if self.tail else ()
            self.final = Reply((*code, *rest), job_id=reply.job_id, kind="job")
            return True
        for block in reply.blocks:
            if isinstance(block, Progress):
                self.progress = block
            elif isinstance(block, Code):
                self.add_output(block)
            elif isinstance(block, Status):
                self.status = [block]
        return False


def is_final(reply: Reply) -> bool:
    """The job's last reply ends with its outcome (a success or error status)."""
    return (
        reply.kind == "job"
        and bool(reply.blocks)
        and isinstance(reply.blocks[-1], Status)
        and reply.blocks[-1].level in ("success", "error")
    )


def edit_delay(*, now: float, last_edit: float, edits_per_second: float, force: bool) -> float:
    """Seconds until the message may be edited again: 0 to edit now.

    A forced edit (the outcome, or a wait that has run out) goes out at once; otherwise
    edits keep at least 1/`edits_per_second` apart, so a chatty job costs the platform
    one edit per interval and the newest view wins.
    """
    if force:
        return 0.0
    gap = 1.0 / max(edits_per_second, 0.01)
    return max(0.0, last_edit + gap - now)


def progress_due(*, now: float, last_shown: float | None, every: float) -> bool:
    """Without edits each progress update is a new message: one per `every` seconds at most."""
    return last_shown is None or now - last_shown >= every
