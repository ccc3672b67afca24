"""The catalog pages give the answer the chat gives: policy decides, the page shows it.

A real catalog folder (not a git checkout), a real SQLite store and the real web app over
ASGI with real logins. Each page's answer is compared with what the engine's dispatcher —
the path every chat message takes — answers the same person in the web chat's room.
"""

from __future__ import annotations

import contextlib
import html
import re
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

ROLES = """
[[roles]]
name = "ops"
members = ["web:alice", "web:ivan"]
allow = ["*"]

[[roles]]
name = "interns"
members = ["web:ivan"]
allow = ["demo *"]
deny = ["storage *"]
"""

SCRIPTS = {
    "demo/greet.sh": "#!/usr/bin/env bash\n# @describe Greet.\necho hi\n",
    # Runs only in the NOC's Slack channels, whatever the roles say.
    "net/restart.sh": (
        "#!/usr/bin/env bash\n"
        '# opsroom: rooms = ["slack:C0NOC*"]\n'
        "# @describe Restart the core switch.\n"
        "echo restarted\n"
    ),
    "storage/wipe.sh": "#!/usr/bin/env bash\n# @describe Wipe a volume.\necho wiped\n",
}
PASSWORD = "correct horse battery staple"
ROOM = "web:general"  # where the page's "Run in chat" leads


@dataclass
class Console:
    """The web app on a real engine, and a way to log in."""

    app: Any
    engine: Any

    @contextlib.asynccontextmanager
    async def login(self, username: str) -> AsyncIterator[httpx.AsyncClient]:
        """A client with a session of `username`."""
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as c:
            await c.get("/login")
            r = await c.post(
                "/login",
                data={
                    "username": username,
                    "password": PASSWORD,
                    "csrf_token": c.cookies["opsroom_login_csrf"],
                },
            )
            assert r.status_code == 303, r.text
            yield c

    async def chat_answer(self, principal: str, text: str) -> str:
        """What the chat says to `principal` asking `text` in the web chat's room."""
        from opsroom.model.blocks import Reply, Status
        from opsroom.model.messages import Inbound

        said: list[str] = []

        async def send(reply: Reply) -> None:
            said.extend(b.text for b in reply.blocks if isinstance(b, Status))

        inbound = Inbound(text=text, principal=principal, room=ROOM)
        outcome = await self.engine.dispatcher.handle(inbound, send)
        assert outcome.outcome == "refused", said
        [answer] = said
        return answer


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    from opsroom.app import App
    from opsroom.config import Settings
    from opsroom.web.app import create_app
    from opsroom.web.passwords import hash_password

    catalog = tmp_path / "catalog"
    for rel, text in SCRIPTS.items():
        (catalog / rel).parent.mkdir(parents=True, exist_ok=True)
        (catalog / rel).write_text(text)
    settings = Settings.model_validate(tomllib.loads(ROLES))
    engine = await App.open(
        settings, catalog_dir=str(catalog), store_url=f"sqlite:///{tmp_path}/opsroom.db"
    )
    secret = hash_password(PASSWORD)
    for name in ("alice", "ivan"):
        await engine.store.put_web_user(name, password_hash=secret)
    try:
        yield Console(create_app(engine), engine)
    finally:
        await engine.close()


def _rows(listing: str) -> dict[str, str]:
    """The catalog list's rows by command name."""
    rows = {}
    for row in listing.split("<tr>")[1:]:
        link = re.search(r'href="/catalog/([^"]+)"', row)
        if link:
            rows[unquote(link.group(1))] = row
    return rows


def _refusal(page: str) -> str | None:
    """The page's "you cannot run it" answer, as text."""
    m = re.search(r"the chat would answer: ([^<]*)</p>", page)
    return html.unescape(m.group(1)) if m else None


async def test_a_command_kept_to_other_rooms_is_not_runnable_here_as_the_chat_says(
    console: Console,
) -> None:
    said = await console.chat_answer("web:alice", "!net restart")
    assert said == "denied: net restart may run only in slack:C0NOC*"
    async with console.login("alice") as c:
        page = (await c.get("/catalog/net restart")).text
        assert _refusal(page) == said
        assert "Run in chat" not in page
        assert "Only in slack:C0NOC*, whoever asks" in page
        # The role allows `*` and has no rooms of its own: the command's own rooms decide.
        grants = page.split("Who may run it")[1].split("<h2>")[0]
        assert "<td>ops</td>" in grants
        # The list says the same of it, and nothing of what alice may run.
        listing = (await c.get("/catalog")).text
        rows = _rows(listing)
        assert f"you cannot run it in {ROOM}" in rows["net restart"]
        assert html.unescape(re.findall(r'title="([^"]*)"', rows["net restart"])[0]) == said
        assert "you cannot run it" not in rows["demo greet"]
        assert "you cannot run it" not in rows["storage wipe"]
        assert sorted(rows) == ["demo greet", "net restart", "storage wipe"]
        greet = (await c.get("/catalog/demo greet")).text
        assert _refusal(greet) is None
        assert 'href="/chat/general?say=%21demo%20greet%20">Run in chat</a>' in greet


async def test_a_deny_rule_of_any_role_held_refuses_it_on_the_page_as_in_chat(
    console: Console,
) -> None:
    # ivan's ops role allows everything; his interns role denies storage: deny wins.
    said = await console.chat_answer("web:ivan", "!storage wipe")
    assert said == "denied: role interns denies storage *"
    async with console.login("ivan") as c:
        page = (await c.get("/catalog/storage wipe")).text
        assert _refusal(page) == said
        assert "Run in chat" not in page
        denials = page.split('<p class="denials">')[1].split("</p>")[0]
        assert "<b>interns</b> (deny <code>storage *</code>)" in denials
        listing = (await c.get("/catalog", params={"q": "wipe"})).text
        assert f"you cannot run it in {ROOM}" in listing
    # alice holds ops only: the same page lets her run it.
    async with console.login("alice") as c:
        page = (await c.get("/catalog/storage wipe")).text
        assert _refusal(page) is None
        assert "Run in chat" in page


async def test_the_last_change_outside_git_is_the_file_time(console: Console) -> None:
    async with console.login("alice") as c:
        page = (await c.get("/catalog/demo greet")).text
    last = page.split('<dd class="last-change">')[1].split("</dd>")[0]
    assert "(file time; the catalog is not a git checkout)" in last
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT[^"]+">', last)


async def test_the_api_listing_gives_each_caller_the_pages_and_the_chats_answer(
    console: Console,
) -> None:
    kept_away = await console.chat_answer("web:alice", "!net restart")
    denied = await console.chat_answer("web:ivan", "!storage wipe")
    async with console.login("alice") as c:
        listed = {e["name"]: e for e in (await c.get("/api/v1/catalog")).json()}
        listing = _rows((await c.get("/catalog")).text)
    assert sorted(listed) == ["demo greet", "net restart", "storage wipe"]
    assert (listed["net restart"]["runnable"], listed["net restart"]["refused"]) == (
        False,
        kept_away,
    )
    assert (listed["storage wipe"]["runnable"], listed["storage wipe"]["refused"]) == (True, None)
    assert (listed["demo greet"]["runnable"], listed["demo greet"]["refused"]) == (True, None)
    # The page lists the same commands as not runnable.
    assert [n for n, row in listing.items() if "you cannot run it" in row] == ["net restart"]
    async with console.login("ivan") as c:
        listed = {e["name"]: e for e in (await c.get("/api/v1/catalog")).json()}
        searched = (await c.get("/api/v1/catalog", params={"q": "wipe"})).json()
    assert (listed["storage wipe"]["runnable"], listed["storage wipe"]["refused"]) == (
        False,
        denied,
    )
    assert listed["demo greet"]["runnable"] is True
    assert [(e["name"], e["runnable"], e["refused"]) for e in searched] == [
        ("storage wipe", False, denied)
    ]
