"""Job control shared by processes: claims within limits, cancel, capped output, files, notices."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from opsroom.errors import StoreError
from opsroom.model.jobs import JobState
from opsroom.store import Limits, Store, owner_alive, owner_id
from stores import scalar_sql

NO_LIMITS = Limits(total=1000, per_command=None, per_user=1000)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    store = await Store.open(store_url)
    yield store
    await store.close()


async def new_job(
    store: Store,
    command: str = "storage migrate",
    requester: str = "local:alice",
    state: JobState = JobState.QUEUED,
) -> int:
    job = await store.create_job(
        command=command, params={}, requester=requester, room="local:ops", state=state
    )
    return job.id


async def running_job(
    store: Store, command: str = "storage migrate", requester: str = "local:alice"
) -> int:
    job_id = await new_job(store, command, requester)
    assert (await store.claim_job(job_id, owner=owner_id(), limits=NO_LIMITS)).claimed
    return job_id


# --- claims ---------------------------------------------------------------------------------


async def test_still_queued_tells_the_queued_among_many(store: Store) -> None:
    # More ids than one statement takes (500): the line of queued jobs asks about all its own.
    ids = [await new_job(store, command=f"c{i % 7}") for i in range(1_203)]
    cancelled = set(ids[::97])
    for job_id in cancelled:
        await store.request_cancel(job_id, by="local:bob")
    started = {ids[5], ids[700], ids[1_202]}
    for job_id in started:
        assert (await store.claim_job(job_id, owner=owner_id(), limits=NO_LIMITS)).claimed
    assert await store.still_queued([*ids, 999_999]) == set(ids) - cancelled - started
    assert await store.still_queued([]) == set()


@dataclass(frozen=True)
class ClaimCase:
    name: str
    running: tuple[tuple[str, str], ...]  # (command, requester) already running
    new: tuple[str, str]
    limits: Limits
    claimed: bool
    reason: str = ""
    blocked_by: int | None = None  # index into `running`
    held: str | None = None  # the limit that held it: what the line of queued jobs acts on


CLAIM_CASES = [
    ClaimCase(
        "one of this command at a time",
        (("storage migrate", "local:bob"),),
        ("storage migrate", "local:alice"),
        Limits(total=8, per_command=1, per_user=4),
        claimed=False,
        reason="1 `storage migrate` job may run at a time",
        held="per_command",
        blocked_by=0,
    ),
    ClaimCase(
        "per-command limit counts only that command",
        (("store status", "local:bob"), ("store status", "local:carol")),
        ("storage migrate", "local:alice"),
        Limits(total=8, per_command=1, per_user=4),
        claimed=True,
    ),
    ClaimCase(
        "two of this command at a time",
        (("storage migrate", "local:bob"), ("storage migrate", "local:carol")),
        ("storage migrate", "local:alice"),
        Limits(total=8, per_command=2, per_user=4),
        claimed=False,
        reason="2 `storage migrate` jobs may run at a time",
        held="per_command",
        blocked_by=0,
    ),
    ClaimCase(
        "no per-command limit",
        (("storage migrate", "local:bob"),) * 3,
        ("storage migrate", "local:alice"),
        Limits(total=8, per_command=None, per_user=4),
        claimed=True,
    ),
    ClaimCase(
        "overall limit",
        (("a", "local:bob"), ("b", "local:carol")),
        ("c", "local:alice"),
        Limits(total=2, per_command=None, per_user=4),
        claimed=False,
        reason="2 jobs are running (the limit)",
        held="total",
        blocked_by=0,
    ),
    ClaimCase(
        "overall limit of one",
        (("a", "local:bob"),),
        ("c", "local:alice"),
        Limits(total=1, per_command=None, per_user=4),
        claimed=False,
        reason="1 job is running (the limit)",
        held="total",
        blocked_by=0,
    ),
    ClaimCase(
        "per-user limit",
        (("a", "local:bob"), ("b", "local:alice"), ("c", "local:alice")),
        ("d", "local:alice"),
        Limits(total=8, per_command=None, per_user=2),
        claimed=False,
        reason="you have 2 jobs running (the per-user limit)",
        held="per_user",
        blocked_by=1,
    ),
    ClaimCase(
        "the overall limit is told before the requester's own",
        (("a", "local:alice"), ("b", "local:alice")),
        ("c", "local:alice"),
        Limits(total=2, per_command=None, per_user=2),
        claimed=False,
        reason="2 jobs are running (the limit)",
        held="total",
        blocked_by=0,
    ),
    ClaimCase(
        "per-user limit counts only that user",
        (("a", "local:bob"), ("b", "local:bob")),
        ("d", "local:alice"),
        Limits(total=8, per_command=None, per_user=2),
        claimed=True,
    ),
]


@pytest.mark.parametrize("case", CLAIM_CASES, ids=lambda c: c.name)
async def test_a_claim_respects_each_limit_and_says_why(store: Store, case: ClaimCase) -> None:
    running = [await running_job(store, command, who) for command, who in case.running]
    job_id = await new_job(store, *case.new)

    claim = await store.claim_job(job_id, owner=owner_id(), limits=case.limits)

    assert claim.claimed is case.claimed
    assert claim.reason == case.reason
    assert claim.held == case.held
    expected_blocker = None if case.blocked_by is None else running[case.blocked_by]
    assert claim.blocked_by == expected_blocker
    stored = await store.get_job(job_id)
    assert stored == claim.job
    if case.claimed:
        assert stored.state is JobState.RUNNING
        assert stored.owner == owner_id()
        assert stored.started_at is not None
    else:
        assert stored.state is JobState.QUEUED
        assert stored.owner is None


async def test_a_blocked_job_starts_once_the_blocker_ends(store: Store) -> None:
    limits = Limits(total=8, per_command=1, per_user=4)
    first = await running_job(store)
    second = await new_job(store)
    assert not (await store.claim_job(second, owner="p2", limits=limits)).claimed

    await store.finish_job(first, state=JobState.SUCCEEDED, exit_code=0)

    claim = await store.claim_job(second, owner="p2", limits=limits)
    assert claim.claimed
    assert claim.job.state is JobState.RUNNING


async def test_a_newer_job_waits_for_an_older_queued_one_of_the_same_command(
    store: Store,
) -> None:
    limits = Limits(total=8, per_command=1, per_user=4)
    older = await new_job(store, requester="local:bob")
    newer = await new_job(store, requester="local:alice")
    other = await new_job(store, command="store status")

    claim = await store.claim_job(newer, owner="p", limits=limits)
    assert not claim.claimed
    assert claim.blocked_by == older
    assert claim.reason == (
        f"1 `storage migrate` job may run at a time; job {older} is ahead in the queue"
    )
    assert (await store.claim_job(other, owner="p", limits=limits)).claimed
    assert (await store.claim_job(older, owner="p", limits=limits)).claimed
    claim = await store.claim_job(newer, owner="p", limits=limits)
    assert (claim.claimed, claim.blocked_by) == (False, older)


async def test_with_room_for_two_the_newer_job_may_start_beside_the_older_one(
    store: Store,
) -> None:
    limits = Limits(total=8, per_command=2, per_user=4)
    await new_job(store)
    newer = await new_job(store)
    assert (await store.claim_job(newer, owner="p", limits=limits)).claimed


async def test_an_approved_job_queues_behind_those_already_waiting(store: Store) -> None:
    limits = Limits(total=8, per_command=1, per_user=4)
    approved_later = await new_job(store)
    await store.request_approval(
        approved_later, role="ops", required=1, params_hash="h", requested_by="local:alice", ttl=60
    )
    waiting = await new_job(store)
    claim = await store.claim_job(approved_later, owner="p", limits=limits)
    assert (claim.claimed, claim.reason) == (False, f"job {approved_later} is awaiting_approval")

    vote = await store.vote(
        approved_later, approver="local:bob", decision="approve", params_hash="h"
    )
    assert (vote.approved, vote.job.state) == (True, JobState.QUEUED)

    claim = await store.claim_job(approved_later, owner="p", limits=limits)
    assert (claim.claimed, claim.blocked_by) == (False, waiting)
    assert (await store.claim_job(waiting, owner="p", limits=limits)).claimed


async def test_a_cancelled_job_is_never_claimed(store: Store) -> None:
    job_id = await new_job(store)
    await store.request_cancel(job_id, by="local:bob")
    claim = await store.claim_job(
        job_id, owner="p", limits=Limits(total=8, per_command=1, per_user=4)
    )
    assert not claim.claimed
    assert claim.reason == f"job {job_id} is cancelled"
    assert claim.job.state is JobState.CANCELLED


async def test_claiming_a_missing_job_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="job 99 does not exist"):
        await store.claim_job(99, owner="p", limits=Limits(total=8, per_command=1, per_user=4))


async def test_queued_jobs_nobody_waits_for_come_oldest_first_and_are_adopted_once(
    store: Store,
) -> None:
    async def waiting_for(owner: str, state: JobState = JobState.QUEUED) -> int:
        job = await store.create_job(
            command="c",
            params={},
            requester="local:alice",
            room="local:ops",
            state=state,
            owner=owner,
        )
        return job.id

    a = await waiting_for("gone")
    b = await waiting_for("gone")
    alive = await waiting_for("alive")
    await waiting_for("gone", state=JobState.AWAITING_APPROVAL)
    await running_job(store)
    c = await waiting_for("gone")

    released = await store.release_orphaned_queue(is_owner_alive=lambda owner: owner == "alive")

    assert sorted(j.id for j in released) == [a, b, c]
    assert {j.owner for j in released} == {""}
    assert (await store.get_job(alive)).owner == "alive"  # type: ignore[union-attr]
    assert [j.id for j in await store.orphaned_queue()] == [a, b, c]
    assert [j.id for j in await store.orphaned_queue(limit=2)] == [a, b]
    adopted = await store.adopt_job(b, owner="local:p2")
    assert adopted is not None
    assert adopted.owner == "local:p2"
    assert await store.adopt_job(b, owner="local:p3") is None  # another process was faster
    assert [j.id for j in await store.orphaned_queue()] == [a, c]


# --- process and cancel ---------------------------------------------------------------------


async def test_the_process_of_a_job_is_recorded(store: Store) -> None:
    job_id = await running_job(store)
    await store.set_process(job_id, pid=4242, token="tok-123")
    job = await store.get_job(job_id)
    assert job is not None
    assert (job.pid, job.process_token) == (4242, "tok-123")
    with pytest.raises(StoreError, match="job 99 does not exist"):
        await store.set_process(99, pid=1, token="t")


@pytest.mark.parametrize("state", [JobState.QUEUED, JobState.AWAITING_APPROVAL])
async def test_cancelling_a_job_that_has_not_started_ends_it_at_once(
    store: Store, state: JobState
) -> None:
    job_id = await new_job(store, state=state)
    job = await store.request_cancel(job_id, by="local:bob")
    assert job.state is JobState.CANCELLED
    assert job.finished_at is not None
    assert job.cancel_requested_by == "local:bob"
    assert await store.get_job(job_id) == job


async def test_cancelling_a_running_job_asks_its_owner_and_the_first_asker_is_kept(
    store: Store,
) -> None:
    job_id = await running_job(store)
    job = await store.request_cancel(job_id, by="local:bob")
    assert job.state is JobState.RUNNING  # the owning process ends it
    assert job.cancel_requested_by == "local:bob"
    again = await store.request_cancel(job_id, by="local:carol")
    assert again.cancel_requested_by == "local:bob"

    # The owner ends the process and records why.
    done = await store.finish_job(job_id, state=JobState.CANCELLED, exit_code=None)
    assert done.state is JobState.CANCELLED
    assert done.cancel_requested_by == "local:bob"


async def test_cancelling_a_finished_job_changes_nothing(store: Store) -> None:
    job_id = await running_job(store)
    finished = await store.finish_job(job_id, state=JobState.SUCCEEDED, exit_code=0)
    job = await store.request_cancel(job_id, by="local:bob")
    assert job == finished
    assert job.cancel_requested_by is None
    with pytest.raises(StoreError, match="job 99 does not exist"):
        await store.request_cancel(99, by="local:bob")


async def test_cancel_requests_name_only_pending_requests_of_running_jobs(store: Store) -> None:
    asked = await running_job(store, "a")
    untouched = await running_job(store, "b")
    finished = await running_job(store, "c")
    queued = await new_job(store, "d")
    await store.request_cancel(asked, by="local:bob")
    await store.request_cancel(finished, by="local:carol")
    await store.finish_job(finished, state=JobState.CANCELLED, exit_code=None)
    await store.request_cancel(queued, by="local:dave")

    pending = await store.cancel_requests([asked, untouched, finished, queued, 999])

    assert pending == {asked: "local:bob"}
    assert await store.cancel_requests([]) == {}


async def test_a_cancel_from_another_process_reaches_the_owner(
    store: Store, store_url: str
) -> None:
    job_id = await running_job(store)
    script = (
        "import asyncio\n"
        "from opsroom.store import Store\n"
        "async def main():\n"
        f"    store = await Store.open({store_url!r})\n"
        f"    await store.request_cancel({job_id}, by='web:ops')\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    assert await store.cancel_requests([job_id]) == {job_id: "web:ops"}


# --- output ---------------------------------------------------------------------------------


async def test_capped_output_keeps_what_fits_and_counts_everything(
    store: Store, store_url: str
) -> None:
    job_id = await running_job(store)
    # Each line costs its UTF-8 bytes plus a newline: "ééé" is 7 bytes.
    first = [("stdout", "ééé"), ("stderr", "1234")]
    assert await store.record_outputs({job_id: first}, cap_bytes=16) == set()
    second = [("stdout", "12345"), ("stdout", "1")]
    assert await store.record_outputs({job_id: second}, cap_bytes=16) == {job_id}
    # Once cut, even a line that would fit is not kept.
    assert await store.record_outputs({job_id: [("stdout", "")]}, cap_bytes=16) == {job_id}

    assert await store.output(job_id) == [("stdout", "ééé"), ("stderr", "1234")]
    job = await store.get_job(job_id)
    assert job is not None
    assert (job.output_lines, job.output_truncated) == (5, True)
    counted = scalar_sql(store_url, "SELECT output_bytes FROM jobs WHERE id = :id", id=job_id)
    assert counted == 7 + 5 + 6 + 2 + 1


async def test_one_batch_cuts_only_the_jobs_over_their_cap(store: Store) -> None:
    quiet, noisy = await running_job(store, "a"), await running_job(store, "b")
    batch = {quiet: [("stdout", "a"), ("stdout", "b")], noisy: [("stdout", "x" * 20)]}
    assert await store.record_outputs(batch, cap_bytes=10) == {noisy}
    assert await store.record_outputs({quiet: [("stdout", "c")]}, cap_bytes=10) == set()
    assert await store.output(quiet) == [("stdout", "a"), ("stdout", "b"), ("stdout", "c")]
    assert await store.output(noisy) == []
    jobs = [await store.get_job(i) for i in (quiet, noisy)]
    assert [(j.output_lines, j.output_truncated) for j in jobs if j] == [(3, False), (1, True)]


async def test_output_for_a_missing_job_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="job 99 does not exist"):
        await store.record_outputs({99: [("stdout", "x")]}, cap_bytes=100)


# --- attachments ----------------------------------------------------------------------------


async def test_attachments_round_trip(store: Store) -> None:
    job_id = await running_job(store)
    other = await running_job(store, "b")
    report = bytes(range(256)) * 40
    first = await store.add_attachment(
        job_id, name="report.pdf", content_type="application/pdf", data=report
    )
    second = await store.add_attachment(
        job_id, name="empty.txt", content_type="text/plain", data=b""
    )
    await store.add_attachment(other, name="x.csv", content_type="text/csv", data=b"a,b\n")

    assert await store.attachments(job_id) == [
        (first, "report.pdf", "application/pdf", len(report)),
        (second, "empty.txt", "text/plain", 0),
    ]
    assert await store.attachment_data(first) == report
    assert await store.attachment_data(second) == b""
    assert await store.attachment_data(9999) is None
    assert await store.attachments(9999) == []
    with pytest.raises(StoreError, match="job 99 does not exist"):
        await store.add_attachment(99, name="a", content_type="text/plain", data=b"a")


# --- interrupted jobs and notices -----------------------------------------------------------


async def test_interrupted_jobs_carry_their_process_and_are_announced_once(store: Store) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "from opsroom.store import owner_id; print(owner_id())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    alices = await new_job(store, requester="local:alice")
    bobs = await new_job(store, requester="local:bob")
    for job_id in (alices, bobs):
        assert (await store.claim_job(job_id, owner=gone, limits=NO_LIMITS)).claimed
        await store.set_process(job_id, pid=1000 + job_id, token=f"tok-{job_id}")

    interrupted = await store.reconcile(is_owner_alive=owner_alive)

    assert [(j.id, j.pid, j.process_token) for j in interrupted] == [
        (alices, 1000 + alices, f"tok-{alices}"),
        (bobs, 1000 + bobs, f"tok-{bobs}"),
    ]
    assert not any(j.notified for j in interrupted)
    assert [j.id for j in await store.unnotified_interrupted()] == [alices, bobs]
    assert [j.id for j in await store.unnotified_interrupted(requester="local:bob")] == [bobs]

    assert await store.mark_notified([bobs]) == {bobs}
    assert await store.mark_notified([bobs, alices]) == {alices}  # bob was told already
    assert await store.mark_notified([]) == set()
    assert await store.unnotified_interrupted() == []
    job = await store.get_job(bobs)
    assert job is not None
    assert job.notified
