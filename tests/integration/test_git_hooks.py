"""`opsroom serve` with a git catalog: webhooks, polling, announcements, credentials.

Real child processes, real HTTP, real `git push` to a bare repository. Waiting is by
polling with a deadline (a push is live "soon"; the figures are in bench/bench_deploy.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_web_serve import Served, start_serve, wait_ready

from gitrepo import HELLO, GitHttp, Remote, git, make_remote
from support import OPSROOM

SECRET = "s3cret-webhook-value"
DEADLINE = 30.0  # seconds a test waits for something that should happen soon


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    """A scripts repository with `hello` on main, pushed."""
    r = make_remote(tmp_path)
    r.write("hello.py", HELLO)
    r.commit("hello")
    r.push()
    return r


def configure(workdir: Path, remote_url: str, extra: str = "") -> None:
    """`opsroom.toml`: the git catalog, webhook only, announcements in web:ops."""
    (workdir / "opsroom.toml").write_text(
        textwrap.dedent(
            f"""
            [catalog]
            git = "{remote_url}"
            announce = "web:ops"
            {extra}
            """
        ),
        encoding="utf-8",
    )


WEBHOOK = 'poll_interval = "0"\nwebhook_secret = "env:HOOK_SECRET"'


@pytest.fixture
def served(workdir: Path, remote: Remote) -> Iterator[Served]:
    """`opsroom serve` on `remote`, fetching on webhooks only."""
    configure(workdir, remote.url, WEBHOOK)
    s = start_serve(workdir, env={"HOOK_SECRET": SECRET})
    yield s
    if s.proc.poll() is None:
        s.stop()


def github(client: httpx.Client, payload: dict[str, Any], secret: str = SECRET) -> httpx.Response:
    """A GitHub push delivery: JSON body signed with HMAC-SHA256."""
    body = json.dumps(payload).encode()
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-Hub-Signature-256": sig,
    }
    return client.post("/hooks/git", content=body, headers=headers)


def gitlab(client: httpx.Client, payload: dict[str, Any], token: str = SECRET) -> httpx.Response:
    """A GitLab push hook: JSON body, the shared secret in X-Gitlab-Token."""
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": token}
    return client.post("/hooks/git", json=payload, headers=headers)


def push_event(branch: str = "main") -> dict[str, Any]:
    """The part of a push event opsroom reads (both platforms name the ref alike)."""
    return {"ref": f"refs/heads/{branch}", "after": "0" * 40, "commits": []}


def until(check: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    """Poll `check` until it returns something true; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def commands(c: httpx.Client) -> set[str]:
    """Names in the served catalog."""
    return {entry["name"] for entry in c.get("/api/v1/catalog").json()}


def live(c: httpx.Client, name: str) -> bool:
    """Whether command `name` is served."""
    return name in commands(c)


def settled(c: httpx.Client, sha: str) -> bool:
    """Whether the server has deployed (and announced, if it won the claim) `sha`."""
    return bool(c.get("/healthz").json()["catalog_deploy"]["commit"] == sha)


def room(c: httpx.Client, name: str) -> list[dict[str, Any]]:
    """The history of a web chat room."""
    events: list[dict[str, Any]] = c.get(f"/api/v1/rooms/{name}/messages").json()
    return events


def text_of(event: dict[str, Any]) -> str:
    """All text of a room event's blocks."""
    parts = []
    for block in event.get("blocks", []):
        parts.append(str(block.get("text", "")))
        parts.extend(str(line) for line in block.get("lines", []))
    return "\n".join(parts)


def announcements(c: httpx.Client) -> list[str]:
    """What was announced in web:ops."""
    return [text_of(e) for e in room(c, "ops") if e.get("author") == "bot"]


def answer(c: httpx.Client, text: str) -> str:
    """Say `text` in web:general and return the text of the bot's final reply to it."""
    r = c.post("/api/v1/messages", json={"room": "general", "text": text})
    assert r.status_code == 202, r.text
    seq = r.json()["seq"]

    def final() -> str | None:
        for e in room(c, "general"):
            if e["seq"] > seq and e.get("author") == "bot":
                said = text_of(e)
                if "succeeded" in said or "failed" in said or "unknown" in said.lower():
                    return said
        return None

    reply: str = until(final, f"the answer to {text}")
    return reply


def fetched(workdir: Path) -> str:
    """The commit opsroom last fetched in `workdir`."""
    repo = workdir / ".opsroom" / "catalog" / "repo.git"
    return git("rev-parse", "refs/opsroom/fetched", cwd=repo).strip()


BYE = '"""Say goodbye."""\n\n\ndef main() -> str:\n    return "bye"\n'


def add_bye(remote: Remote, branch: str = "main") -> str:
    remote.write("bye.py", BYE)
    sha = remote.commit("add bye", author="Bea Builder")
    remote.push(branch)
    return sha


def test_a_github_signed_push_goes_live_and_is_announced(
    served: Served, remote: Remote, workdir: Path
) -> None:
    sha = add_bye(remote)
    with served.login() as c:
        assert "bye" not in commands(c)
        r = github(c, push_event())
        assert r.status_code == 202, r.text
        assert r.json() == {"status": "accepted"}
        until(lambda: "bye" in commands(c), "bye to be live")
        assert "bye" in answer(c, "!bye")
        said = until(lambda: announcements(c), "the announcement")
    assert len(said) == 1
    assert f"catalog deployed: {sha[:8]} “add bye” by Bea Builder" in said[0]
    assert "added: bye" in said[0]
    with served.client() as c:
        assert c.get("/healthz").json()["catalog_deploy"]["commit"] == sha


def test_a_gitlab_token_push_goes_live(served: Served, remote: Remote) -> None:
    add_bye(remote)
    with served.login() as c:
        r = gitlab(c, push_event())
        assert r.status_code == 202, r.text
        until(lambda: "bye" in commands(c), "bye to be live")


def test_a_missing_or_wrong_signature_gets_401_and_fetches_nothing(
    served: Served, remote: Remote, workdir: Path
) -> None:
    before = fetched(workdir)
    sha = add_bye(remote)
    body = json.dumps(push_event()).encode()
    good_sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    bad_requests: list[dict[str, str]] = [
        {},  # no signature at all
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-Hub-Signature-256": good_sig.upper()},
        {"X-Hub-Signature-256": good_sig[:-2]},
        {
            "X-Hub-Signature-256": "sha256="
            + hmac.new(b"another secret", body, hashlib.sha256).hexdigest()
        },
        {"X-Gitlab-Token": "wrong"},
        {"X-Gitlab-Token": SECRET + "x"},
        {"X-Gitlab-Token": ""},
    ]
    with served.client() as c:
        for headers in bad_requests:
            r = c.post(
                "/hooks/git",
                content=body,
                headers={"Content-Type": "application/json", **headers},
            )
            assert r.status_code == 401, (headers, r.text)
            assert SECRET not in r.text
        # A body that is not the one signed: refused too.
        other = json.dumps(push_event("main") | {"after": "f" * 40}).encode()
        r = c.post(
            "/hooks/git",
            content=other,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": good_sig},
        )
        assert r.status_code == 401
        assert fetched(workdir) == before, "nothing was fetched"
        assert c.get("/healthz").json()["catalog_deploy"]["commit"] == before
        # The same request, signed right, does fetch: the refusals above were the signature.
        r = c.post(
            "/hooks/git",
            content=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": good_sig},
        )
        assert r.status_code == 202
        until(lambda: fetched(workdir) == sha, "the fetch")
    assert SECRET not in served.log


def test_a_push_to_another_branch_is_ignored(served: Served, remote: Remote, workdir: Path) -> None:
    before = fetched(workdir)
    add_bye(remote, branch="feature")
    with served.login() as c:
        r = github(c, push_event("feature"))
        assert r.status_code == 202
        assert r.json()["status"] == "ignored"
        tag = github(c, {"ref": "refs/tags/v1"})
        assert tag.json()["status"] == "ignored"
        ping = c.post(
            "/hooks/git",
            content=b"{}",
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "ping",
                "X-Hub-Signature-256": "sha256="
                + hmac.new(SECRET.encode(), b"{}", hashlib.sha256).hexdigest(),
            },
        )
        assert ping.json() == {"status": "pong"}
        assert fetched(workdir) == before
        assert "bye" not in commands(c)


def test_an_oversized_hook_body_is_refused_before_it_is_read(served: Served) -> None:
    body = b'{"ref": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    with served.client() as c:
        r = c.post(
            "/hooks/git",
            content=body,
            headers={"Content-Type": "application/json", "X-Gitlab-Token": SECRET},
        )
    assert r.status_code == 413


def test_without_a_webhook_secret_every_hook_is_refused(workdir: Path, remote: Remote) -> None:
    configure(workdir, remote.url, 'poll_interval = "0"')
    s = start_serve(workdir)
    try:
        before = fetched(workdir)
        add_bye(remote)
        with s.client() as c:
            r = gitlab(c, push_event(), token="")
            assert r.status_code == 401
            assert "webhook_secret" in r.json()["error"]
        assert fetched(workdir) == before
    finally:
        s.stop()
    # Configured but unreadable (the variable is not set): serve starts, says so, refuses.
    configure(workdir, remote.url, 'poll_interval = "0"\nwebhook_secret = "env:HOOK_UNSET"')
    s = start_serve(workdir)
    try:
        before = fetched(workdir)
        remote.write("later.sh", "#!/bin/sh\n# @describe Later.\necho later\n")
        remote.commit("later")
        remote.push()
        with s.client() as c:
            r = gitlab(c, push_event(), token="anything")
            assert r.status_code == 401
            assert "cannot be read" in r.json()["error"]
        assert fetched(workdir) == before
    finally:
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.stdout is not None
        rest = s.proc.stdout.read()
        s.proc.wait(timeout=60)
        s.close()
    assert "warning: [catalog] webhook_secret cannot be read" in rest


def test_polling_picks_up_a_push_without_any_webhook(workdir: Path, remote: Remote) -> None:
    web = "https://gitlab.example.org/ops/scripts"
    configure(workdir, remote.url, f'poll_interval = "1s"\nweb_url = "{web}"')
    s = start_serve(workdir)
    try:
        sha = add_bye(remote)
        with s.login() as c:
            until(lambda: "bye" in commands(c), "bye to be live by polling")
            assert "bye" in answer(c, "!bye")
            jobs = c.get("/api/v1/jobs").json()
            assert jobs[0]["catalog_commit"] == sha
            # The job page links the script at the commit it ran; the audit links commits.
            page = c.get(f"/jobs/{jobs[0]['id']}").text
            assert f'href="{web}/blob/{sha}/bye.py"' in page
            audit = c.get("/audit").text
            assert f'href="{web}/commit/{sha}"' in audit
    finally:
        s.stop()


def test_two_serve_processes_on_one_store_announce_a_push_once(
    workdir: Path, remote: Remote
) -> None:
    configure(workdir, remote.url, WEBHOOK)
    env = {"HOOK_SECRET": SECRET}
    first = start_serve(workdir, env=env)
    second = start_serve(workdir, env=env)
    try:
        wait_ready(second)
        sha = add_bye(remote)
        with first.login() as a, second.login(password=first.password) as b:
            # One push, delivered to each process (a load balancer may send it to either).
            assert github(a, push_event()).status_code == 202
            assert github(b, push_event()).status_code == 202
            for c in (a, b):
                until(partial(live, c, "bye"), "bye to be live in both")
            for s in (first, second):
                with s.client() as h:
                    until(partial(settled, h, sha), "both to have settled the commit")
            said = announcements(a)
            assert len(said) == 1, said
            assert "added: bye" in said[0]
            entries = a.get("/api/v1/audit/entries", params={"action": "catalog.deploy"}).json()
            deploys = [e for e in entries["entries"] if e["catalog_commit"] == sha]
            assert len(deploys) == 1
    finally:
        second.stop()
        first.stop()


def test_a_bad_url_stops_serve_at_start_with_exit_2(workdir: Path, tmp_path: Path) -> None:
    configure(workdir, (tmp_path / "nowhere.git").as_uri())
    done = subprocess.run(
        [OPSROOM, "serve", "--listen", "127.0.0.1:0"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "nowhere.git" in done.stderr
    assert "cannot fetch branch main" in done.stderr


def test_a_token_is_sent_to_the_server_but_never_stored_or_logged(
    workdir: Path, remote: Remote, tmp_path: Path
) -> None:
    token = "glpat-TOKEN-never-on-disk-42"
    server = GitHttp(tmp_path, user="oauth2", token=token)
    try:
        configure(workdir, server.url("scripts.git"), 'token = "env:GIT_TOKEN"')
        s = start_serve(workdir, env={"GIT_TOKEN": token})
        try:
            with s.login() as c:
                assert "hello" in commands(c)
                assert "hello bob" in answer(c, "!hello --name bob")
        finally:
            s.stop()
        assert any(a.startswith("Basic ") for a in server.seen)
        leaked = [p for p in workdir.rglob("*") if p.is_file() and token.encode() in p.read_bytes()]
        assert leaked == [], "the token is in no file: config, repository, store or log"
        assert token not in "\n".join(s.stdout)
        # A wrong token: nothing was ever fetched with it, so serve says so and exits 2.
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        configure(fresh, server.url("scripts.git"), 'token = "env:GIT_TOKEN"')
        done = subprocess.run(
            [OPSROOM, "serve", "--listen", "127.0.0.1:0"],
            cwd=fresh,
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "GIT_TOKEN": "wrong-token", "HOME": str(tmp_path)},
            check=False,
        )
        assert done.returncode == 2
        assert "wrong-token" not in done.stderr + done.stdout
    finally:
        server.close()


def test_a_saved_file_in_a_folder_catalog_is_live_and_announced(
    workdir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "catalog"
    folder.mkdir()
    (folder / "hello.py").write_text(HELLO, encoding="utf-8")
    (workdir / "opsroom.toml").write_text(
        f'[catalog]\npath = "{folder}"\nannounce = "web:ops"\n', encoding="utf-8"
    )
    s = start_serve(workdir)
    try:
        with s.login() as c:

            def saved() -> bool:
                # Saved again each round: the watcher may start after the first save.
                if "bye" in commands(c):
                    return True
                (folder / "bye.py").write_text(BYE, encoding="utf-8")
                for _ in range(20):
                    time.sleep(0.05)
                    if "bye" in commands(c):
                        return True
                return False

            until(saved, "the saved file to be live")
            assert "bye" in answer(c, "!bye")
            said = until(lambda: announcements(c), "the announcement")
            assert "added: bye" in said[0]
            (folder / "broken.py").write_text('"""Broken."""\n\ndef main(:\n', encoding="utf-8")
            rejected = until(
                lambda: [t for t in announcements(c) if "was not loaded" in t], "the rejection"
            )
            assert "broken.py:" in rejected[0]
            assert "broken" not in commands(c)
            assert "hello world" in answer(c, "!hello")
    finally:
        s.stop()


def test_day_one_new_edit_check_commit_push_and_the_command_answers(
    served: Served, remote: Remote
) -> None:
    """docs/day-one.md, step by step: no restart, nobody else's help."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [OPSROOM, *args], capture_output=True, text=True, timeout=60, check=False
        )

    new = run("new", "python", "disk-usage", str(remote.clone))
    assert new.returncode == 0, new.stderr
    script = remote.clone / "disk_usage.py"
    script.write_text(
        script.read_text(encoding="utf-8").replace(
            'print(f"disk-usage: would act on {target}")', 'print(f"disk usage on {target}: 42%")'
        ),
        encoding="utf-8",
    )
    check = run("catalog", "check", "--strict", str(remote.clone))
    assert check.returncode == 0, check.stdout + check.stderr
    sha = remote.commit("disk-usage: first version", author="New Engineer")
    remote.push()
    with served.login() as c:
        assert github(c, push_event()).status_code == 202
        until(lambda: "disk-usage" in commands(c), "disk-usage to be live")
        assert "disk usage on web01: 42%" in answer(c, "!disk-usage web01")
        said = until(lambda: announcements(c), "the announcement")
    assert f"{sha[:8]} “disk-usage: first version” by New Engineer" in said[0]
    assert "added: disk-usage" in said[0]


def test_an_unreachable_remote_is_reported_while_the_last_good_commit_serves(
    served: Served, remote: Remote, workdir: Path, tmp_path: Path
) -> None:
    good = remote.head()
    remote.bare.rename(tmp_path / "gone.git")
    with served.login() as c:
        assert github(c, push_event()).status_code == 202
        health = until(
            lambda: (h := c.get("/healthz").json())["catalog_deploy"]["fetch_error"] and h,
            "the failed fetch to show in /healthz",
        )
        assert health["status"] == "ok"
        assert health["catalog_deploy"]["commit"] == good
        assert "cannot be fetched" in c.get("/catalog").text
        said = until(lambda: announcements(c), "the warning in the announce room")
        assert "cannot fetch" in said[0]
        assert f"still serving {good[:8]}" in said[0]
        assert "hello bob" in answer(c, "!hello --name bob")
    served.stop()
    # Restarted while the remote is still gone: it serves what it fetched before, and says so.
    again = start_serve(workdir, env={"HOOK_SECRET": SECRET})
    try:
        with again.client() as c:
            deploy = c.get("/healthz").json()["catalog_deploy"]
        assert deploy["commit"] == good
        assert deploy["fetch_error"]
    finally:
        again.stop()
