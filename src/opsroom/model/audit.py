"""Audit entries: who asked for what, where, and what came of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One entry of the audit trail (before the store assigns id and hash)."""

    action: str  # request | decision | job.start | job.end | job.cancel | config.reload ...
    principal: str
    room: str = ""
    command: str = ""
    params: Mapping[str, Any] | None = None
    job_id: int | None = None
    outcome: str = ""
    reason: str = ""
    catalog_commit: str | None = None
    script_hash: str | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An audit entry as stored: with its sequence number, time and chain hash."""

    id: int
    at: datetime
    event: AuditEvent
    prev_hash: str
    hash: str
