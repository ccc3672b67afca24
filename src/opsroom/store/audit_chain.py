"""The audit hash chain: each entry's hash covers the previous hash and the entry itself."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from opsroom.model.audit import AuditEvent, AuditRecord
from opsroom.store.schema import GENESIS_HASH


def canonical_json(value: Any) -> str:
    """Stable JSON: sorted keys, no spaces; unknown objects become their str()."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def params_json(params: Mapping[str, Any] | None) -> str | None:
    """How an entry's parameters are stored (and hashed)."""
    return None if params is None else canonical_json(dict(params))


def entry_hash(prev_hash: str, entry_id: int, at: datetime, event: AuditEvent) -> str:
    """sha256 hex of the previous hash followed by the canonical JSON of the entry."""
    params = params_json(event.params)
    entry = {
        "id": entry_id,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "action": event.action,
        "principal": event.principal,
        "room": event.room,
        "command": event.command,
        "params": None if params is None else json.loads(params),
        "job_id": event.job_id,
        "outcome": event.outcome,
        "reason": event.reason,
        "catalog_commit": event.catalog_commit,
        "script_hash": event.script_hash,
    }
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(canonical_json(entry).encode("utf-8"))
    return digest.hexdigest()


class ChainCheck:
    """Feed records in id order; `broken` becomes the id of the first bad one."""

    def __init__(self) -> None:
        self.expected_prev = GENESIS_HASH
        self.broken: int | None = None

    def feed(self, record: AuditRecord) -> bool:
        """Check one record; False (and `broken` set) once the chain is broken."""
        if self.broken is not None:
            return False
        recomputed = entry_hash(record.prev_hash, record.id, record.at, record.event)
        if record.prev_hash != self.expected_prev or record.hash != recomputed:
            self.broken = record.id
            return False
        self.expected_prev = record.hash
        return True


def first_broken(records: Iterable[AuditRecord]) -> int | None:
    """The id of the first entry that breaks the chain, or None when all is intact."""
    check = ChainCheck()
    for record in records:
        if not check.feed(record):
            break
    return check.broken
