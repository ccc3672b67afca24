"""The audit trail: appended in a chain, tampering found, and no audit means no action."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsroom.errors import StoreError
from opsroom.model.audit import AuditEvent
from opsroom.store import Store
from opsroom.store.audit_chain import entry_hash
from opsroom.store.schema import GENESIS_HASH


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "opsroom.db"


@pytest.fixture
async def store(db: Path) -> AsyncIterator[Store]:
    store = await Store.open(f"sqlite:///{db}")
    for i in range(1, 6):
        await store.append_audit(
            AuditEvent(
                action="request",
                principal=f"local:user{i}",
                room="local:ops",
                command="store status",
                params={"region": "emea", "n": i},
                job_id=i,
                outcome="allowed",
                catalog_commit="abc123",
                script_hash="f00d",
            )
        )
    yield store
    await store.close()


def raw_sql(db: Path, *statements: str) -> None:
    with sqlite3.connect(db) as raw:
        for statement in statements:
            raw.execute(statement)
    raw.close()


async def test_entries_are_chained_and_read_back_newest_first(store: Store) -> None:
    records = await store.audit()
    assert [r.id for r in records] == [5, 4, 3, 2, 1]
    assert records[-1].prev_hash == GENESIS_HASH
    for newer, older in itertools.pairwise(records):
        assert newer.prev_hash == older.hash
        assert newer.at >= older.at
    assert records[0].event.params == {"region": "emea", "n": 5}
    assert records[0].event.principal == "local:user5"
    assert [r.id for r in await store.audit(limit=2)] == [5, 4]
    assert await store.verify_audit() is None


async def test_an_empty_trail_verifies(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        assert await store.verify_audit() is None
    finally:
        await store.close()


Tamper = Callable[[Path], None]


def edit(db: Path) -> None:
    raw_sql(db, "UPDATE audit SET principal = 'local:mallory' WHERE id = 3")


def edit_params(db: Path) -> None:
    raw_sql(db, """UPDATE audit SET params = '{"n":3,"region":"us"}' WHERE id = 3""")


def delete(db: Path) -> None:
    raw_sql(db, "DELETE FROM audit WHERE id = 3")


def swap(db: Path) -> None:
    raw_sql(
        db,
        "UPDATE audit SET id = -1 WHERE id = 2",
        "UPDATE audit SET id = 2 WHERE id = 3",
        "UPDATE audit SET id = 3 WHERE id = -1",
    )


def edit_and_rehash(db: Path) -> None:
    """An edit whose own hash is recomputed is still caught by the next entry's link."""
    with sqlite3.connect(db) as raw:
        at, prev = raw.execute("SELECT at, prev_hash FROM audit WHERE id = 3").fetchone()
    raw.close()
    event = AuditEvent(
        action="request",
        principal="local:mallory",
        room="local:ops",
        command="store status",
        params={"region": "emea", "n": 3},
        job_id=3,
        outcome="allowed",
        catalog_commit="abc123",
        script_hash="f00d",
    )
    when = datetime.fromisoformat(at).replace(tzinfo=UTC)
    digest = entry_hash(prev, 3, when, event)
    with sqlite3.connect(db) as raw:
        raw.execute(
            "UPDATE audit SET principal = 'local:mallory', hash = ? WHERE id = 3", (digest,)
        )
    raw.close()


@pytest.mark.parametrize(
    ("tamper", "broken"),
    [(edit, 3), (edit_params, 3), (delete, 4), (swap, 2), (edit_and_rehash, 4)],
    ids=["edit", "edit-params", "delete", "swap", "edit-and-rehash"],
)
async def test_tampering_names_the_first_broken_entry(
    store: Store, db: Path, tamper: Tamper, broken: int
) -> None:
    tamper(db)
    assert await store.verify_audit() == broken


async def test_when_the_audit_cannot_be_written_the_append_fails(store: Store, db: Path) -> None:
    raw_sql(
        db,
        "CREATE TRIGGER audit_full BEFORE INSERT ON audit "
        "BEGIN SELECT RAISE(ABORT, 'disk full'); END",
    )
    with pytest.raises(StoreError, match=r"could not write the audit entry.*disk full"):
        await store.append_audit(AuditEvent(action="request", principal="local:alice"))
    assert [r.id for r in await store.audit(limit=1)] == [5]
    raw_sql(db, "DROP TRIGGER audit_full")
    record = await store.append_audit(AuditEvent(action="request", principal="local:alice"))
    assert record.id == 6
    assert await store.verify_audit() is None
