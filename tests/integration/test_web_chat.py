"""The web chat over HTTP, as its page uses it: post, live events, resume, menus, pages."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_web_serve import Served, sse_events, start_serve

from support import FIXTURES


@pytest.fixture
def served(workdir: Path, store_url: str) -> Iterator[Served]:
    """`opsroom serve` on the embedded defaults (the bundled example catalog), each store."""
    s = start_serve(workdir, env={"OPSROOM_STORE_URL": store_url})
    yield s
    if s.proc.poll() is None:
        s.stop()


@pytest.fixture
def menu_served(workdir: Path, store_url: str) -> Iterator[Served]:
    """`opsroom serve` on a catalog whose `ci deploy` asks for its choices, each store."""
    env = {"OPSROOM_STORE_URL": store_url}
    s = start_serve(workdir, "--catalog", str(FIXTURES / "menu_catalog"), env=env)
    yield s
    if s.proc.poll() is None:
        s.stop()


def say(client: httpx.Client, text: str, room: str = "general") -> int:
    """Post a chat message; its seq."""
    r = client.post("/api/v1/messages", json={"room": room, "text": text})
    assert r.status_code == 202, r.text
    seq: int = r.json()["seq"]
    return seq


def wait_for(
    client: httpx.Client, room: str, found: Callable[[dict[str, Any]], bool], timeout: float = 20
) -> dict[str, Any]:
    """The first event of the room's history that `found` accepts (polling)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events: list[dict[str, Any]] = client.get(f"/api/v1/rooms/{room}/messages").json()
        for event in events:
            if found(event):
                return event
        time.sleep(0.1)
    raise AssertionError(f"nothing matched in {room}")


def block(event: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The first block of type `kind` in a reply event."""
    return next((b for b in event.get("blocks", []) if b["type"] == kind), None)


def test_a_message_gets_its_echo_and_the_reply_through_the_live_stream(served: Served) -> None:
    with served.login() as c:
        seq = say(c, "!store status 42")
        events = list(
            sse_events(
                c,
                f"/api/v1/rooms/general/events?after={seq - 1}",
                until=lambda e: block(e, "table") is not None,
            )
        )
    assert events[0]["kind"] == "message"
    assert events[0]["text"] == "!store status 42"
    assert events[0]["author"] == "web:admin"
    table = block(events[-1], "table")
    assert table is not None
    assert table["columns"][:2] == ["system", "host"]
    assert table["rows"][0][:2] == ["till 1", "store-0042-pos01"]
    assert events[-1]["job_id"] is not None
    assert [e["_id"] for e in events] == [e["seq"] for e in events]


def test_resuming_with_last_event_id_misses_nothing(served: Served) -> None:
    with served.login() as c:
        first = say(c, "!version", room="resume")
        seen = list(
            sse_events(
                c,
                f"/api/v1/rooms/resume/events?after={first - 1}",
                until=lambda e: e["kind"] != "message",
            )
        )
        last_id = seen[-1]["_id"]
        # Disconnected: more happens meanwhile.
        for text in ("!whoami", "!version", "!help store"):
            say(c, text, room="resume")
        wait_for(c, "resume", lambda e: e["author"] == "bot" and "store status" in e["text"])
        history = c.get("/api/v1/rooms/resume/messages").json()
        expected = [e["seq"] for e in history if e["seq"] > last_id]
        resumed = list(_resume(c, last_id, expected[-1]))
    assert len(expected) >= 6, "three messages and their replies"
    assert [e["seq"] for e in resumed] == expected
    assert [e["seq"] for e in seen + resumed] == [e["seq"] for e in history]


def _resume(client: httpx.Client, last_id: int, until_seq: int) -> Iterator[dict[str, Any]]:
    """The room's stream reconnected as EventSource does: with a Last-Event-ID header."""
    client.headers["Last-Event-ID"] = str(last_id)
    try:
        yield from sse_events(
            client, "/api/v1/rooms/resume/events", until=lambda e: e["seq"] >= until_seq
        )
    finally:
        del client.headers["Last-Event-ID"]


def test_menus_are_answered_through_the_choose_endpoint(menu_served: Served) -> None:
    with menu_served.login() as c:
        say(c, "!ci deploy", room="deploys")
        asked = wait_for(c, "deploys", lambda e: block(e, "choices") is not None)
        menu = block(asked, "choices")
        assert menu is not None
        assert menu["options"] == ["dev", "test", "prod"]
        r = c.post(
            "/api/v1/rooms/deploys/choose",
            json={"menu_id": menu["menu"], "index": menu["options"].index("prod")},
        )
        assert r.status_code == 202, r.text
        region = wait_for(
            c, "deploys", lambda e: e["seq"] > asked["seq"] and block(e, "choices") is not None
        )
        second = block(region, "choices")
        assert second is not None
        assert second["options"] == ["emea", "amer", "apac"]
        c.post(
            "/api/v1/rooms/deploys/choose", json={"menu_id": second["menu"], "index": 0}
        ).raise_for_status()
        done = wait_for(c, "deploys", lambda e: "deploying to prod in emea" in e["text"])
        history = c.get("/api/v1/rooms/deploys/messages").json()
        # The same menu answers once; a second click is told it expired.
        c.post(
            "/api/v1/rooms/deploys/choose", json={"menu_id": menu["menu"], "index": 0}
        ).raise_for_status()
        expired = wait_for(c, "deploys", lambda e: "expired" in e["text"])
    echoes = [e["text"] for e in history if e["kind"] == "message"]
    assert echoes == ["!ci deploy", "→ prod", "→ emea"]
    assert done["job_id"] is not None
    assert expired["seq"] > done["seq"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"menu_id": "x", "index": -1}, 422),
        ({"menu_id": "", "index": 0}, 422),
        ({"menu_id": "x", "index": 0, "extra": 1}, 422),
        ({"index": 0}, 422),
    ],
)
def test_bad_choices_are_refused_clearly(served: Served, body: dict[str, Any], status: int) -> None:
    with served.login() as c:
        r = c.post("/api/v1/rooms/general/choose", json=body)
        assert r.status_code == status
        assert (
            c.post(
                "/api/v1/rooms/no%20spaces/choose", json={"menu_id": "x", "index": 0}
            ).status_code
            == 422
        )
        del c.headers["X-CSRF-Token"]
        assert (
            c.post("/api/v1/rooms/general/choose", json={"menu_id": "x", "index": 0}).status_code
            == 403
        )


def test_pages_chat_jobs_and_a_job_with_its_rerun_text(served: Served) -> None:
    with served.login() as c:
        front = c.get("/", follow_redirects=False)
        assert front.status_code == 303
        assert front.headers["location"] == "/chat"
        chat = c.get("/chat", follow_redirects=True)
        assert chat.url.path == "/chat/general"
        assert 'data-room="web:general"' in chat.text
        assert '<option value="!store status"' in chat.text
        assert "!store status &lt;store&gt;" in chat.text, "usage lines for completion"
        for label in ("Chat", "Catalog", "Jobs", "Approvals", "Audit", "Insights"):
            assert f">{label}</a>" in chat.text
        opened = c.get("/chat?room=night-shift", follow_redirects=True)
        assert opened.url.path == "/chat/night-shift"
        assert c.get("/chat/bad%20name").status_code == 422

        say(c, "!store status 42")
        job = wait_for(c, "general", lambda e: block(e, "table") is not None)["job_id"]
        listing = c.get("/jobs", params={"command": "store status", "state": "succeeded"})
        assert f'href="/jobs/{job}"' in listing.text
        assert 'hx-trigger="every 3s"' in listing.text
        assert f'href="/jobs/{job}"' not in c.get("/jobs", params={"state": "failed"}).text
        assert f'href="/jobs/{job}"' in c.get("/jobs/table", params={"requester": "me"}).text
        detail = c.get(f"/jobs/{job}")
        assert detail.status_code == 200
        assert 'data-rerun="!store status --store 42"' in detail.text
        assert 'data-room="web:general"' in detail.text
        assert 'id="job-state">succeeded<' in detail.text
        assert "hx-trigger" not in detail.text, "a finished job's log stops polling"
        assert c.get("/jobs/999999").status_code == 404
        assert c.get("/jobs", params={"state": "nonsense"}).status_code == 422
