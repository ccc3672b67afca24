"""The console's catalog, approvals, audit and insights pages and their JSON API.

A real catalog (a git checkout) and a real store filled by `opsroom run` child processes;
the web app is driven over ASGI with real logins, sessions and CSRF tokens.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from stores import backend_of, copied_store, raw_sql
from support import FIXTURES, OPSROOM

ROLES = """
[[roles]]
name = "ops"
members = ["local:alice", "web:alice", "web:bob"]
allow = ["demo *"]

[[roles]]
name = "interns"
members = ["web:intern"]
allow = ["*"]
deny = ["storage *"]

[[roles]]
name = "storage-leads"
members = ["local:alice", "web:bob", "web:carol"]
allow = ["storage *"]
rooms = ["local:*", "web:*"]
where = { mode = ["quick", "secure"] }
"""

SCRIPTS = {
    "demo/greet.sh": """#!/usr/bin/env bash
# opsroom: owner = "team-greeters"
# @describe Greet someone by name, politely.
# @option --name! Who to greet
# @example !demo greet --name Ada
echo "hello ${OPSROOM_ARG_NAME}"
""",
    "demo/flaky.sh": """#!/usr/bin/env bash
# @describe Succeed, or fail when told to.
# @flag --fail Exit with code 1
if [ "${OPSROOM_ARG_FAIL:-0}" = "1" ]; then echo "broken" >&2; exit 1; fi
echo fine
""",
    "demo/unused.sh": """#!/usr/bin/env bash
# @describe Nobody runs this one; its description mentions zebras.
echo zebra
""",
}
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class History:
    """A catalog and a store holding the jobs of a few real runs."""

    catalog: Path
    url: str  # the store
    pending_job: int  # a storage wipe waiting for approval (asked by local:alice)
    second_pending: int


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


def _run(workdir: Path, catalog: Path, who: str, text: str) -> dict[str, Any]:
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}
    done = subprocess.run(
        [OPSROOM, "run", "--json", "--as", who, "--catalog", str(catalog), text],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr
    summary: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return summary


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, module_store_url: str) -> History:
    """Five finished jobs (one failed) and two waiting for approval, made by `opsroom run`."""
    base = tmp_path_factory.mktemp("console")
    catalog = base / "catalog"
    for rel, text in SCRIPTS.items():
        (catalog / rel).parent.mkdir(parents=True, exist_ok=True)
        (catalog / rel).write_text(text)
    (catalog / "storage").mkdir()
    shutil.copy(FIXTURES / "approval_catalog/storage/wipe.sh", catalog / "storage/wipe.sh")
    _git(catalog, "init", "-q", "-b", "main")
    _git(catalog, "add", ".")
    _git(catalog, "commit", "-q", "-m", "first scripts")
    workdir = base / "work"
    workdir.mkdir()
    (workdir / "opsroom.toml").write_text(f'{ROLES}\n[store]\nurl = "{module_store_url}"\n')
    for text in ("!demo greet --name Ada", "!demo greet --name Bob", "!demo greet --name Cy"):
        assert _run(workdir, catalog, "local:alice", text)["state"] == "succeeded"
    assert _run(workdir, catalog, "local:alice", "!demo flaky")["state"] == "succeeded"
    assert _run(workdir, catalog, "local:alice", "!demo flaky --fail")["state"] == "failed"
    first = _run(workdir, catalog, "local:alice", "!storage wipe vol7 --mode secure")
    second = _run(workdir, catalog, "local:alice", "!storage wipe vol9 --mode quick")
    assert first["state"] == second["state"] == "awaiting_approval"
    return History(catalog, module_store_url, first["job_id"], second["job_id"])


@dataclass
class Console:
    """The web app over a copy of the history's store, and a way to log in."""

    app: Any
    engine: Any
    url: str  # the store

    def client(self) -> httpx.AsyncClient:
        """A client without a session."""
        transport = httpx.ASGITransport(app=self.app)
        return httpx.AsyncClient(transport=transport, base_url="http://console.test")

    @contextlib.asynccontextmanager
    async def login(self, username: str) -> AsyncIterator[httpx.AsyncClient]:
        """A client logged in as `username` (its CSRF header set)."""
        async with self.client() as client:
            await self._login(client, username)
            yield client

    async def _login(self, client: httpx.AsyncClient, username: str) -> None:
        await client.get("/login")
        r = await client.post(
            "/login",
            data={
                "username": username,
                "password": PASSWORD,
                "csrf_token": client.cookies["opsroom_login_csrf"],
            },
        )
        assert r.status_code == 303, r.text
        client.headers["X-CSRF-Token"] = (await client.get("/api/v1/me")).json()["csrf_token"]


@pytest.fixture
async def console(
    history: History, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Console]:
    """The app on a private copy of the store, with web users alice, bob and carol."""
    from opsroom.app import App
    from opsroom.config import Settings
    from opsroom.web.app import create_app
    from opsroom.web.passwords import hash_password

    postgres = backend_of(history.url) == "postgresql"
    cluster = request.getfixturevalue("postgres") if postgres else None
    with copied_store(history.url, tmp_path, cluster) as url:
        settings = Settings.model_validate(tomllib.loads(ROLES))
        engine = await App.open(settings, catalog_dir=str(history.catalog), store_url=url)
        secret = hash_password(PASSWORD)
        for name in ("alice", "bob", "carol"):
            await engine.store.put_web_user(name, password_hash=secret)
        try:
            yield Console(create_app(engine), engine, url)
        finally:
            await engine.close()


@pytest.fixture
def tampered(console: Console) -> None:
    """Entry #2 of the audit trail edited behind opsroom's back."""
    raw_sql(console.url, "UPDATE audit SET reason = 'nothing to see' WHERE id = 2")


PAGES = ("/catalog", "/catalog/demo%20greet", "/approvals", "/audit", "/insights")


async def test_pages_redirect_to_login_and_the_api_answers_401_without_a_session(
    console: Console,
) -> None:
    async with console.client() as c:
        for path in PAGES:
            r = await c.get(path)
            assert r.status_code == 303, path
            assert r.headers["location"].startswith("/login?next=/"), path
        for path in (
            "/api/v1/approvals",
            "/api/v1/audit",
            "/api/v1/audit/verify",
            "/api/v1/insights",
        ):
            assert (await c.get(path)).status_code == 401, path
        r = await c.post("/api/v1/approvals/1/approve")
        assert r.status_code == 401


async def test_every_console_page_renders_for_a_logged_in_user(console: Console) -> None:
    async with console.login("alice") as c:
        for path in PAGES:
            r = await c.get(path)
            assert r.status_code == 200, path
            assert r.headers["content-type"].startswith("text/html")
            assert '<link rel="stylesheet" href="/static/console.css">' in r.text
        assert (await c.get("/static/console.css")).status_code == 200


async def test_catalog_search_matches_descriptions_and_htmx_gets_only_the_list(
    console: Console,
) -> None:
    async with console.login("alice") as c:
        full = (await c.get("/catalog")).text
        for name in ("demo greet", "demo flaky", "demo unused", "storage wipe"):
            assert f'href="/catalog/{name.replace(" ", "%20")}"' in full
        assert "team-greeters" in full
        found = await c.get("/catalog", params={"q": "zebras"}, headers={"HX-Request": "true"})
        assert found.text.lstrip().startswith('<div id="catalog-list"')
        assert "<html" not in found.text
        assert "demo unused" in found.text
        assert "demo greet" not in found.text
        assert "1 of 4 commands" in found.text
        none = await c.get("/catalog", params={"q": "politely zebras"})
        assert "No command matches" in none.text


async def test_a_command_page_documents_usage_parameters_policy_and_last_change(
    console: Console,
) -> None:
    async with console.login("alice") as c:
        greet = (await c.get("/catalog/demo greet")).text
        assert '<pre class="usage"><code>!demo greet &lt;name&gt;</code></pre>' in greet
        assert "<code>--name</code>" in greet
        assert "Who to greet" in greet
        assert "!demo greet --name Ada" in greet  # the example
        assert "team-greeters" in greet
        assert "demo/greet.sh" in greet
        assert "by Grace Hopper" in greet  # the commit that last touched it
        assert re.search(r'<code title="[0-9a-f]{40}">[0-9a-f]{12}</code>', greet)
        # ops and interns may run it anywhere; storage-leads do not allow it.
        grants = greet.split("Who may run it")[1].split("<h2>")[0]
        assert "<td>ops</td>" in grants
        assert "<td>interns</td>" in grants
        assert "storage-leads" not in grants
        wipe = (await c.get("/catalog/storage wipe")).text
        assert "1 member of role <b>storage-leads</b>, not the requester" in wipe
        grants = wipe.split("Who may run it")[1].split("<h2>")[0]
        assert "<td>storage-leads</td>" in grants
        assert "<td>ops</td>" not in grants  # ops allows only demo *
        assert "<td>interns</td>" not in grants  # interns deny storage *
        assert "<code>mode</code> = quick | secure" in grants
        assert "local:*, web:*" in grants
        assert "one of <code>quick</code>, <code>secure</code>" in wipe
        assert (await c.get("/catalog/no such thing")).status_code == 404


async def test_the_insights_api_counts_the_real_jobs(console: Console, history: History) -> None:
    async with console.login("alice") as c:
        data = (await c.get("/api/v1/insights")).json()
    assert data["total"] == 7
    assert len(data["runs_per_day"]) == 30
    assert data["runs_per_day"][-1]["runs"] == 7  # all made today
    assert data["top_commands"] == [
        {"command": "demo greet", "runs": 3},
        {"command": "demo flaky", "runs": 2},
        {"command": "storage wipe", "runs": 2},
    ]
    stats = {s["command"]: s for s in data["commands"]}
    assert stats["demo flaky"]["failure_rate"] == 0.5
    assert stats["demo greet"]["failure_rate"] == 0.0
    assert stats["storage wipe"]["failure_rate"] is None  # none ran yet
    assert stats["storage wipe"]["ended"] == 0
    greet = stats["demo greet"]
    assert 0 < greet["p50"] <= greet["p90"] <= greet["p99"] < 30
    assert data["never_used"] == ["demo unused"]


async def test_the_insights_page_draws_the_history_as_svg_bars(console: Console) -> None:
    async with console.login("alice") as c:
        page = (await c.get("/insights")).text
    days = page.split('id="chart-runs-per-day"')[1].split("</svg>")[0]
    assert days.count('<rect class="bar"') == 30
    assert re.search(r"<title>\d\d-\d\d: 7</title>", days)
    top = page.split('id="chart-top-commands"')[1].split("</svg>")[0]
    assert "<title>demo greet: 3</title>" in top
    failures = page.split('id="chart-failure-rate"')[1].split("</svg>")[0]
    assert "<title>demo flaky: 50%</title>" in failures
    assert '<a href="/catalog/demo%20unused">demo unused</a>' in page


async def test_pending_approvals_say_who_may_decide(console: Console, history: History) -> None:
    async with console.login("bob") as bob, console.login("alice") as alice:
        mine = (await bob.get("/api/v1/approvals")).json()
        theirs = (await alice.get("/api/v1/approvals")).json()
    assert [p["job_id"] for p in mine] == [history.pending_job, history.second_pending]
    first = mine[0]
    assert first["command_line"] == "storage wipe --volume vol7 --mode secure"
    assert first["requested_by"] == "local:alice"
    assert first["role"] == "storage-leads"
    assert (first["required"], first["approved_by"], first["missing"]) == (1, [], 1)
    assert first["you_may_decide"] is True
    assert theirs[0]["you_may_decide"] is False
    assert theirs[0]["why_not"] == "you are not a member of storage-leads"


async def test_approving_through_the_api_runs_the_job(console: Console, history: History) -> None:
    job = history.pending_job
    async with console.login("bob") as bob, console.login("alice") as alice:
        refused = await alice.post(f"/api/v1/approvals/{job}/approve")
        assert refused.status_code == 200
        assert refused.json()["outcome"] == "refused"
        assert "not a member of storage-leads" in refused.json()["output"]
        # wait=true: the answer comes when the job ended (by default, once the vote counted).
        r = await bob.post(f"/api/v1/approvals/{job}/approve", params={"wait": "true"})
        assert r.status_code == 200, r.text
        out = r.json()
        assert (out["outcome"], out["job_id"], out["state"]) == ("succeeded", job, "succeeded")
        assert out["output"] == "wiped vol7 (secure)"
        detail = (await bob.get(f"/api/v1/jobs/{job}")).json()
        assert detail["state"] == "succeeded"
        left = [p["job_id"] for p in (await bob.get("/api/v1/approvals")).json()]
        assert left == [history.second_pending]
        decided = (await bob.get("/api/v1/approvals/decided")).json()
        assert decided[0]["job_id"] == job
        assert (decided[0]["by"], decided[0]["decision"]) == ("web:bob", "approve")
        # Without the CSRF header a cookie-authenticated decision is refused.
        del bob.headers["X-CSRF-Token"]
        assert (
            await bob.post(f"/api/v1/approvals/{history.second_pending}/approve")
        ).status_code == 403


async def test_denying_from_the_page_records_the_reason(console: Console, history: History) -> None:
    job = history.second_pending
    async with console.login("carol") as carol:
        page = (await carol.get("/approvals")).text
        assert f'action="/approvals/{job}/deny"' in page
        csrf = carol.headers.pop("X-CSRF-Token")
        r = await carol.post(
            f"/approvals/{job}/deny",
            data={"csrf_token": csrf, "reason": 'wrong volume, it\'s "vol8"'},
        )
        assert r.status_code == 200
        assert "denied by web:carol: wrong volume, it&#39;s &#34;vol8&#34;" in r.text
        assert (await carol.get(f"/api/v1/jobs/{job}")).json()["state"] == "denied"
        history_table = r.text.split("Recently decided")[1]
        assert "denied" in history_table
        assert "web:carol" in history_table
        entries = (await carol.get("/api/v1/audit/entries", params={"action": "approval"})).json()
        assert entries["entries"][0]["reason"] == 'wrong volume, it\'s "vol8"'
        assert entries["entries"][0]["outcome"] == "deny"


async def test_the_audit_api_exports_json_and_csv_and_the_chain_is_intact(
    console: Console,
) -> None:
    async with console.login("alice") as c:
        verdict = (await c.get("/api/v1/audit/verify")).json()
        assert verdict["intact"] is True
        assert verdict["broken"] is None
        exported = await c.get("/api/v1/audit")
        assert exported.headers["content-type"].startswith("application/json")
        assert "attachment" in exported.headers["content-disposition"]
        entries = exported.json()
        assert len(entries) == verdict["entries"] == verdict["last_id"]
        assert [e["id"] for e in entries] == list(range(1, len(entries) + 1))
        assert entries[-1]["hash"] == verdict["head"]
        assert {"job.start", "job.end"} <= {e["action"] for e in entries}
        as_csv = await c.get("/api/v1/audit", params={"format": "csv"})
        assert as_csv.headers["content-type"].startswith("text/csv")
        lines = as_csv.text.splitlines()
        assert lines[0].startswith("id,at,action,principal,room,command,params,")
        assert len(lines) == len(entries) + 1
        future = (await c.get("/api/v1/audit", params={"since": "2999-01-01"})).json()
        assert future == []
        past = (await c.get("/api/v1/audit", params={"until": "2000-01-01"})).json()
        assert past == []
        bad = await c.get("/api/v1/audit", params={"since": "last tuesday"})
        assert bad.status_code == 422
        assert "since" in bad.json()["detail"]
        ancient = await c.get("/api/v1/audit/entries", params={"since": "9" * 40 + "w"})
        assert ancient.status_code == 422
        assert "further than any date" in ancient.json()["detail"]
        assert (await c.post(f"/api/v1/approvals/{2**40}/approve")).status_code == 422
        page = (await c.get("/audit")).text
        assert f"Chain intact: {verdict['entries']} entries" in page
        assert 'href="/api/v1/audit?format=csv"' in page


async def test_the_audit_page_searches_and_pages(console: Console) -> None:
    async with console.login("alice") as c:
        flaky = (await c.get("/api/v1/audit/entries", params={"command": "flaky"})).json()
        assert flaky["entries"]
        assert {e["command"] for e in flaky["entries"]} == {"demo flaky"}
        ids = [e["id"] for e in flaky["entries"]]
        assert ids == sorted(ids, reverse=True)
        one = (await c.get("/api/v1/audit/entries", params={"command": "flaky", "limit": 1})).json()
        assert [e["id"] for e in one["entries"]] == ids[:1]
        assert one["older"] == ids[0]
        nxt = await c.get(
            "/api/v1/audit/entries", params={"command": "flaky", "limit": 1, "before": one["older"]}
        )
        assert [e["id"] for e in nxt.json()["entries"]] == ids[1:2]
        page = (await c.get("/audit", params={"principal": "local:alice", "q": "flaky"})).text
        rows = page.split("<tbody>")[1].split("</tbody>")[0]
        assert rows.count("<tr") == len(ids)
        assert "demo greet" not in rows


@pytest.mark.usefixtures("tampered")
async def test_tampering_with_the_database_shows_as_a_broken_chain(console: Console) -> None:
    async with console.login("alice") as c:
        verdict = (await c.get("/api/v1/audit/verify")).json()
        assert verdict["intact"] is False
        assert verdict["broken"]["id"] == 2
        page = (await c.get("/audit")).text
        assert "Chain broken at entry #2" in page
        assert '<tr class="broken">' in page
