"""The audit hash chain: stable format, every field covered, breaks found where they are."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from opsroom.model.audit import AuditEvent, AuditRecord
from opsroom.store.audit_chain import entry_hash, first_broken
from opsroom.store.schema import GENESIS_HASH

AT = datetime(2024, 11, 25, 12, 0, 0, 123456, tzinfo=UTC)
EVENT = AuditEvent(
    action="request",
    principal="slack:U024BE7LH",
    room="slack:C0NOC1",
    command="store status",
    params={"region": "emea", "verbose": True},
    job_id=7,
    outcome="allowed",
    reason="role noc",
    catalog_commit="abc123",
    script_hash="f00d",
)


def chain(n: int) -> list[AuditRecord]:
    records, prev = [], GENESIS_HASH
    for i in range(1, n + 1):
        event = dataclasses.replace(EVENT, job_id=i)
        at = AT + timedelta(seconds=i)
        digest = entry_hash(prev, i, at, event)
        records.append(AuditRecord(id=i, at=at, event=event, prev_hash=prev, hash=digest))
        prev = digest
    return records


def test_hash_format_is_stable() -> None:
    # Existing trails must keep verifying after upgrades: this value may never change.
    # It is sha256("0"*64 + the entry as JSON with sorted keys, no spaces, `at` in UTC
    # ISO form with microseconds), computed independently of the code under test.
    assert entry_hash(GENESIS_HASH, 1, AT, EVENT) == (
        "1202e0ebd8f809c1aa78955f474ef02f4907d6ceaf0a27d259782d8d0ab3cea8"
    )


def test_hash_ignores_param_order_and_time_zone() -> None:
    reordered = dataclasses.replace(EVENT, params={"verbose": True, "region": "emea"})
    elsewhere = AT.astimezone(datetime.now().astimezone().tzinfo)
    assert entry_hash(GENESIS_HASH, 1, elsewhere, reordered) == entry_hash(
        GENESIS_HASH, 1, AT, EVENT
    )


@pytest.mark.parametrize(
    "change",
    [
        {"action": "decision"},
        {"principal": "slack:UMALLORY"},
        {"room": "slack:C0OTHER"},
        {"command": "store wipe"},
        {"params": {"region": "us"}},
        {"params": None},
        {"job_id": 8},
        {"outcome": "denied"},
        {"reason": ""},
        {"catalog_commit": "def456"},
        {"script_hash": None},
    ],
)
def test_every_field_is_covered(change: dict[str, object]) -> None:
    edited = dataclasses.replace(EVENT, **change)  # type: ignore[arg-type]
    assert entry_hash(GENESIS_HASH, 1, AT, edited) != entry_hash(GENESIS_HASH, 1, AT, EVENT)


def test_id_time_and_previous_hash_are_covered() -> None:
    base = entry_hash(GENESIS_HASH, 1, AT, EVENT)
    assert entry_hash(GENESIS_HASH, 2, AT, EVENT) != base
    assert entry_hash(GENESIS_HASH, 1, AT + timedelta(microseconds=1), EVENT) != base
    assert entry_hash("1" * 64, 1, AT, EVENT) != base


def test_intact_and_empty_chains_verify() -> None:
    assert first_broken(chain(5)) is None
    assert first_broken([]) is None


def test_edit_deletion_and_reordering_are_found() -> None:
    records = chain(5)
    edited = list(records)
    edited[2] = dataclasses.replace(
        records[2], event=dataclasses.replace(records[2].event, principal="local:mallory")
    )
    assert first_broken(edited) == 3
    assert first_broken(records[:2] + records[3:]) == 4
    assert first_broken([records[0], records[2], records[1], *records[3:]]) == 3
    assert first_broken(records[1:]) == 2
