"""`opsroom serve` as a user runs it: a real child process, real HTTP, a real store."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest

from stores import backend_of, store_bytes
from support import FIXTURES, OPSROOM, wait_for


@dataclass
class Served:
    """One `opsroom serve` process in `workdir`."""

    proc: subprocess.Popen[str]
    url: str
    password: str | None
    stdout: list[str]
    stderr_path: Path
    stderr_file: Any
    workdir: Path
    started: float = field(default_factory=time.monotonic)

    def client(self) -> httpx.Client:
        """An httpx client for this server (no login)."""
        return httpx.Client(base_url=self.url, timeout=30)

    @contextlib.contextmanager
    def login(self, username: str = "admin", password: str | None = None) -> Iterator[httpx.Client]:
        """A client with a session cookie; `csrf` header set for later changes."""
        with self.client() as client:
            self._login(client, username, password)
            yield client

    def _login(self, client: httpx.Client, username: str, password: str | None) -> None:
        client.get("/login").raise_for_status()
        token = client.cookies["opsroom_login_csrf"]
        r = client.post(
            "/login",
            data={
                "username": username,
                "password": password or self.password or "",
                "csrf_token": token,
            },
        )
        assert r.status_code == 303, r.text
        me = client.get("/api/v1/me").json()
        client.headers["X-CSRF-Token"] = me["csrf_token"]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        """Signal the server and wait for it to exit (fails after `timeout` seconds)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Not left running (it would hold its pipes until some later test): killed,
            # and what it logged said.
            self.proc.kill()
            self.proc.wait()
            self.close()
            tail = "\n".join(self.log.splitlines()[-20:])
            raise AssertionError(
                f"opsroom serve did not stop within {timeout:g} s of {signal.Signals(sig).name};"
                f" its log ends:\n{tail}"
            ) from None
        self.close()

    def close(self) -> None:
        """Release the pipes (after the process ended)."""
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.stderr_file.close()

    @property
    def log(self) -> str:
        """Everything the server wrote to stderr."""
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")


def start_serve(workdir: Path, *args: str, env: dict[str, str] | None = None) -> Served:
    """Start `opsroom serve` on a port it picks itself and wait for its announcement."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}
    base.update(env or {})
    stderr_path = workdir / "serve.stderr"
    stderr_file = stderr_path.open("w")
    proc = subprocess.Popen(
        # Port 0: serve binds first and announces the port it got, so nothing can take it.
        [OPSROOM, "serve", "--listen", "127.0.0.1:0", *args],
        cwd=workdir,
        env=base,
        stdout=subprocess.PIPE,
        stderr=stderr_file,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    password = None
    url = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if m := re.search(r"serving on (http://\S+)", line):
            url = m.group(1)
        if m := re.search(r'"admin" has the password: (\S+)', line):
            password = m.group(1)
        if "Log in at" in line:
            break
    assert url, f"no address announced: {lines} {stderr_path.read_text()}"
    return Served(proc, url, password, lines, stderr_path, stderr_file, workdir)


def sse_events(
    client: httpx.Client, path: str, *, until: Any, timeout: float = 30
) -> Iterator[dict[str, Any]]:
    """Parsed `data:` events of an SSE stream, until `until(event)` is true."""
    deadline = time.monotonic() + timeout
    with client.stream("GET", path, timeout=timeout) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event_id = None
        for line in response.iter_lines():
            if time.monotonic() > deadline:
                raise TimeoutError(path)
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                event = json.loads(line[6:])
                event["_id"] = event_id
                yield event
                if until(event):
                    return


# --- tests ---------------------------------------------------------------------------------


def _on(store_url: str) -> dict[str, str]:
    """The environment that points `serve` at a PostgreSQL store (SQLite: the default file)."""
    return {} if backend_of(store_url) == "sqlite" else {"OPSROOM_STORE_URL": store_url}


def _stored(workdir: Path, store_url: str) -> bytes:
    """All the store holds: the default SQLite file in `workdir`, or the PostgreSQL dump."""
    sqlite = backend_of(store_url) == "sqlite"
    return store_bytes(f"sqlite:///{workdir}/opsroom.db" if sqlite else store_url)


@pytest.fixture
def served(workdir: Path, store_url: str) -> Iterator[Served]:
    """`opsroom serve` on the embedded defaults in an empty folder (or on PostgreSQL)."""
    s = start_serve(workdir, env=_on(store_url))
    yield s
    if s.proc.poll() is None:
        s.stop()


def wait_ready(s: Served, within: float = 10) -> float:
    """Seconds until /healthz answers 200 (fails after `within`)."""
    start = time.monotonic()
    with s.client() as c:
        while time.monotonic() - start < within:
            try:
                if c.get("/healthz").status_code == 200:
                    return time.monotonic() - s.started
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise AssertionError("not ready")


def test_first_start_in_an_empty_folder_prints_the_address_and_a_one_time_password(
    workdir: Path, served: Served, store_url: str
) -> None:
    wait_ready(served)
    assert served.url.startswith("http://127.0.0.1:")
    assert served.password
    assert len(served.password) >= 16
    # The store is the SQLite file in the folder, unless it is on PostgreSQL.
    assert (workdir / "opsroom.db").is_file() == (backend_of(store_url) == "sqlite")
    with served.client() as c:
        health = c.get("/healthz").json()
    assert health == {"status": "ok", "catalog": health["catalog"], "store": "ok", "jobs": ANY}
    # How jobs are contained here, without host paths (this host has a writable cgroup v2).
    assert health["jobs"] == {
        "containment": "cgroup v2",
        "memory": "cgroup v1",
        "pids": "cgroup v1",
        "cpu": "unlimited",
    }
    assert health["catalog"] > 5  # the bundled examples
    with served.login() as c:
        me = c.get("/api/v1/me").json()
    assert me["principal"] == "web:admin"
    assert me["admin"] is True
    # A second start finds the account and prints no password.
    served.stop()
    again = start_serve(workdir, env=_on(store_url))
    try:
        assert again.password is None
        assert not any("password:" in line for line in again.stdout)
        with again.login(password=served.password) as c:
            assert c.get("/api/v1/me").status_code == 200
    finally:
        again.stop()


def test_a_wrong_password_is_refused(served: Served) -> None:
    with pytest.raises(AssertionError), served.login(password="not-the-password"):
        pass


def test_api_and_pages_need_a_login_but_health_and_metrics_do_not(served: Served) -> None:
    with served.client() as c:
        for path in ("/api/v1/jobs", "/api/v1/me", "/api/v1/catalog", "/api/v1/openapi.json"):
            r = c.get(path)
            assert r.status_code == 401, path
            assert r.headers["content-type"] == "application/json"
        page = c.get("/", follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"].startswith("/login")
        assert c.get("/healthz").status_code == 200
        metrics = c.get("/metrics")
        assert metrics.status_code == 200
        assert 'opsroom_adapter_connected{adapter="web"} 1.0' in metrics.text
        assert c.get("/static/htmx.min.js").status_code == 200
        bad = c.get("/api/v1/jobs", headers={"Authorization": "Bearer opsr_wrong"})
        assert bad.status_code == 401


def test_metrics_show_python_jobs_forked_from_the_warm_pool(served: Served) -> None:
    with served.login() as c:
        for _ in range(3):  # a Python command: the first starts cold, the others are forked
            r = c.post(
                "/api/v1/messages",
                params={"wait": "true"},
                json={"room": "web:general", "text": "!store status 13"},
            )
            assert r.json()["outcome"] == "succeeded", r.text
        text = c.get("/metrics").text
    assert "opsroom_python_pool_size 1.0" in text
    assert "opsroom_python_pool_hits_total 2.0" in text
    assert "opsroom_python_pool_misses_total 1.0" in text


def test_form_posts_without_a_csrf_token_are_refused(served: Served) -> None:
    with served.client() as c:
        c.get("/login")
        r = c.post("/login", data={"username": "admin", "password": served.password or ""})
        assert r.status_code == 403
    with served.login() as c:
        del c.headers["X-CSRF-Token"]
        assert c.post("/logout", data={}).status_code == 403
        assert c.post("/logout", data={"csrf_token": "0" * 64}).status_code == 403
        r = c.post("/api/v1/messages", json={"room": "general", "text": "hello"})
        assert r.status_code == 403
        # Still logged in: the refused logout did nothing.
        assert c.get("/api/v1/me").status_code == 200


def test_a_command_posted_to_a_room_shows_its_table_on_the_rooms_event_stream(
    served: Served,
) -> None:
    with served.login() as c:
        r = c.post("/api/v1/messages", json={"room": "general", "text": "!store status 42"})
        assert r.status_code == 202
        assert r.json()["accepted"] is True
        assert r.json()["room"] == "web:general"
        seen = list(
            sse_events(
                c,
                "/api/v1/rooms/general/events?after=0",
                until=lambda e: any(b["type"] == "table" for b in e.get("blocks", [])),
            )
        )
    assert seen[0]["author"] == "web:admin"
    assert seen[0]["text"] == "!store status 42"
    table = next(b for e in seen for b in e.get("blocks", []) if b["type"] == "table")
    assert any("store-0042" in cell for row in table["rows"] for cell in row)
    ids = [e["_id"] for e in seen]
    assert ids == sorted(ids)
    # Reconnecting with Last-Event-ID replays exactly what came after that event.
    with served.login() as c:
        c.headers["Last-Event-ID"] = str(ids[0])
        first = next(sse_events(c, "/api/v1/rooms/general/events", until=lambda e: True))
        history = c.get("/api/v1/rooms/general/messages", params={"after": ids[0]}).json()
    assert first["_id"] == ids[1]
    assert [e["seq"] for e in history][: len(ids) - 1] == ids[1:]


def test_a_script_with_a_bearer_token_waits_for_the_outcome(served: Served, store_url: str) -> None:
    with served.login() as c:
        made = c.post("/api/v1/tokens", json={"name": "ci"})
        assert made.status_code == 201
        token = made.json()["token"]
        assert token.startswith("opsr_")
    with served.client() as bot:
        bot.headers["Authorization"] = f"Bearer {token}"
        r = bot.post(
            "/api/v1/messages",
            params={"wait": "true"},
            json={"room": "web:deploys", "text": "!store status 13"},
        )
        assert r.status_code == 200
        outcome = r.json()
        assert outcome["outcome"] == "succeeded"
        job = bot.get(f"/api/v1/jobs/{outcome['job_id']}").json()
        assert job["state"] == "succeeded"
        assert job["requester"] == "web:admin"
        assert job["room"] == "web:deploys"
        listed = bot.get("/api/v1/jobs", params={"command": "store status"}).json()
        assert [j["id"] for j in listed] == [outcome["job_id"]]
        spec = bot.get("/api/v1/catalog/store status").json()
        assert spec["name"] == "store status"
        assert bot.get("/api/v1/catalog/no such thing").status_code == 404
    # Neither the password nor the token is kept or logged in plain text.
    served.stop()
    db = _stored(served.workdir, store_url)
    assert b"web:deploys" in db, "the store's contents are there to search"
    for secret in (served.password or "", token):
        assert secret.encode() not in db
        assert secret not in served.log


def test_sigterm_while_a_job_runs_cancels_it_after_the_grace(workdir: Path, opsroom: Any) -> None:
    catalog = str(FIXTURES / "jobs_catalog")
    s = start_serve(workdir, "--catalog", catalog, env={"OPSROOM_WEB_SHUTDOWN_GRACE": "1"})
    try:
        with s.login() as c:
            r = c.post("/api/v1/messages", json={"text": "!slow nap --seconds 120"})
            assert r.status_code == 202
            wait_for(
                lambda: c.get("/api/v1/jobs", params={"state": "running"}).json(),
                15,
                what="the job to start",
            )
        # The nap lasts 120 s: the server ending within stop()'s 60 s shows it cancelled the
        # job after the grace (how soon: bench/bench_supervision.py).
        s.stop()
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
        s.close()
    assert s.proc.returncode == 0
    jobs = opsroom("jobs", "--json", "--catalog", catalog).json_lines[0]
    assert jobs
    assert all(j["state"] != "running" for j in jobs)
    assert jobs[0]["state"] in ("cancelled", "interrupted")
