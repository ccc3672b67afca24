"""Jobs: one run of one command, and the events a running job emits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class JobState(StrEnum):
    """Every state a job can be in (SPEC §5.5)."""

    QUEUED = "queued"
    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    INTERRUPTED = "interrupted"
    DENIED = "denied"
    EXPIRED = "expired"

    @property
    def finished(self) -> bool:
        """True when the job will never change state again."""
        return self in _FINAL


_FINAL = frozenset(
    {
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.TIMED_OUT,
        JobState.INTERRUPTED,
        JobState.DENIED,
        JobState.EXPIRED,
    }
)


@dataclass(frozen=True, slots=True)
class Job:
    """A job as recorded in the store."""

    id: int
    command: str
    params: Mapping[str, Any]
    state: JobState
    requester: str
    room: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    catalog_commit: str | None = None
    script_hash: str | None = None
    owner: str | None = None  # the process (host:pid:boot) that runs it
    dry_run: bool = False
    error: str | None = None  # why it failed to start, timed out, etc.
    pid: int | None = None  # the script's process (its process group and session leader)
    process_token: str | None = None  # OPSROOM_JOB_TOKEN: finds the job's processes anywhere
    cancel_requested_by: str | None = None
    output_lines: int = 0  # lines the job printed (also those beyond the stored cap)
    output_truncated: bool = False  # the stored log hit [runner] output_cap
    notified: bool = False  # the requester was told it was interrupted

    @property
    def duration(self) -> float | None:
        """Seconds between start and end (or now-ish callers pass their own end)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


# --- events a running script emits (runner → dispatch → renderer) -------------------------


class Stream(StrEnum):
    """Where a line of output came from."""

    STDOUT = "stdout"
    STDERR = "stderr"


@dataclass(frozen=True, slots=True)
class OutputLine:
    """One line of ordinary output (without its newline)."""

    stream: Stream
    text: str


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """Progress reported by the script through the event channel."""

    percent: float | None
    message: str = ""


@dataclass(frozen=True, slots=True)
class TableEvent:
    """Structured rows: a dict or list of dicts returned or emitted by the script."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """A one-line status the script wants shown prominently."""

    text: str
    level: str = "info"


@dataclass(frozen=True, slots=True)
class AttachmentEvent:
    """A file from the job's own working folder, offered to the room."""

    name: str  # file name as shown (no folders)
    path: str  # absolute path inside the job's working folder, already checked
    size: int
    content_type: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class ExitEvent:
    """The script ended; `exit_code` is None when it was killed by a signal."""

    exit_code: int | None
    state: JobState
    message: str = ""


JobEvent = OutputLine | ProgressEvent | TableEvent | StatusEvent | AttachmentEvent | ExitEvent
