"""The adapter contract for the web chat: the real app under uvicorn, a person over HTTP.

The person is a logged-in httpx client: they post to /api/v1/messages and read the room's
history from /api/v1/rooms/{room}/messages, applying every `replaces` event the way the
page does, so `seen()` is what the browser shows. The web chat lives inside the serving
process, so there is no connection to cut: `drop` and `restore` change nothing and the
adapter stays CONNECTED (the contract then checks it still hears the person).

No bridge runs here: the test itself reads the adapter's events.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from adapters.contract import AdapterContract, Seen
from opsroom.adapters.base import Interaction
from opsroom.adapters.web import WebChatAdapter
from opsroom.model.blocks import Reply, Text

PASSWORD = "contract-password-1"
MIGRATE = "!storage migrate netapp-fas01 --volumes 3 --seconds-per-volume 0.4"


@dataclass
class WebHarness:
    adapter: WebChatAdapter
    person: httpx.AsyncClient
    ctx: Any = None  # the web app's context, for tests that run the web chat's bridge
    room: str = "web:general"
    user: str = "web:alice"

    async def say(self, text: str, *, thread_id: str | None = None) -> str:
        r = await self.person.post("/api/v1/messages", json={"room": "general", "text": text})
        assert r.status_code == 202, r.text
        return str(r.json()["seq"])

    async def events(self) -> list[dict[str, Any]]:
        r = await self.person.get("/api/v1/rooms/general/messages")
        assert r.status_code == 200, r.text
        events: list[dict[str, Any]] = r.json()
        return events

    async def seen(self) -> list[Seen]:
        shown: list[Seen] = []
        for event in await self.events():
            replaced = event.get("replaces")
            at = next((i for i, s in enumerate(shown) if s.id == str(replaced)), None)
            if replaced is not None and at is not None:
                shown[at] = Seen(id=shown[at].id, text=event["text"], sender="bot", edited=True)
            else:
                shown.append(Seen(id=str(event["seq"]), text=event["text"], sender=event["author"]))
        return shown

    async def click(self, message_id: str, value: str) -> None:
        r = await self.person.post(
            "/api/v1/rooms/general/interactions", json={"value": value, "message_id": message_id}
        )
        assert r.status_code == 202, r.text

    async def drop(self) -> None:
        """Nothing to cut: the web chat is in-process (the adapter stays connected)."""

    async def restore(self) -> None:
        """Nothing to restore."""


async def _login(client: httpx.AsyncClient, username: str) -> None:
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
async def harness(tmp_path: Path) -> AsyncIterator[WebHarness]:
    from opsroom.app import App
    from opsroom.catalog.scan import bundled_catalog_path
    from opsroom.config import Settings
    from opsroom.web.app import context_of, create_app
    from opsroom.web.passwords import hash_password

    engine = await App.open(
        Settings(),
        catalog_dir=str(bundled_catalog_path()),
        store_url=f"sqlite:///{tmp_path / 'opsroom.db'}",
    )
    await engine.store.put_web_user("alice", password_hash=hash_password(PASSWORD))
    app = create_app(engine)
    ctx = context_of(app)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None, access_log=False))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.02)
    person = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}")
    try:
        await _login(person, "alice")
        await ctx.chat.connect()
        yield WebHarness(ctx.chat, person, ctx)
    finally:
        await person.aclose()
        await ctx.chat.close()
        ctx.hub.close()
        server.should_exit = True
        await serving
        sock.close()
        await engine.close()


class TestWebContract(AdapterContract):
    """The shared contract."""


async def test_an_edit_is_stored_as_an_event_that_names_the_message_it_replaces(
    harness: WebHarness,
) -> None:
    ref = await harness.adapter.send(harness.room, Reply((Text("web: step 1"),), job_id=3))
    await harness.adapter.edit(ref, Reply((Text("web: step 2"),), job_id=3))
    events = await harness.events()
    first, edit = events[-2], events[-1]
    assert (first["seq"], first.get("replaces")) == (int(ref.id), None)
    assert (edit["replaces"], edit["text"], edit["job_id"]) == (int(ref.id), "web: step 2", 3)
    seen = await harness.seen()
    assert [m.text for m in seen if "web: step" in m.text] == ["web: step 2"]


async def test_a_menu_click_arrives_as_an_interaction_of_the_clicker(
    harness: WebHarness,
) -> None:
    events = harness.adapter.events()
    await harness.click("1", "menu:abc:2")
    event = await asyncio.wait_for(anext(events), 5)
    assert event == Interaction(
        principal="web:alice", room="web:general", value="menu:abc:2", message_id="1"
    )


@pytest.mark.parametrize("value", ["", "rm -rf /", "approve:7; drop", "x" * 500])
async def test_clicks_with_values_no_button_carries_are_refused(
    harness: WebHarness, value: str
) -> None:
    r = await harness.person.post("/api/v1/rooms/general/interactions", json={"value": value})
    assert r.status_code == 422


async def test_through_the_bridge_a_job_is_one_message_that_ends_with_its_result(
    harness: WebHarness,
) -> None:
    bridge = harness.ctx.start_chat()
    running = asyncio.create_task(bridge.run())
    try:
        r = await harness.person.post(
            "/api/v1/messages?wait=true", json={"room": "general", "text": MIGRATE}
        )
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "succeeded"
        job = r.json()["job_id"]
        events = [e for e in await harness.events() if e.get("job_id") == job]
        assert len(events) >= 2, "the job's message was edited as it ran"
        assert all(e["replaces"] == events[0]["seq"] for e in events[1:])
        seen = [m for m in await harness.seen() if m.id == str(events[0]["seq"])]
        assert len(seen) == 1
        assert "Migration complete" in seen[0].text
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
