"""Approvals in the store: they survive restarts, expire, are single-use, and settle once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from opsroom.errors import StoreError
from opsroom.model.approvals import ApprovalState, Refusal, VoteDecision
from opsroom.model.jobs import Job, JobState
from opsroom.policy.approval import params_hash
from opsroom.store import Limits, Store
from opsroom.store.migrate import MIGRATIONS
from stores import sync_engine

COMMAND, PARAMS = "storage migrate", {"volume": "vol1", "force": True}
HASH = params_hash(COMMAND, PARAMS)
LIMITS = Limits(total=8, per_command=None, per_user=8)


async def open_store(url: str) -> Store:
    return await Store.open(url)


async def waiting_job(store: Store, *, required: int = 1, ttl: float = 3600) -> Job:
    job = await store.create_job(
        command=COMMAND, params=PARAMS, requester="slack:alice", room="slack:C1"
    )
    await store.request_approval(
        job.id,
        role="ops-leads",
        required=required,
        params_hash=HASH,
        requested_by="slack:alice",
        ttl=ttl,
    )
    return job


async def test_a_pending_approval_survives_restarts_and_is_settled_by_the_quorum(
    store_url: str,
) -> None:
    store = await open_store(store_url)
    job = await waiting_job(store, required=2)
    assert (await store.get_job(job.id)).state is JobState.AWAITING_APPROVAL  # type: ignore[union-attr]
    await store.close()

    store = await open_store(store_url)
    try:
        pending = await store.pending_approvals()
        assert [(p.job_id, p.role, p.required, p.requested_by) for p in pending] == [
            (job.id, "ops-leads", 2, "slack:alice")
        ]
        first = await store.vote(job.id, approver="slack:bob", decision="approve", params_hash=HASH)
        assert (first.accepted, first.decided, first.job.state) == (
            True,
            False,
            JobState.AWAITING_APPROVAL,
        )
        assert (
            first.reason
            == f"approval of job {job.id} recorded; it needs 1 more approval from ops-leads"
        )
    finally:
        await store.close()

    store = await open_store(store_url)
    try:
        request = await store.approval(job.id)
        assert request is not None
        assert request.approvers == ("slack:bob",)
        # Queued meanwhile: the approved job lines up behind it.
        other = await store.create_job(command=COMMAND, params={}, requester="b", room="r")
        second = await store.vote(
            job.id, approver="slack:carol", decision=VoteDecision.APPROVE, params_hash=HASH
        )
        assert (second.accepted, second.decided, second.approved, second.job.state) == (
            True,
            True,
            True,
            JobState.QUEUED,
        )
        assert second.reason == f"job {job.id} approved by slack:bob, slack:carol"
        one_at_a_time = Limits(total=8, per_command=1, per_user=8)
        behind = await store.claim_job(job.id, owner="p", limits=one_at_a_time)
        assert (behind.claimed, behind.blocked_by) == (False, other.id)
        assert await store.pending_approvals() == []
        settled = await store.approval(job.id)
        assert settled is not None
        assert settled.state is ApprovalState.APPROVED
        # Single use: it starts once, and no further vote counts.
        assert (await store.claim_job(job.id, owner="p", limits=LIMITS)).claimed
        late = await store.vote(job.id, approver="slack:dave", decision="approve", params_hash=HASH)
        assert (late.accepted, late.refusal) == (False, Refusal.NOT_WAITING)
        assert late.reason == f"job {job.id} is not waiting for approval (it is running)"
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("approver", "voted_hash", "refusal"),
    [
        ("slack:alice", HASH, Refusal.OWN_JOB),
        (
            "slack:bob",
            params_hash(COMMAND, {"volume": "vol2", "force": True}),
            Refusal.PARAMS_CHANGED,
        ),
    ],
)
async def test_refused_votes_are_not_recorded_and_the_job_keeps_waiting(
    store_url: str, approver: str, voted_hash: str, refusal: Refusal
) -> None:
    store = await open_store(store_url)
    try:
        job = await waiting_job(store)
        result = await store.vote(
            job.id, approver=approver, decision="approve", params_hash=voted_hash
        )
        assert (result.accepted, result.decided, result.refusal) == (False, False, refusal)
        assert result.job.state is JobState.AWAITING_APPROVAL
        request = await store.approval(job.id)
        assert request is not None
        assert request.approvals == ()
        assert not (await store.claim_job(job.id, owner="p", limits=LIMITS)).claimed
    finally:
        await store.close()


async def test_approving_twice_counts_once(store_url: str) -> None:
    store = await open_store(store_url)
    try:
        job = await waiting_job(store, required=2)
        await store.vote(job.id, approver="slack:bob", decision="approve", params_hash=HASH)
        again = await store.vote(job.id, approver="slack:bob", decision="approve", params_hash=HASH)
        assert (again.accepted, again.refusal) == (False, Refusal.ALREADY_VOTED)
        assert again.job.state is JobState.AWAITING_APPROVAL
        request = await store.approval(job.id)
        assert request is not None
        assert len(request.approvals) == 1
    finally:
        await store.close()


async def test_a_deny_settles_the_job_and_it_never_runs(store_url: str) -> None:
    store = await open_store(store_url)
    try:
        job = await waiting_job(store, required=2)
        await store.vote(job.id, approver="slack:bob", decision="approve", params_hash=HASH)
        denied = await store.vote(
            job.id, approver="slack:carol", decision="deny", reason="not today", params_hash=HASH
        )
        assert (denied.accepted, denied.decided, denied.approved) == (True, True, False)
        assert denied.job.state is JobState.DENIED
        assert denied.job.error == "denied by slack:carol: not today"
        assert denied.job.finished_at is not None
        after = await store.vote(
            job.id, approver="slack:dave", decision="approve", params_hash=HASH
        )
        assert (after.accepted, after.job.state) == (False, JobState.DENIED)
        assert not (await store.claim_job(job.id, owner="p", limits=LIMITS)).claimed
        request = await store.approval(job.id)
        assert request is not None
        assert request.state is ApprovalState.DENIED
        assert [(v.approver, v.decision, v.reason) for v in request.approvals] == [
            ("slack:bob", VoteDecision.APPROVE, ""),
            ("slack:carol", VoteDecision.DENY, "not today"),
        ]
    finally:
        await store.close()


async def test_expiry_after_a_restart_marks_the_job_expired_and_it_cannot_be_approved(
    store_url: str,
) -> None:
    store = await open_store(store_url)
    job = await waiting_job(store, ttl=60)
    keep = await waiting_job(store, ttl=3600)
    await store.close()

    store = await open_store(store_url)
    try:
        later = datetime.now(UTC) + timedelta(minutes=2)
        assert [p.job_id for p in await store.pending_approvals(now=later)] == [keep.id]
        assert await store.expire_approvals(now=later) == [job.id]
        assert await store.expire_approvals(now=later) == []
        expired = await store.get_job(job.id)
        assert expired is not None
        assert expired.state is JobState.EXPIRED
        assert expired.error is not None
        assert expired.error.startswith("approval by ops-leads expired at ")
        vote = await store.vote(job.id, approver="slack:bob", decision="approve", params_hash=HASH)
        assert (vote.accepted, vote.refusal, vote.job.state) == (
            False,
            Refusal.EXPIRED,
            JobState.EXPIRED,
        )
        assert vote.reason.startswith(f"job {job.id}'s approval expired at ")
        assert not (await store.claim_job(job.id, owner="p", limits=LIMITS)).claimed
        assert (await store.get_job(keep.id)).state is JobState.AWAITING_APPROVAL  # type: ignore[union-attr]
    finally:
        await store.close()


async def test_a_vote_after_the_deadline_expires_the_job_itself(store_url: str) -> None:
    store = await open_store(store_url)
    try:
        job = await waiting_job(store, ttl=60)
        late = datetime.now(UTC) + timedelta(minutes=5)
        vote = await store.vote(
            job.id, approver="slack:bob", decision="approve", params_hash=HASH, now=late
        )
        assert (vote.accepted, vote.refusal, vote.job.state) == (
            False,
            Refusal.EXPIRED,
            JobState.EXPIRED,
        )
        request = await store.approval(job.id)
        assert request is not None
        assert request.state is ApprovalState.EXPIRED
    finally:
        await store.close()


async def test_a_cancelled_request_is_no_longer_pending(store_url: str) -> None:
    store = await open_store(store_url)
    try:
        job = await waiting_job(store)
        await store.request_cancel(job.id, by="slack:alice")
        assert await store.pending_approvals() == []
        request = await store.approval(job.id)
        assert request is not None
        assert request.state is ApprovalState.CANCELLED
        vote = await store.vote(job.id, approver="slack:bob", decision="approve", params_hash=HASH)
        assert (vote.accepted, vote.job.state) == (False, JobState.CANCELLED)
    finally:
        await store.close()


async def test_only_a_queued_job_can_be_put_up_for_approval_once(store_url: str) -> None:
    store = await open_store(store_url)
    try:
        job = await waiting_job(store)
        with pytest.raises(StoreError, match="already has an approval request"):
            await store.request_approval(
                job.id, role="x", required=1, params_hash=HASH, requested_by="a", ttl=60
            )
        running = await store.create_job(command="c", params={}, requester="a", room="r")
        assert (await store.claim_job(running.id, owner="p", limits=LIMITS)).claimed
        with pytest.raises(StoreError, match="is running; it cannot wait for approval"):
            await store.request_approval(
                running.id, role="x", required=1, params_hash=HASH, requested_by="a", ttl=60
            )
        assert await store.approval(running.id) is None
        assert [p.role for p in await store.pending_approvals(roles=["x", "ops-leads"])] == [
            "ops-leads"
        ]
        assert await store.pending_approvals(roles=["x"]) == []
    finally:
        await store.close()


VOTER = """
import asyncio, json, sys
from pathlib import Path
from opsroom.store import Store

url, folder, name, hash_ = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
ids = [int(i) for i in sys.argv[5].split(",")]

async def main():
    store = await Store.open(url)
    for i, job_id in enumerate(ids):
        (folder / f"ready-{name}-{i}").touch()
        go = folder / f"go-{i}"
        while not go.exists():  # spin: both voters leave the line together
            pass
        r = await store.vote(job_id, approver=name, decision="approve", params_hash=hash_)
        print(json.dumps({"job": job_id, "accepted": r.accepted, "decided": r.decided,
                          "approved": r.approved, "state": r.job.state.value}), flush=True)
    await store.close()

asyncio.run(main())
"""

ROUNDS = 20
VOTERS = ("slack:bob", "slack:carol")


def _drive(folder: Path, children: list[subprocess.Popen[str]]) -> None:
    """Release each round once both voters stand at its start line."""
    for i in range(ROUNDS):
        deadline = time.monotonic() + 30
        while not all((folder / f"ready-{v}-{i}").exists() for v in VOTERS):
            if time.monotonic() > deadline or any(c.poll() is not None for c in children):
                for c in children:
                    c.kill()  # the other one spins at the start line
                return
            time.sleep(0.001)
        (folder / f"go-{i}").touch()


async def test_two_processes_approving_at_once_settle_each_job_exactly_once(
    store_url: str, tmp_path: Path
) -> None:
    store = await open_store(store_url)
    # Even rounds need one approval (the slower voter is refused), odd rounds two (both
    # count, one of them settles it).
    jobs = [await waiting_job(store, required=1 + i % 2) for i in range(ROUNDS)]
    await store.close()
    ids = ",".join(str(j.id) for j in jobs)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", VOTER, store_url, str(tmp_path), v, HASH, ids],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in VOTERS
    ]
    driver = asyncio.create_task(asyncio.to_thread(_drive, tmp_path, children))
    results = await asyncio.gather(*(asyncio.to_thread(c.communicate, None, 90) for c in children))
    await driver
    assert [c.returncode for c in children] == [0, 0], "".join(err for _, err in results)
    votes: dict[int, list[dict[str, object]]] = {}
    for out, _ in results:
        for line in out.splitlines():
            vote = json.loads(line)
            votes.setdefault(int(vote["job"]), []).append(vote)

    store = await open_store(store_url)
    try:
        for i, job in enumerate(jobs):
            decided = [v for v in votes[job.id] if v["decided"]]
            assert len(decided) == 1, (i, votes[job.id])
            assert decided[0]["approved"] is True
            assert sum(bool(v["accepted"]) for v in votes[job.id]) == 1 + i % 2
            request = await store.approval(job.id)
            assert request is not None
            assert len(request.approvals) == 1 + i % 2
            assert request.state is ApprovalState.APPROVED
        assert len(await store.list_jobs(states=[JobState.QUEUED], limit=100)) == ROUNDS
    finally:
        await store.close()


async def test_a_0002_database_is_upgraded_with_its_jobs_and_can_hold_approvals(
    empty_store_url: str,
) -> None:
    from alembic import command
    from alembic.config import Config

    store_url = empty_store_url
    with sync_engine(store_url) as engine, engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
        # Ids come from the database, as when opsroom 0002 wrote them: 1 and 2.
        conn.execute(
            text(
                "INSERT INTO jobs (command, params, state, requester, room, created_at,"
                " dry_run, queue_seq) VALUES (:command, :params, :state, 'slack:alice',"
                " 'slack:C1', '2024-12-01 09:00:00.000000', FALSE, :seq)"
            ),
            [
                {
                    "command": "store status",
                    "params": "{}",
                    "state": "succeeded",
                    "seq": 1,
                    "dry_run": False,
                },
                {
                    "command": COMMAND,
                    "params": json.dumps(PARAMS),
                    "state": "queued",
                    "seq": 2,
                    "dry_run": False,
                },
            ],
        )
        conn.execute(text("INSERT INTO job_output VALUES (1, 1, 'stdout', 'ok')"))

    store = await open_store(store_url)
    try:
        done = await store.get_job(1)
        assert done is not None
        assert (done.command, done.state) == ("store status", JobState.SUCCEEDED)
        assert await store.output(1) == [("stdout", "ok")]
        old = await store.get_job(2)
        assert old is not None
        assert params_hash(old.command, old.params) == HASH
        await store.request_approval(
            2, role="ops-leads", required=1, params_hash=HASH, requested_by="slack:alice", ttl=60
        )
        vote = await store.vote(2, approver="slack:bob", decision="approve", params_hash=HASH)
        assert (vote.decided, vote.job.state) == (True, JobState.QUEUED)
        new = await store.create_job(command="c", params={}, requester="a", room="r")
        assert new.id == 3
    finally:
        await store.close()
