"""Approvals through `opsroom run` in separate processes (SPEC §6.3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from opsroom.store.schema import approvals
from stores import sync_engine
from support import FIXTURES, Opsroom, wait_for

CATALOG = str(FIXTURES / "approval_catalog")
ROLES = """
[[roles]]
name = "ops"
members = ["local:alice", "local:bob", "local:carol", "local:dave"]
allow = ["*"]

[[roles]]
name = "storage-leads"
members = ["local:alice", "local:bob", "local:carol"]
allow = ["storage *"]
"""


@pytest.fixture(autouse=True)
def roles(workdir: Path, store_url: str) -> None:
    """The roles, and the store every `opsroom run` of the test shares (each backend)."""
    (workdir / "opsroom.toml").write_text(f'{ROLES}\n[store]\nurl = "{store_url}"\n')


def _as(opsroom: Opsroom, who: str, text: str):  # type: ignore[no-untyped-def]
    return opsroom("run", "--json", "--as", f"local:{who}", "--catalog", CATALOG, text)


def test_gated_command_waits_and_a_second_person_runs_it(opsroom: Opsroom) -> None:
    asked = _as(opsroom, "alice", "!storage wipe vol7 --mode secure")
    assert asked.code == 0, asked.stderr
    assert asked.summary["state"] == "awaiting_approval"
    assert asked.summary["outcome"] == "awaiting_approval"
    job = asked.summary["job_id"]
    assert "storage-leads" in asked.stdout

    own = _as(opsroom, "alice", f"!approve {job}")
    assert own.code == 2
    assert "yourself" in own.summary["output"]

    outsider = _as(opsroom, "dave", f"!approve {job}")
    assert outsider.code == 2
    assert "not a member of storage-leads" in outsider.summary["output"]

    pending = _as(opsroom, "bob", "!pending")
    assert str(job) in pending.stdout

    approved = _as(opsroom, "bob", f"!approve {job}")
    assert approved.code == 0, approved.stdout + approved.stderr
    assert approved.summary["state"] == "succeeded"
    assert approved.summary["job_id"] == job
    assert approved.summary["output"] == "wiped vol7 (secure)", "the original parameters"

    again = _as(opsroom, "carol", f"!approve {job}")
    assert again.code == 2
    assert "not waiting for approval" in again.summary["output"]


def test_deny_ends_the_request(opsroom: Opsroom) -> None:
    job = _as(opsroom, "alice", "!storage wipe vol8").summary["job_id"]
    denied = _as(opsroom, "bob", f"!deny {job} not during the freeze")
    assert denied.code == 0
    [jobs] = opsroom("jobs", "--json", "--catalog", CATALOG).json_lines
    assert jobs[0]["state"] == "denied"
    late = _as(opsroom, "carol", f"!approve {job}")
    assert late.code == 2


def test_quorum_of_two(opsroom: Opsroom) -> None:
    job = _as(opsroom, "alice", "!storage decommission fas01").summary["job_id"]
    first = _as(opsroom, "bob", f"!approve {job}")
    assert first.code == 0
    assert first.summary["state"] == "awaiting_approval"
    twice = _as(opsroom, "bob", f"!approve {job}")
    assert twice.code == 2
    second = _as(opsroom, "carol", f"!approve {job}")
    assert second.code == 0
    assert second.summary["output"] == "decommissioned fas01"


def test_expired_request_cannot_be_approved(opsroom: Opsroom, store_url: str) -> None:
    job = _as(opsroom, "alice", "!storage quick-fix").summary["job_id"]
    query = select(approvals.c.requested_at, approvals.c.expires_at).where(
        approvals.c.job_id == job
    )
    with sync_engine(store_url) as engine, engine.connect() as db:
        asked, deadline = db.execute(query).one()
    assert deadline - asked == timedelta(seconds=1)
    wait_for(lambda: datetime.now(UTC) > deadline, 10, what="the approval's deadline to pass")
    late = _as(opsroom, "bob", f"!approve {job}")
    assert late.code == 2
    assert "expired" in late.summary["output"]
    [jobs] = opsroom("jobs", "--json", "--catalog", CATALOG).json_lines
    assert jobs[0]["state"] == "expired"


def test_requester_may_cancel_a_waiting_job(opsroom: Opsroom) -> None:
    job = _as(opsroom, "alice", "!storage wipe vol9").summary["job_id"]
    cancelled = _as(opsroom, "alice", f"!cancel {job}")
    assert cancelled.code == 0
    late = _as(opsroom, "bob", f"!approve {job}")
    assert late.code == 2
