"""The first start as a new user sees it: the banner, the approvals demo, the small things.

Real `opsroom serve` and `opsroom run` child processes in empty folders.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_web_serve import Served, start_serve

from support import OPSROOM, Opsroom

PATH_WITHOUT_OPSROOM = "/usr/local/bin:/usr/bin:/bin"
DECOMMISSION = "!storage decommission netapp-legacy --ticket CHG-4711"


def banner(served: Served, after: int) -> list[str]:
    """The start banner: what `start_serve` read, and `after` lines printed after it."""
    assert served.proc.stdout is not None
    lines = list(served.stdout)
    for _ in range(after):
        lines.append(served.proc.stdout.readline().rstrip("\n"))
    return lines


def approval_job(client: httpx.Client, room: str) -> int:
    """The job whose approval request the room shows (polling its history)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        events = client.get(f"/api/v1/rooms/{room}/messages").json()
        job = next((e["job_id"] for e in events if e["kind"] == "approval"), None)
        if job is not None:
            return int(job)
        time.sleep(0.1)
    raise AssertionError(f"no approval request in {room}")


def add_user(workdir: Path, name: str) -> str:
    """`opsroom user add NAME` in the server's folder; the printed password."""
    out = subprocess.run(
        [OPSROOM, "user", "add", name],
        cwd=workdir,
        env={k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.search(rf'"{name}" has the password: (\S+)', out)
    assert m, out
    return m.group(1)


@pytest.fixture
def served(workdir: Path) -> Iterator[Served]:
    """`opsroom serve` on embedded defaults, started by its path: `opsroom` is not on PATH."""
    s = start_serve(workdir, env={"PATH": PATH_WITHOUT_OPSROOM})
    yield s
    if s.proc.poll() is None:
        s.stop()


def test_first_start_names_the_real_command_and_a_second_account_approves_the_demo(
    workdir: Path, served: Served
) -> None:
    lines = banner(served, after=2)  # "Lost it?" and the demo
    assert lines[1].endswith("(13 commands)")
    # Not "opsroom ...": that is not on PATH here; the path that started it is.
    assert f"  Lost it? Start with: {OPSROOM} serve --reset-admin-password" in lines
    assert lines[-1] == (
        "  Approvals demo: !storage decommission netapp-legacy waits until a second account "
        f"approves it; add one with: {OPSROOM} user add bob"
    )
    bob = add_user(workdir, "bob")
    with served.login() as admin, served.login("bob", bob) as approver:
        admin.post("/api/v1/messages", json={"room": "demo", "text": DECOMMISSION})
        job = approval_job(admin, "demo")
        # The requester cannot approve their own request; a second account can.
        refused = admin.post(f"/api/v1/approvals/{job}/approve").json()
        assert refused["outcome"] == "refused"
        done = approver.post(f"/api/v1/approvals/{job}/approve", params={"wait": "true"}).json()
        assert (done["outcome"], done["state"]) == ("succeeded", "succeeded")
        said = [e["text"] for e in admin.get("/api/v1/rooms/demo/messages").json()]
        assert any(f"job {job} storage decommission approved by web:bob" in t for t in said)
        assert any("netapp-legacy is out of service" in t for t in said)
        # The empty-room hint offers the demo.
        page = admin.get("/chat/elsewhere").text
        assert 'data-suggest="!storage decommission netapp-legacy"' in page


def test_with_a_config_file_there_is_no_demo_role(workdir: Path) -> None:
    (workdir / "opsroom.toml").write_text('[bot]\nprefix = "!"\n')
    s = start_serve(workdir)
    try:
        bob = add_user(workdir, "bob")
        with s.login() as admin, s.login("bob", bob) as approver:
            page = admin.get("/chat/demo").text
            assert "data-suggest=" in page
            assert 'data-suggest="!storage decommission' not in page
            admin.post("/api/v1/messages", json={"room": "demo", "text": DECOMMISSION})
            job = approval_job(admin, "demo")
            refused = approver.post(f"/api/v1/approvals/{job}/approve").json()
            assert refused["outcome"] == "refused"
            assert "not a member of storage-leads" in refused["output"]
    finally:
        s.stop()


def test_the_favicon_is_there_for_every_page(served: Served) -> None:
    with served.client() as anonymous:
        icon = anonymous.get("/favicon.ico")
        assert icon.status_code == 200
        assert icon.headers["content-type"].startswith("image/svg+xml")
        assert icon.content.startswith(b"<svg")
        login = anonymous.get("/login").text
        assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in login
        assert anonymous.get("/static/favicon.svg").content == icon.content


def test_one_of_a_thing_is_said_in_the_singular(workdir: Path, opsroom: Opsroom) -> None:
    catalog = workdir / "one"
    catalog.mkdir()
    (catalog / "hello.sh").write_text(
        "#!/usr/bin/env bash\n# @describe Say hello.\n# @example !hello\necho hello\n"
    )
    checked = opsroom("catalog", "check", str(catalog))
    assert checked.code == 0, checked.stderr
    assert checked.stderr.strip().splitlines()[-1] == "1 command, 0 errors, 0 warnings"
    version = opsroom("run", "--catalog", str(catalog), "!version")
    assert f"— 1 command from {catalog}" in version.stdout


def test_the_terminal_shows_no_markup_and_usage_on_its_own_line(opsroom: Opsroom) -> None:
    bad = opsroom("run", "!store status abc")
    assert bad.code == 2
    shown = (bad.stdout + bad.stderr).splitlines()
    [error] = [line for line in shown if line.startswith("✖")]
    assert "abc" in error
    assert "usage:" not in error
    assert any(line.startswith("usage: !store status") for line in shown)
    asked = opsroom("run", DECOMMISSION)
    assert asked.code == 0, asked.stdout + asked.stderr
    assert "needs approval by a member of role storage-leads" in asked.stdout
    assert "!approve 1 or !deny 1 <reason>" in asked.stdout
    assert "`" not in asked.stdout
