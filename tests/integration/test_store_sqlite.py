"""Jobs, output, events and reconcile in a real store (on each backend), and what opening an
unusable SQLite file says."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC
from pathlib import Path

import pytest

from opsroom.errors import StoreError
from opsroom.model.audit import AuditEvent
from opsroom.model.jobs import Job, JobState
from opsroom.store import Limits, Store, owner_alive, owner_id
from stores import raw_sql

NO_LIMITS = Limits(total=1000, per_command=None, per_user=1000)
CAP = 1_000_000  # bytes of output kept per job, far above what these tests write


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    store = await Store.open(store_url)
    yield store
    await store.close()


async def new_job(store: Store, command: str = "store status", **kw: object) -> int:
    job = await store.create_job(
        command=command,
        params=kw.pop("params", {"region": "emea"}),  # type: ignore[arg-type]
        requester=str(kw.pop("requester", "local:alice")),
        room="local:ops",
        **kw,  # type: ignore[arg-type]
    )
    return job.id


async def start(store: Store, job_id: int, owner: str | None = None) -> Job:
    """Start a queued job the way the product does: a claim no limit holds back."""
    claim = await store.claim_job(job_id, owner=owner or owner_id(), limits=NO_LIMITS)
    assert claim.claimed, claim.reason
    return claim.job


async def test_a_job_is_created_started_and_finished(store: Store) -> None:
    created = await store.create_job(
        command="store status",
        params={"region": "emea", "hosts": ["a", "b"], "verbose": True},
        requester="slack:U1",
        room="slack:C1",
        catalog_commit="abc123",
        script_hash="f00d",
        dry_run=True,
    )
    assert created.state is JobState.QUEUED
    assert created.created_at.tzinfo is UTC
    assert await store.get_job(created.id) == created

    started = await start(store, created.id)
    assert started.state is JobState.RUNNING
    assert started.owner == owner_id()
    assert started.started_at is not None
    assert started.started_at >= created.created_at

    done = await store.finish_job(created.id, state=JobState.FAILED, exit_code=3, error="boom")
    assert (done.state, done.exit_code, done.error) == (JobState.FAILED, 3, "boom")
    assert done.finished_at is not None
    assert done.finished_at.tzinfo is UTC
    assert done.duration is not None
    assert done.duration >= 0
    assert done.params == {"region": "emea", "hosts": ["a", "b"], "verbose": True}
    assert (done.catalog_commit, done.script_hash, done.dry_run) == ("abc123", "f00d", True)
    assert await store.get_job(created.id) == done


async def test_a_missing_job_is_none(store: Store) -> None:
    assert await store.get_job(999) is None


async def test_jobs_are_listed_newest_first_and_filtered(store: Store) -> None:
    first = await new_job(store, requester="local:alice")
    second = await new_job(store, requester="local:bob")
    third = await new_job(store, requester="local:alice", state=JobState.AWAITING_APPROVAL)
    await start(store, second)

    assert [j.id for j in await store.list_jobs()] == [third, second, first]
    assert [j.id for j in await store.list_jobs(limit=2)] == [third, second]
    assert [j.id for j in await store.list_jobs(requester="local:alice")] == [third, first]
    running = await store.list_jobs(states=[JobState.RUNNING])
    assert [j.id for j in running] == [second]
    waiting = await store.list_jobs(states={JobState.QUEUED, JobState.AWAITING_APPROVAL})
    assert [j.id for j in waiting] == [third, first]
    assert await store.list_jobs(states=[JobState.RUNNING], requester="local:alice") == []


async def test_job_ids_are_never_reused_after_a_delete(store: Store, store_url: str) -> None:
    await new_job(store)
    last = await new_job(store)
    raw_sql(store_url, "DELETE FROM jobs WHERE id = :id", id=last)
    assert await new_job(store) == last + 1


async def test_a_job_cannot_start_twice_or_when_missing(store: Store) -> None:
    job = await new_job(store)
    await start(store, job)
    again = await store.claim_job(job, owner="elsewhere:1:x:1", limits=NO_LIMITS)
    assert (again.claimed, again.reason) == (False, f"job {job} is running")
    assert (await store.get_job(job)).owner == owner_id()  # type: ignore[union-attr]
    with pytest.raises(StoreError, match="job 404 does not exist"):
        await store.claim_job(404, owner=owner_id(), limits=NO_LIMITS)
    with pytest.raises(StoreError, match="job 404 does not exist"):
        await store.finish_job(404, state=JobState.FAILED, exit_code=1)


async def test_finishing_a_cancelled_job_keeps_the_cancel(store: Store) -> None:
    job = await new_job(store)
    await start(store, job)
    cancelled = await store.finish_job(job, state=JobState.CANCELLED, exit_code=None)
    assert cancelled.finished_at is not None
    ended = await store.finish_job(job, state=JobState.FAILED, exit_code=-15, error="killed")
    assert ended.state is JobState.CANCELLED
    assert (ended.exit_code, ended.error) == (-15, "killed")
    assert ended.finished_at == cancelled.finished_at  # the first end stands


async def test_finish_needs_a_final_state(store: Store) -> None:
    job = await new_job(store)
    with pytest.raises(ValueError, match="final state"):
        await store.finish_job(job, state=JobState.RUNNING, exit_code=None)


async def test_output_keeps_its_order_and_tail_gives_the_last_lines(store: Store) -> None:
    job = await new_job(store)
    other = await new_job(store)
    batches: list[dict[int, list[tuple[str, str]]]] = [
        {job: [("stdout", "one"), ("stderr", "two")], other: [("stdout", "not mine")]},
        {job: []},
        {job: [("stdout", "three"), ("stdout", ""), ("stdout", "fünf ✓")]},
    ]
    for batch in batches:
        assert await store.record_outputs(batch, cap_bytes=CAP) == set()  # all kept

    expected = [
        ("stdout", "one"),
        ("stderr", "two"),
        ("stdout", "three"),
        ("stdout", ""),
        ("stdout", "fünf ✓"),
    ]
    assert await store.output(job) == expected
    assert await store.output(job, tail=2) == expected[-2:]
    assert await store.output(job, tail=50) == expected
    assert await store.output(job, tail=0) == []
    assert await store.output(other) == [("stdout", "not mine")]
    assert await store.output(404) == []


async def test_output_for_a_missing_job_is_refused(store: Store) -> None:
    job = await new_job(store)
    with pytest.raises(StoreError, match="job 404 does not exist"):
        await store.record_outputs({job: [("stdout", "x")], 404: [("stdout", "x")]}, cap_bytes=CAP)
    assert await store.output(job) == []  # the batch is one transaction: nothing kept


async def test_events_come_back_as_written(store: Store) -> None:
    job = await new_job(store)
    progress = {"type": "progress", "percent": 40.5, "message": "copying"}
    table = {"type": "table", "columns": ["vol", "size"], "rows": [["v1", "10G"]]}
    await store.append_events(job, [progress])
    await store.append_events(job, [table, {"type": "status", "text": "ok", "level": "info"}])
    assert await store.events(job) == [
        progress,
        table,
        {"type": "status", "text": "ok", "level": "info"},
    ]
    assert await store.events(404) == []


async def test_reconcile_interrupts_only_jobs_of_dead_owners(store: Store) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "from opsroom.store import owner_id; print(owner_id())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    orphan = await new_job(store)
    mine = await new_job(store)
    queued = await new_job(store)
    await start(store, orphan, owner=gone)
    await start(store, mine)

    interrupted = await store.reconcile(is_owner_alive=owner_alive)

    assert [j.id for j in interrupted] == [orphan]
    assert interrupted[0].state is JobState.INTERRUPTED
    assert interrupted[0].finished_at is not None
    assert gone in (interrupted[0].error or "")
    assert (await store.get_job(mine)).state is JobState.RUNNING  # type: ignore[union-attr]
    assert (await store.get_job(queued)).state is JobState.QUEUED  # type: ignore[union-attr]
    # Told once: a second pass finds nothing more.
    assert await store.reconcile(is_owner_alive=owner_alive) == []


async def test_queued_jobs_survive_a_reopen(store: Store, store_url: str) -> None:
    job = await new_job(store)
    await store.close()
    again = await Store.open(store_url)
    try:
        assert (await again.get_job(job)).state is JobState.QUEUED  # type: ignore[union-attr]
    finally:
        await again.close()


async def test_a_chat_delivery_is_recorded_as_new_only_once(store: Store) -> None:
    # A platform retrying an event: the second copy must be recognised and run nothing.
    assert await store.first_delivery("slack:T1:C1:171.01")
    assert not await store.first_delivery("slack:T1:C1:171.01")
    assert await store.first_delivery("slack:T1:C1:171.02")


async def test_long_names_from_outside_are_kept_on_every_backend(store: Store) -> None:
    # Teams conversation ids, Matrix room aliases, file names: SQLite never enforced the
    # column lengths, so PostgreSQL must not either, or the audit entry a command needs fails.
    room, who, command = "teams:" + "r" * 700, "teams:" + "u" * 700, "c" * 500
    job = await store.create_job(command=command, params={}, requester=who, room=room)
    await start(store, job.id, owner="host-" + "h" * 400 + ":1:b:1")
    record = await store.append_audit(
        AuditEvent(action="request", principal=who, room=room, command=command, job_id=job.id)
    )
    assert (await store.audit(limit=1))[0] == record
    assert await store.first_delivery(room + ":171.01")
    message = await store.add_web_message(room=room, author=who, kind="text", payload={})
    assert (await store.web_messages(room))[-1].seq == message.seq
    file = await store.add_attachment(
        job.id, name="f" * 400 + ".csv", content_type="text/csv", data=b"a,b\n"
    )
    assert (await store.attachments(job.id))[0][:2] == (file, "f" * 400 + ".csv")
    found = await store.get_job(job.id)
    assert found is not None
    assert (found.command, found.requester, found.room) == (command, who, room)


@pytest.mark.parametrize(
    ("make", "hint"),
    [
        (lambda tmp: tmp / "missing" / "opsroom.db", "the folder .*missing does not exist"),
        (lambda tmp: tmp, "is a folder, not a database file"),
        (
            lambda tmp: (tmp / "junk.db", (tmp / "junk.db").write_bytes(b"x" * 4096))[0],
            "is not a SQLite database",
        ),
    ],
    ids=["no-folder", "a-folder", "not-a-database"],
)
async def test_unusable_files_give_a_clear_store_error(
    tmp_path: Path, make: object, hint: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(StoreError, match=f"cannot open the store sqlite:///.*{hint}"):
        await Store.open(f"sqlite:///{path}")


async def test_a_read_only_database_gives_a_clear_store_error(tmp_path: Path) -> None:
    # Tests run as root here, so file modes cannot make a file read-only; SQLite's
    # read-only open mode gives the same failure a read-only file would.
    path = tmp_path / "ro.db"
    sqlite3.connect(path).close()
    with pytest.raises(StoreError, match=r"readonly.*read-only; opsroom writes the file"):
        await Store.open(f"sqlite:///file:{path}?mode=ro&uri=true")


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "mysql://db/ops"])
async def test_urls_opsroom_cannot_use_are_refused_before_connecting(url: str) -> None:
    with pytest.raises(StoreError, match=r"in-memory SQLite|not supported"):
        await Store.open(url)
