"""The audit hash chain: each entry's hash covers the previous hash and the entry itself."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opsroom.model.audit import AuditEvent, AuditRecord
from opsroom.store.schema import GENESIS_HASH

# Why an entry breaks the chain; `relinked` is a link break whose cause is not yet known.
EDITED = "edited"
MISSING = "missing"
REORDERED = "reordered"
INSERTED = "inserted"
RELINKED = "relinked"
TRUNCATED = "truncated"
REWRITTEN = "rewritten"


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


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first entry that breaks the chain, what kind of break it is, and a sentence."""

    entry_id: int
    problem: str  # EDITED | MISSING | REORDERED | INSERTED | RELINKED | TRUNCATED | REWRITTEN
    message: str


@dataclass(frozen=True, slots=True)
class AuditVerdict:
    """The outcome of recomputing the whole chain."""

    entries: int  # entries checked (all of them when intact)
    last_id: int | None
    last_at: datetime | None
    head: str  # hash of the last intact entry (GENESIS_HASH for an empty log)
    broken: ChainBreak | None = None

    @property
    def intact(self) -> bool:
        """True when no entry breaks the chain."""
        return self.broken is None


def _span(first: int, last: int) -> str:
    return f"entry #{first}" if first == last else f"entries #{first}–#{last}"


class ChainCheck:
    """Feed records in id order; `broken` becomes the id of the first bad one.

    Ids are gap-free from 1 (the store assigns last + 1), so a gap is a deletion even
    before any hash is looked at.
    """

    def __init__(self) -> None:
        self.expected_prev = GENESIS_HASH
        self.expected_id = 1
        self.count = 0
        self.last: AuditRecord | None = None
        self.problem: ChainBreak | None = None

    @property
    def broken(self) -> int | None:
        """The id of the first entry that breaks the chain, None while intact."""
        return None if self.problem is None else self.problem.entry_id

    def feed(self, record: AuditRecord) -> bool:
        """Check one record; False (and `problem` set) once the chain is broken."""
        if self.problem is not None:
            return False
        self.problem = self._check(record)
        if self.problem is not None:
            return False
        self.expected_prev = record.hash
        self.expected_id = record.id + 1
        self.count += 1
        self.last = record
        return True

    def fail(self, problem: ChainBreak) -> None:
        """Record a break found outside the chain itself (an unreadable row, an anchor)."""
        if self.problem is None:
            self.problem = problem

    def _check(self, record: AuditRecord) -> ChainBreak | None:
        rid = record.id
        if rid > self.expected_id:
            missing = _span(self.expected_id, rid - 1)
            return ChainBreak(
                rid,
                MISSING,
                f"entry #{rid}: previous-hash link broken — {missing} missing (deleted?)",
            )
        if rid < self.expected_id:
            return ChainBreak(
                rid,
                INSERTED,
                f"entry #{rid}: unexpected id, expected #{self.expected_id} (inserted?)",
            )
        if record.prev_hash != self.expected_prev:
            return link_break(rid, None)
        if record.hash != entry_hash(record.prev_hash, rid, record.at, record.event):
            return ChainBreak(
                rid, EDITED, f"entry #{rid}: hash does not match its content (edited?)"
            )
        return None

    def verdict(self) -> AuditVerdict:
        """What the records fed so far amount to."""
        last = self.last
        return AuditVerdict(
            entries=self.count,
            last_id=None if last is None else last.id,
            last_at=None if last is None else last.at,
            head=self.expected_prev,
            broken=self.problem,
        )


def link_break(entry_id: int, follows: int | None) -> ChainBreak:
    """Explain a broken previous-hash link, knowing which entry (if any) it points at now."""
    head = f"entry #{entry_id}: previous-hash link broken — "
    before = entry_id - 1
    if follows is None:
        if before < 1:
            return ChainBreak(
                entry_id, RELINKED, head + "the first entry does not start from the genesis hash"
            )
        return ChainBreak(
            entry_id,
            RELINKED,
            head + f"entry #{before} was replaced or rewritten, or the entry it followed is gone",
        )
    if follows > before:
        return ChainBreak(
            entry_id, REORDERED, head + f"it follows entry #{follows}: entries reordered"
        )
    inserted = _span(follows + 1, before)
    verb = "was" if follows + 1 == before else "were"
    return ChainBreak(
        entry_id, INSERTED, head + f"it follows entry #{follows}, so {inserted} {verb} inserted"
    )


def unreadable(entry_id: int, error: Exception) -> ChainBreak:
    """A row whose stored values cannot even be read back (bad JSON, a bad timestamp)."""
    return ChainBreak(entry_id, EDITED, f"entry #{entry_id}: cannot be read ({error}) (edited?)")


def anchor_break(
    anchor_id: int, anchor_hash: str, found: str | None, last_id: int | None
) -> ChainBreak | None:
    """Compare a head recorded elsewhere earlier with what the log holds now.

    A chain alone cannot tell that its last entries were deleted; an anchor kept
    outside the database can.
    """
    if found is None:
        ends = "the log is empty" if last_id is None else f"the log ends at #{last_id}"
        return ChainBreak(
            anchor_id, TRUNCATED, f"entry #{anchor_id}: missing — {ends} (truncated?)"
        )
    if not found.startswith(anchor_hash.lower()):
        return ChainBreak(
            anchor_id,
            REWRITTEN,
            f"entry #{anchor_id}: hash {found[:12]} differs from the anchor "
            f"{anchor_hash[:12]} (log rewritten?)",
        )
    return None


def first_broken(records: Iterable[AuditRecord]) -> int | None:
    """The id of the first entry that breaks the chain, or None when all is intact."""
    check = ChainCheck()
    for record in records:
        if not check.feed(record):
            break
    return check.broken
