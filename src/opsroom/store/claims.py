"""Starting queued jobs within the concurrency limits (SPEC §5.5), and saying why not."""

from __future__ import annotations

from dataclasses import dataclass

from opsroom.model.jobs import Job


@dataclass(frozen=True)
class Limits:
    """How many jobs may run at once: overall, per command (None = no limit), per requester."""

    total: int
    per_command: int | None
    per_user: int


@dataclass(frozen=True)
class Claim:
    """The outcome of `Store.claim_job`: the job as it now stands, and if it did not start, why.

    `blocked_by` names a running job to wait for ("queued behind job N"), or an older
    queued job of the same command that goes first.
    """

    claimed: bool
    job: Job
    blocked_by: int | None = None
    reason: str = ""


def per_command_reason(command: str, limit: int) -> str:
    """Why a per-command limit holds a job, e.g. "1 `storage migrate` job may run at a time"."""
    return f"{limit} `{command}` {_jobs(limit)} may run at a time"


def total_reason(limit: int) -> str:
    """Why the overall limit holds a job, e.g. "8 jobs are running (the limit)"."""
    verb = "is" if limit == 1 else "are"
    return f"{limit} {_jobs(limit)} {verb} running (the limit)"


def per_user_reason(limit: int) -> str:
    """Why the per-user limit holds a job, e.g. "you have 4 jobs running (the per-user limit)"."""
    return f"you have {limit} {_jobs(limit)} running (the per-user limit)"


def _jobs(n: int) -> str:
    return "job" if n == 1 else "jobs"
