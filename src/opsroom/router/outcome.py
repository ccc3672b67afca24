"""What came of one message: the summary `opsroom run --json` prints last."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opsroom.model.jobs import JobState


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of handling one message."""

    outcome: str  # ignored | succeeded | failed | refused | awaiting_approval | running | queued
    job_id: int | None = None
    state: JobState | None = None
    exit_code: int | None = None
    output: str = ""

    @property
    def cli_exit_code(self) -> int:
        """0 accepted and succeeded (or waiting), 1 ran and failed, 2 refused (SPEC §7.2)."""
        if self.outcome == "refused":
            return 2
        if self.outcome == "failed":
            return 1
        return 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary line."""
        return {
            "outcome": self.outcome,
            "job_id": self.job_id,
            "state": self.state.value if self.state else None,
            "exit_code": self.exit_code,
            "output": self.output,
        }
