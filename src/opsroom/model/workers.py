"""Workers: the `opsroom worker` processes that run the jobs of one queue (SPEC §8)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

DEFAULT_QUEUE = "default"
"""The queue of commands without `runs_on` when the bot's host runs nothing (`[runner] local`)."""


@dataclass(frozen=True, slots=True)
class Worker:
    """One worker as it registered, and how it is doing now.

    `lost` is set once it stopped beating (its running jobs were then interrupted);
    `stopped` once it stopped cleanly.
    """

    id: int
    name: str
    queue: str
    host: str
    os: str
    version: str
    catalog_commit: str | None
    owner: str  # the process, as a job it runs names its owner
    started_at: datetime
    last_heartbeat: datetime
    running_jobs: tuple[int, ...] = ()
    lost: datetime | None = None
    stopped: datetime | None = None

    @property
    def state(self) -> str:
        """`live`, `lost` or `stopped`."""
        if self.stopped is not None:
            return "stopped"
        return "lost" if self.lost is not None else "live"
