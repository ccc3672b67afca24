"""The audit trail: appended in a chain, tampering found, and no audit means no action."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import select

from opsroom.errors import StoreError
from opsroom.model.audit import AuditEvent
from opsroom.store import Store
from opsroom.store.audit_chain import entry_hash
from opsroom.store.schema import GENESIS_HASH, audit
from stores import backend_of, raw_sql, sync_engine


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    store = await Store.open(store_url)
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
    assert (await store.check_audit()).broken is None


async def test_an_empty_trail_verifies(store_url: str) -> None:
    store = await Store.open(store_url)
    try:
        assert (await store.check_audit()).broken is None
    finally:
        await store.close()


Tamper = Callable[[str], None]


def edit(url: str) -> None:
    raw_sql(url, "UPDATE audit SET principal = 'local:mallory' WHERE id = 3")


def edit_params(url: str) -> None:
    raw_sql(url, "UPDATE audit SET params = :p WHERE id = 3", p='{"n":3,"region":"us"}')


def delete(url: str) -> None:
    raw_sql(url, "DELETE FROM audit WHERE id = 3")


def swap(url: str) -> None:
    raw_sql(
        url,
        "UPDATE audit SET id = -1 WHERE id = 2",
        "UPDATE audit SET id = 2 WHERE id = 3",
        "UPDATE audit SET id = 3 WHERE id = -1",
    )


def edit_and_rehash(url: str) -> None:
    """An edit whose own hash is recomputed is still caught by the next entry's link."""
    with sync_engine(url) as engine, engine.connect() as raw:
        at, prev = raw.execute(select(audit.c.at, audit.c.prev_hash).where(audit.c.id == 3)).one()
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
    digest = entry_hash(prev, 3, at, event)
    raw_sql(url, "UPDATE audit SET principal = 'local:mallory', hash = :h WHERE id = 3", h=digest)


@pytest.mark.parametrize(
    ("tamper", "broken"),
    [(edit, 3), (edit_params, 3), (delete, 4), (swap, 2), (edit_and_rehash, 4)],
    ids=["edit", "edit-params", "delete", "swap", "edit-and-rehash"],
)
async def test_tampering_names_the_first_broken_entry(
    store: Store, store_url: str, tamper: Tamper, broken: int
) -> None:
    tamper(store_url)
    verdict = await store.check_audit()
    assert verdict.broken is not None
    assert verdict.broken.entry_id == broken


# A write that the database refuses, as a full disk would: (create, drop) per backend.
REFUSE_AUDIT_WRITES = {
    "sqlite": (
        [
            "CREATE TRIGGER audit_full BEFORE INSERT ON audit "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        ],
        ["DROP TRIGGER audit_full"],
    ),
    "postgresql": (
        [
            "CREATE FUNCTION audit_full() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'disk full'; END $$",
            "CREATE TRIGGER audit_full BEFORE INSERT ON audit "
            "FOR EACH ROW EXECUTE FUNCTION audit_full()",
        ],
        ["DROP TRIGGER audit_full ON audit", "DROP FUNCTION audit_full()"],
    ),
}


async def test_when_the_audit_cannot_be_written_the_append_fails(
    store: Store, store_url: str
) -> None:
    refuse, allow = REFUSE_AUDIT_WRITES[backend_of(store_url)]
    raw_sql(store_url, *refuse)
    with pytest.raises(StoreError, match=r"could not write the audit entry.*disk full"):
        await store.append_audit(AuditEvent(action="request", principal="local:alice"))
    assert [r.id for r in await store.audit(limit=1)] == [5]
    raw_sql(store_url, *allow)
    record = await store.append_audit(AuditEvent(action="request", principal="local:alice"))
    assert record.id == 6
    assert (await store.check_audit()).broken is None
