"""A local fake of Slack for tests: the Web API, a Socket Mode websocket, signed HTTP events.

It keeps each channel's messages the way Slack shows them (chat.update edits in place),
records every Web API call and every ack, can answer the next N calls of a method with 429
and `Retry-After`, and can go down (close the websockets, refuse connections) and come
back. Payload shapes follow Slack's documentation (events_api envelope, event_callback,
slash command form fields, block_actions).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import WSMsgType, web

from opsroom.render.slack import block_text

BOT_USER = "U_BOT"
BOT_ID = "B_BOT"
TEAM = "T_TEST"
APP_ID = "A_OPS"

Asgi = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


@dataclass
class Call:
    """One Web API call as the fake received it."""

    method: str
    params: dict[str, Any]
    at: float  # time.monotonic()
    status: int = 200


@dataclass
class Message:
    """A message in a channel, as Slack keeps it."""

    ts: str
    user: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    bot_id: str | None = None
    edited: bool = False

    @property
    def visible(self) -> str:
        """The text a person reads: the blocks where there are any, else the text."""
        shown = "\n".join(t for t in (block_text(b) for b in self.blocks) if t) or self.text
        return shown.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's request signature: v0=HMAC-SHA256(secret, "v0:<ts>:<body>")."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class FakeSlack:
    """The fake Slack server on 127.0.0.1 (start with `await FakeSlack.start()`)."""

    def __init__(self) -> None:
        self.channels: dict[str, list[Message]] = {}
        self.calls: list[Call] = []
        self.acks: dict[str, dict[str, Any]] = {}
        self.sockets: set[web.WebSocketResponse] = set()
        self.connections = 0  # websocket sessions opened so far
        self.down = False
        self.echo_bot_messages = True  # Slack sends the bot's own messages back as events
        self._limits: dict[str, list[int]] = {}
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._acked = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0
        # HTTP mode: events are POSTed, signed, to this ASGI app instead of the websocket.
        self.http_app: Asgi | None = None
        self.signing_secret = ""

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def start(cls) -> FakeSlack:
        """A running fake on a free port."""
        fake = cls()
        app = web.Application()
        app.router.add_post("/api/{method}", fake._api)
        app.router.add_get("/api/{method}", fake._api)
        app.router.add_get("/link/", fake._socket)
        fake._runner = web.AppRunner(app, access_log=None)
        await fake._runner.setup()
        site = web.TCPSite(fake._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        fake.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return fake

    async def stop(self) -> None:
        """Close every connection and stop serving."""
        for ws in list(self.sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        """What `api_url` points the adapter at."""
        return f"http://127.0.0.1:{self.port}/api/"

    # -- failures ----------------------------------------------------------------------------

    def rate_limit(self, method: str, *, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next `times` calls of `method` with 429 and `Retry-After`."""
        self._limits.setdefault(method, []).extend([retry_after] * times)

    async def drop(self) -> None:
        """Go down: close every websocket and refuse new connections and API calls."""
        self.down = True
        for ws in list(self.sockets):
            await ws.close(code=1011, message=b"server going away")

    def restore(self) -> None:
        """Come back up."""
        self.down = False

    # -- the Web API -------------------------------------------------------------------------

    def _next_ts(self) -> str:
        n = next(self._ts)
        return f"{1700000000 + n}.{n:06d}"

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.can_read_body:
            params.update(dict((await request.post()).items()))
        if isinstance(params.get("blocks"), str):
            params["blocks"] = json.loads(params["blocks"])
        return params

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if self.down:
            return web.Response(status=503, text="unavailable")
        params = await self._params(request)
        call = Call(method, params, time.monotonic())
        self.calls.append(call)
        limits = self._limits.get(method)
        if limits:
            call.status = 429
            retry_after = limits.pop(0)
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(retry_after)},
            )
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        body: dict[str, Any] = await handler(params)
        return web.json_response(body)

    async def _m_auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://test.slack.com/",
            "team": "test",
            "user": "ops",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    async def _m_apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link/?ticket={next(self._ids)}"}

    async def _m_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params["channel"])
        message = Message(
            ts=self._next_ts(),
            user=BOT_USER,
            bot_id=BOT_ID,
            text=str(params.get("text") or ""),
            blocks=list(params.get("blocks") or []),
            thread_ts=params.get("thread_ts") or None,
        )
        self.channels.setdefault(channel, []).append(message)
        if self.echo_bot_messages and self.sockets:
            event = self._message_event(channel, message)
            asyncio.get_running_loop().create_task(self.send_event(event))
        return {"ok": True, "channel": channel, "ts": message.ts, "message": {"ts": message.ts}}

    async def _m_chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(params["channel"]), str(params["ts"])
        for message in self.channels.get(channel, []):
            if message.ts == ts:
                message.text = str(params.get("text") or "")
                message.blocks = list(params.get("blocks") or [])
                message.edited = True
                return {"ok": True, "channel": channel, "ts": ts, "text": message.text}
        return {"ok": False, "error": "message_not_found"}

    def calls_of(self, method: str) -> list[Call]:
        """The recorded calls of one Web API method."""
        return [c for c in self.calls if c.method == method]

    # -- Socket Mode -------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        if self.down:
            return web.Response(status=503, text="unavailable")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        self.sockets.add(ws)
        hello = {"type": "hello", "num_connections": 1, "connection_info": {"app_id": APP_ID}}
        await ws.send_str(json.dumps(hello))
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    if "envelope_id" in data:
                        async with self._acked:
                            self.acks[data["envelope_id"]] = data
                            self._acked.notify_all()
        finally:
            self.sockets.discard(ws)
        return ws

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Until an adapter holds a websocket."""
        deadline = time.monotonic() + timeout
        while not self.sockets:
            assert time.monotonic() < deadline, "no Socket Mode connection"
            await asyncio.sleep(0.02)

    async def envelope(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        envelope_id: str | None = None,
        retry_attempt: int = 0,
    ) -> str:
        """Send one Socket Mode envelope (events_api, slash_commands, interactive)."""
        envelope_id = envelope_id or f"env-{next(self._ids)}"
        data: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
        }
        if kind == "events_api":
            data["retry_attempt"] = retry_attempt
            data["retry_reason"] = "timeout" if retry_attempt else ""
        await self.wait_connected()
        ws = next(iter(self.sockets))
        await ws.send_str(json.dumps(data))
        return envelope_id

    async def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The adapter's ack of an envelope (fails after `timeout`)."""
        async with self._acked:
            await asyncio.wait_for(self._acked.wait_for(lambda: envelope_id in self.acks), timeout)
        return self.acks[envelope_id]

    # -- what people do ----------------------------------------------------------------------

    def event_callback(
        self, event: dict[str, Any], *, event_id: str | None = None
    ) -> dict[str, Any]:
        """The Events API body around one event."""
        return {
            "token": "legacy-verification-token",
            "team_id": TEAM,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{next(self._ids):08d}",
            "event_time": int(time.time()),
            "authorizations": [
                {"team_id": TEAM, "user_id": BOT_USER, "is_bot": True, "enterprise_id": None}
            ],
            "is_ext_shared_channel": False,
            "event_context": f"ctx-{next(self._ids)}",
        }

    def _message_event(
        self, channel: str, message: Message, kind: str = "message"
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "type": kind,
            "channel": channel,
            "user": message.user,
            "text": message.text,
            "ts": message.ts,
            "event_ts": message.ts,
            "team": TEAM,
            "channel_type": "im" if channel.startswith("D") else "channel",
        }
        if message.thread_ts:
            event["thread_ts"] = message.thread_ts
        if message.bot_id:
            event["bot_id"] = message.bot_id
        if kind == "app_mention":
            event.pop("channel_type")
        return event

    async def send_event(
        self, event: dict[str, Any], *, event_id: str | None = None, retry: int = 0
    ) -> str:
        """Deliver one event the configured way; returns its event_id."""
        body = self.event_callback(event, event_id=event_id)
        if self.http_app is not None:
            raw = json.dumps(body).encode()
            headers = {"content-type": "application/json"}
            if retry:
                headers["x-slack-retry-num"] = str(retry)
                headers["x-slack-retry-reason"] = "http_timeout"
            await self.post_http(raw, headers)
        else:
            await self.envelope("events_api", body, retry_attempt=retry)
        return str(body["event_id"])

    async def post_http(
        self,
        body: bytes,
        headers: dict[str, str],
        *,
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> httpx.Response:
        """POST a signed request to the HTTP endpoint, as Slack does."""
        assert self.http_app is not None
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signed = {
            **headers,
            "x-slack-request-timestamp": ts,
            "x-slack-signature": sign(self.signing_secret if secret is None else secret, ts, body),
        }
        transport = httpx.ASGITransport(app=self.http_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://opsroom") as client:
            return await client.post("/hooks/slack", content=body, headers=signed)

    async def say(self, channel: str, user: str, text: str, *, thread_ts: str | None = None) -> str:
        """A person posts a message; Slack sends message (and app_mention) events."""
        message = Message(ts=self._next_ts(), user=user, text=text, thread_ts=thread_ts)
        self.channels.setdefault(channel, []).append(message)
        await self.send_event(self._message_event(channel, message))
        if f"<@{BOT_USER}>" in text and not channel.startswith("D"):
            await self.send_event(self._message_event(channel, message, "app_mention"))
        return message.ts

    def slash_payload(
        self, channel: str, user: str, text: str, command: str = "/ops"
    ) -> dict[str, str]:
        """The form fields of a slash command."""
        return {
            "token": "legacy-verification-token",
            "team_id": TEAM,
            "team_domain": "test",
            "channel_id": channel,
            "channel_name": "directmessage" if channel.startswith("D") else "ops",
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": f"http://127.0.0.1:{self.port}/response/{next(self._ids)}",
            "trigger_id": f"trig.{next(self._ids)}",
        }

    async def slash(self, channel: str, user: str, text: str) -> str:
        """A person types `/ops <text>`; returns the envelope id (Socket Mode)."""
        payload = self.slash_payload(channel, user, text)
        if self.http_app is not None:
            raw = urllib.parse.urlencode(payload).encode()
            form = {"content-type": "application/x-www-form-urlencoded"}
            response = await self.post_http(raw, form)
            assert response.status_code == 200, response.text
            return ""
        return await self.envelope("slash_commands", payload)

    def block_actions_payload(
        self, channel: str, message_ts: str, user: str, value: str
    ) -> dict[str, Any]:
        """The `block_actions` payload of a click on the button (or menu option) `value`."""
        message = next(m for m in self.channels[channel] if m.ts == message_ts)
        action: dict[str, Any] | None = None
        for block in message.blocks:
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                if element["type"] == "button" and element["value"] == value:
                    action = {
                        "type": "button",
                        "action_id": element["action_id"],
                        "block_id": block.get("block_id", ""),
                        "text": element["text"],
                        "value": value,
                        "action_ts": f"{time.time():.6f}",
                    }
                elif element["type"] == "static_select":
                    for option in element["options"]:
                        if option["value"] == value:
                            action = {
                                "type": "static_select",
                                "action_id": element["action_id"],
                                "block_id": block.get("block_id", ""),
                                "selected_option": option,
                                "action_ts": f"{time.time():.6f}",
                            }
        assert action is not None, f"no button {value!r} on message {message_ts}"
        container = {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        }
        if message.thread_ts:
            container["thread_ts"] = message.thread_ts
        body_message = {
            "type": "message",
            "ts": message_ts,
            "text": message.text,
            "user": message.user,
            "bot_id": message.bot_id,
            "blocks": message.blocks,
        }
        if message.thread_ts:
            body_message["thread_ts"] = message.thread_ts
        return {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
            "api_app_id": APP_ID,
            "token": "legacy-verification-token",
            "container": container,
            "trigger_id": f"trig.{next(self._ids)}",
            "team": {"id": TEAM, "domain": "test"},
            "channel": {"id": channel, "name": "ops"},
            "message": body_message,
            "response_url": f"http://127.0.0.1:{self.port}/response/{next(self._ids)}",
            "actions": [action],
        }

    async def click(self, channel: str, message_ts: str, user: str, value: str) -> str:
        """A person clicks a button; returns the envelope id (Socket Mode)."""
        payload = self.block_actions_payload(channel, message_ts, user, value)
        if self.http_app is not None:
            raw = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
            form = {"content-type": "application/x-www-form-urlencoded"}
            response = await self.post_http(raw, form)
            assert response.status_code == 200, response.text
            return ""
        return await self.envelope("interactive", payload)

    def messages(self, channel: str) -> list[Message]:
        """The channel as Slack shows it now, oldest first."""
        return list(self.channels.get(channel, []))
