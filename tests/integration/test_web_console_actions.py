"""Console actions reach chat, and the job page shows everything a job produced.

A real `opsroom serve` (child process, real HTTP, each store) on a small git catalog: approving,
denying and cancelling from the console answer at once and are told in the job's room as if
typed there; refusals stay with whoever was refused; the job page shows the job's tables,
status lines, progress, files, approvals and catalog commit; pending requests show their
parameters as they are typed; the audit page filters by the actions the trail really has.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_web_serve import Served, start_serve

from support import OPSROOM

ROLES = """
[[roles]]
name = "ops"
members = ["web:*"]
allow = ["*"]

[[roles]]
name = "storage-leads"
members = ["web:bob", "web:carol"]
"""

SCRIPTS = {
    "storage/slow_wipe.py": '''# opsroom: approval = "storage-leads"
"""Wipe a volume, slowly (a test script that reports what it does)."""

import time


def main(volume: str, seconds_per_volume: float = 0.0) -> list[dict[str, str]]:
    """Wipe one volume.

    Args:
        volume: The volume to wipe.
        seconds_per_volume: How long the wipe takes.

    Examples:
        !storage slow-wipe vol7 --seconds-per-volume 1.0
    """
    from opsroom import script as ops

    ops.status(f"wiping {volume}")
    ops.progress(50, "half way")
    time.sleep(float(seconds_per_volume))
    print(f"wiped {volume}")
    ops.status("wipe verified", "success")
    return [{"volume": volume, "state": "wiped", "blocks": "0 left"}]
''',
    "demo/sleep.sh": """#!/usr/bin/env bash
# @describe Sleep for a long while (something to cancel).
echo "sleeping"
sleep 60
""",
}


def _git(catalog: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Grace Hopper",
        "GIT_AUTHOR_EMAIL": "grace@example.org",
        "GIT_COMMITTER_NAME": "Grace Hopper",
        "GIT_COMMITTER_EMAIL": "grace@example.org",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    subprocess.run(["git", *args], cwd=catalog, env=env, check=True, capture_output=True)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, module_store_url: str) -> Iterator[Served]:
    """`opsroom serve` with roles, a git catalog, and web accounts bob and carol; each store."""
    base = tmp_path_factory.mktemp("actions")
    catalog = base / "catalog"
    for rel, text in SCRIPTS.items():
        (catalog / rel).parent.mkdir(parents=True, exist_ok=True)
        (catalog / rel).write_text(text)
    _git(catalog, "init", "-q", "-b", "main")
    _git(catalog, "add", ".")
    _git(catalog, "commit", "-q", "-m", "scripts")
    work = base / "work"
    work.mkdir()
    (work / "opsroom.toml").write_text(f'{ROLES}\n[store]\nurl = "{module_store_url}"\n')
    s = start_serve(work, "--catalog", str(catalog))
    yield s
    if s.proc.poll() is None:
        s.stop()


@pytest.fixture(scope="module")
def passwords(served: Served) -> dict[str, str]:
    """Passwords of the accounts `opsroom user add` made."""
    found = {"admin": served.password or ""}
    for name in ("bob", "carol"):
        out = subprocess.run(
            [OPSROOM, "user", "add", name],
            cwd=served.workdir,
            env={k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        m = re.search(rf'"{name}" has the password: (\S+)', out)
        assert m, out
        found[name] = m.group(1)
    return found


def say(client: httpx.Client, room: str, text: str) -> None:
    """Post a chat message in a web room."""
    r = client.post("/api/v1/messages", json={"room": room, "text": text})
    assert r.status_code == 202, r.text


def texts(client: httpx.Client, room: str) -> list[str]:
    """Every bot reply of the room as text."""
    events = client.get(f"/api/v1/rooms/{room}/messages").json()
    return [e["text"] for e in events if e["author"] == "bot"]


def wait_for(
    client: httpx.Client, room: str, found: Callable[[dict[str, Any]], bool], timeout: float = 20
) -> dict[str, Any]:
    """The first bot event of the room that `found` accepts (polling the history)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in client.get(f"/api/v1/rooms/{room}/messages").json():
            if event["author"] == "bot" and found(event):
                return dict(event)
        time.sleep(0.1)
    raise AssertionError(f"nothing matched in {room}: {texts(client, room)}")


def ask_for_wipe(admin: httpx.Client, room: str, volume: str, seconds: float = 0.0) -> int:
    """Ask for a gated wipe in `room`; the job waiting for approval."""
    say(admin, room, f"!storage slow-wipe {volume} --seconds-per-volume {seconds}")
    event = wait_for(admin, room, lambda e: e["kind"] == "approval")
    job: int = event["job_id"]
    return job


def test_approving_answers_at_once_and_the_requesters_room_hears_the_rest(
    served: Served, passwords: dict[str, str]
) -> None:
    with (
        served.login("admin", passwords["admin"]) as admin,
        served.login("bob", passwords["bob"]) as bob,
    ):
        job = ask_for_wipe(admin, "ops", "vol7", seconds=2.0)
        # Refused (one's own request): answered before the request returned, to the
        # requester alone; the room heard nothing of it.
        refused = admin.post(f"/api/v1/approvals/{job}/approve").json()
        assert refused["outcome"] == "refused"
        assert [x["kind"] for x in refused["replies"]] == ["error"]
        [request] = texts(admin, "ops")
        assert "needs approval" in request
        r = bob.post(f"/api/v1/approvals/{job}/approve")
        assert r.status_code == 200, r.text
        out = r.json()
        # The answer is the decision; the job goes on (it takes two seconds).
        assert out["job_id"] == job
        assert out["state"] in ("queued", "running")
        assert out["outcome"] == "running"
        assert out["room"] == "web:ops"
        assert [x["text"] for x in out["replies"]] == [
            f"✔ job {job} storage slow-wipe approved by web:bob; starting"
        ]
        # The requester's room hears the approval, then the job's result, with its table.
        wait_for(admin, "ops", lambda e: "approved by web:bob; starting" in e["text"])
        end = wait_for(
            admin, "ops", lambda e: f"job {job} storage slow-wipe: succeeded" in e["text"]
        )
        table = next(b for b in end["blocks"] if b["type"] == "table")
        assert table["rows"] == [["vol7", "wiped", "0 left"]]
        # Nothing of it went anywhere else: not to a room of the approver's.
        others = [r for r in admin.get("/api/v1/rooms").json() if r["room"] != "web:ops"]
        assert others, "another room to look in"
        for room in others:
            said = texts(admin, room["name"])
            assert not [t for t in said if f"job {job} " in t], room


def test_denying_on_the_approvals_page_is_told_in_the_room(
    served: Served, passwords: dict[str, str]
) -> None:
    with (
        served.login("admin", passwords["admin"]) as admin,
        served.login("carol", passwords["carol"]) as carol,
    ):
        job = ask_for_wipe(admin, "denials", "vol9")
        page = carol.get("/approvals").text
        assert f'action="/approvals/{job}/deny"' in page
        csrf = carol.headers["X-CSRF-Token"]
        r = carol.post(
            f"/approvals/{job}/deny", data={"csrf_token": csrf, "reason": "wrong volume"}
        )
        assert r.status_code == 200
        assert f"job {job} storage slow-wipe denied by web:carol: wrong volume" in r.text
        assert 'href="/chat/denials"' in r.text
        said = wait_for(admin, "denials", lambda e: "denied by web:carol" in e["text"])
        assert "wrong volume" in said["text"]


def test_cancelling_from_the_console_is_told_in_the_room_without_a_success_mark(
    served: Served, passwords: dict[str, str]
) -> None:
    with served.login("admin", passwords["admin"]) as admin:
        say(admin, "night", "!demo sleep")
        job = wait_for(admin, "night", lambda e: e["job_id"] is not None)["job_id"]
        deadline = time.monotonic() + 20
        while admin.get(f"/api/v1/jobs/{job}").json()["state"] != "running":
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.1)
        page = admin.get(f"/jobs/{job}").text
        # Cancel asks first: the button only opens a confirmation holding the real one.
        assert 'id="cancel" data-confirm="cancel-confirm"' in page
        assert re.search(r'id="cancel-confirm"[^>]*hidden', page)
        assert f'data-post="/api/v1/jobs/{job}/cancel"' in page
        r = admin.post(f"/api/v1/jobs/{job}/cancel")
        assert r.status_code == 200, r.text
        assert r.json()["room"] == "web:night"
        told = wait_for(admin, "night", lambda e: e["kind"] != "job" and "cancelled" in e["text"])
        status = [b for b in told["blocks"] if b["type"] == "status"]
        assert status
        assert all(b["level"] != "success" for b in status)
        assert not told["text"].startswith("✔")
        assert admin.get(f"/api/v1/jobs/{job}").json()["state"] == "cancelled"
        assert "cancel-box" not in admin.get(f"/jobs/{job}").text


def test_the_job_page_shows_tables_status_progress_approval_and_commit(
    served: Served, passwords: dict[str, str]
) -> None:
    with (
        served.login("admin", passwords["admin"]) as admin,
        served.login("bob", passwords["bob"]) as bob,
    ):
        job = ask_for_wipe(admin, "pages", "vol3")
        assert (
            bob.post(f"/api/v1/approvals/{job}/approve", params={"wait": "true"}).json()["state"]
            == "succeeded"
        )
        page = admin.get(f"/jobs/{job}").text
    cells = re.findall(r"<td>([^<]*)</td>", page.split('class="table-wrap job-table"')[1])
    assert cells[:3] == ["vol3", "wiped", "0 left"]
    assert '<p class="status status-info">wiping vol3</p>' in page
    assert '<p class="status status-success">wipe verified</p>' in page
    assert re.search(r'<progress max="100" value="50(\.0)?">', page)
    assert "50% half way" in page
    assert "wiped vol3" in page  # the output itself
    votes = unescape(page.split('id="approval-votes"')[1].split("</ul>")[0])
    assert "approved by <b>web:bob</b>" in votes
    assert re.search(r"<dt>Catalog commit</dt><dd><code>[0-9a-f]{40}</code>", page)
    assert "<dt>Started</dt>" in page
    assert "<dt>Finished</dt>" in page
    assert "waiting for approval" in page
    assert "<code>!storage slow-wipe --volume vol3 --seconds-per-volume 0.0</code>" in page


def test_pending_requests_show_parameters_as_they_are_typed(
    served: Served, passwords: dict[str, str]
) -> None:
    with (
        served.login("admin", passwords["admin"]) as admin,
        served.login("bob", passwords["bob"]) as bob,
    ):
        job = ask_for_wipe(admin, "typed", "vol4", seconds=1.5)
        typed = "storage slow-wipe --volume vol4 --seconds-per-volume 1.5"
        pending = {p["job_id"]: p for p in bob.get("/api/v1/approvals").json()}
        assert pending[job]["command_line"] == typed
        assert f"<code>{typed}</code>" in bob.get("/approvals").text
        say(bob, "typed", "!pending")
        listing = wait_for(bob, "typed", lambda e: "asked by" in e["text"])
        table = next(b for b in listing["blocks"] if b["type"] == "table")
        assert [row[1] for row in table["rows"] if row[0] == str(job)] == [typed]
        bob.post(f"/api/v1/approvals/{job}/deny", json={"reason": "tidy up"})


def test_the_audit_action_filter_offers_the_real_actions(
    served: Served, passwords: dict[str, str]
) -> None:
    with (
        served.login("admin", passwords["admin"]) as admin,
        served.login("bob", passwords["bob"]) as bob,
    ):
        job = ask_for_wipe(admin, "audit", "vol5")
        assert bob.post(f"/api/v1/approvals/{job}/deny", json={"reason": "no"}).status_code == 200
        page = admin.get("/audit").text
        select = page.split('<select id="a-action" name="action">')[1].split("</select>")[0]
        values = re.findall(r'<option value="([^"]*)"', select)
        real = ["request", "decision", "approval", "job.start", "job.end", "job.cancel"]
        assert values[: len(real) + 1] == ["", *real]
        assert "approve" not in values  # what people guess; the trail says `approval`
        assert 'id="a-action" type="text"' not in page
        chosen = admin.get("/audit", params={"action": "approval"}).text
        assert '<option value="approval" selected>' in chosen
        rows = chosen.split("<tbody>")[1].split("</tbody>")[0]
        actions = set(re.findall(r'<td data-label="Action">([^<]*)</td>', rows))
        assert actions == {"approval"}


def test_the_web_chat_and_the_json_api_serialise_a_reply_identically(
    served: Served, passwords: dict[str, str]
) -> None:
    from opsroom.model.blocks import Actions
    from opsroom.model.wire import load_reply

    with (
        served.login("admin", passwords["admin"]) as admin,
        served.login("bob", passwords["bob"]) as bob,
    ):
        job = ask_for_wipe(admin, "wire", "vol6")
        # The request with its buttons, as the web chat got it, is the one serialised form:
        # the same reader that delivers kept replies reads it back whole.
        request = wait_for(admin, "wire", lambda e: e["kind"] == "approval")
        asked = load_reply(request)
        assert [b.buttons for b in asked.blocks if isinstance(b, Actions)] == [
            (("Approve", f"approve:{job}"), ("Deny", f"deny:{job}"))
        ]
        # One reply, two paths: the API's answer to the approval and the room's event of it.
        # (`wait`: the answer holds every reply, however long a busy server takes to decide.)
        approval = bob.post(f"/api/v1/approvals/{job}/approve", params={"wait": "true"})
        answered = approval.json()["replies"][0]
        heard = wait_for(admin, "wire", lambda e: "approved by web:bob" in e["text"])
        assert {key: heard[key] for key in answered} == answered
        assert set(answered) == {"kind", "job_id", "blocks", "text"}
        assert load_reply(answered) == load_reply(heard)
