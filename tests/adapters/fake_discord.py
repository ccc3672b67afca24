"""A local fake of Discord for tests: the REST API and a gateway websocket.

It keeps each channel's messages the way Discord shows them (PATCH edits in place, a
thread started from a message has that message's id), records every REST call and every
interaction callback, speaks the documented gateway opcodes (HELLO, heartbeat and its
ACK, IDENTIFY → READY, RESUME → the missed dispatches then RESUMED, INVALID_SESSION), and
can drop every connection, refuse new ones, replay a dispatch (a duplicate delivery) and
answer requests with 429 — per route with `retry_after` in the JSON body, or global.
Payload shapes follow Discord's documentation (Message, Interaction, Ready).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from opsroom.render.discord import visible_text

TOKEN = "fake-bot-token"
GUILD = "900000000000000001"
BOT_USER = "300000000000000001"
APPLICATION = "310000000000000001"
DM_CHANNEL = "100000000000000099"
INTENTS_NEEDED = (1 << 9) | (1 << 12) | (1 << 15)


@dataclass
class Call:
    """One REST call as the fake received it."""

    method: str
    path: str
    body: Any
    at: float  # time.monotonic()
    status: int = 200


@dataclass
class Message:
    """A message in a channel, as Discord keeps it."""

    id: str
    channel_id: str
    author: str
    content: str
    components: list[dict[str, Any]] = field(default_factory=list)
    bot: bool = False
    edited: bool = False
    reference: str | None = None  # the message it answers (message_reference)

    @property
    def visible(self) -> str:
        """What a person reads: the content and the buttons' labels."""
        return visible_text({"content": self.content, "components": self.components})


@dataclass
class Session:
    """A gateway session: what it was sent, so a RESUME can replay what it missed."""

    id: str
    sent: list[dict[str, Any]] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None


class FakeDiscord:
    """The fake Discord on 127.0.0.1 (start with `await FakeDiscord.start()`)."""

    def __init__(self) -> None:
        self.messages_by_id: dict[str, Message] = {}
        self.channels: dict[str, list[str]] = {}
        self.threads: dict[str, str] = {}  # thread channel → parent channel
        self.calls: list[Call] = []
        self.callbacks: dict[str, dict[str, Any]] = {}  # interaction id → its answer
        self.commands: list[Any] = []  # what PUT /applications/{id}/commands registered
        self.sessions: dict[str, Session] = {}
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self.heartbeats = 0
        self.heartbeat_interval_ms = 1000
        self.ack_heartbeats = True  # False: a zombie link, heartbeats go unanswered
        self.intents_needed = INTENTS_NEEDED
        self.down = False
        self.echo_bot_messages = True  # Discord sends the bot's own messages back
        self._limits: list[tuple[str, str, float, bool]] = []  # method, path prefix, s, global
        self._exhausted: dict[str, float] = {}  # path prefix → reset_after when spent
        self._ids = itertools.count(1)
        self._seq = itertools.count(1)
        self._answered = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def start(cls) -> FakeDiscord:
        """A running fake on a free port."""
        fake = cls()
        app = web.Application()
        app.router.add_route("*", "/api/v10/{path:.*}", fake._api)
        app.router.add_get("/gateway", fake._gateway)
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
        for session in self.sessions.values():
            if session.ws is not None:
                await session.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        """What `api_url` points the adapter at."""
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        """The gateway's websocket URL (what GET /gateway/bot answers)."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    def snowflake(self) -> str:
        """A new unique id."""
        return str(1_200_000_000_000_000_000 + next(self._ids))

    # -- failures ----------------------------------------------------------------------------

    def rate_limit(
        self, method: str, path_prefix: str, *, retry_after: float = 1.0, global_: bool = False
    ) -> None:
        """Answer the next request matching with 429 and `retry_after` (in the JSON body)."""
        self._limits.append((method, path_prefix, retry_after, global_))

    def exhaust_bucket(self, path_prefix: str, reset_after: float) -> None:
        """Answer the next matching request with `X-RateLimit-Remaining: 0` and this reset."""
        self._exhausted[path_prefix] = reset_after

    async def drop(self, code: int = 1011) -> None:
        """Go down: close every websocket, refuse new connections and REST calls."""
        self.down = True
        await self.disconnect(code)

    async def disconnect(self, code: int = 4000) -> None:
        """Close every gateway websocket (the sessions stay resumable)."""
        for session in self.sessions.values():
            if session.ws is not None:
                await session.ws.close(code=code, message=b"going away")

    def restore(self) -> None:
        """Come back up."""
        self.down = False

    # -- REST --------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        if self.down:
            return web.Response(status=503, text="unavailable")
        body = await request.json() if request.can_read_body else None
        call = Call(request.method, path, body, time.monotonic())
        self.calls.append(call)
        if request.headers.get("Authorization") != f"Bot {TOKEN}" and not path.startswith(
            "/interactions/"
        ):
            call.status = 401
            return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        bucket = _bucket_of(path)
        headers = {"X-RateLimit-Bucket": bucket, "X-RateLimit-Limit": "5"}
        for limit in self._limits:
            method, prefix, retry_after, global_ = limit
            if request.method == method and path.startswith(prefix):
                self._limits.remove(limit)
                call.status = 429
                scope = {"X-RateLimit-Scope": "global" if global_ else "user"}
                headers = {} if global_ else {**headers, "X-RateLimit-Remaining": "0"}
                return web.json_response(
                    {
                        "message": "You are being rate limited.",
                        "retry_after": retry_after,
                        "global": global_,
                    },
                    status=429,
                    headers={**headers, **scope, "Retry-After": str(int(retry_after) or 1)},
                )
        headers["X-RateLimit-Remaining"] = "4"
        headers["X-RateLimit-Reset-After"] = "5.000"
        for prefix, reset_after in list(self._exhausted.items()):
            if path.startswith(prefix):
                del self._exhausted[prefix]
                headers["X-RateLimit-Remaining"] = "0"
                headers["X-RateLimit-Reset-After"] = f"{reset_after:.3f}"
        status, answer = await self._route(request.method, path, body)
        call.status = status
        if answer is None:
            return web.Response(status=status, headers=headers)
        return web.json_response(answer, status=status, headers=headers)

    async def _route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        match method, parts:
            case "GET", ["gateway", "bot"]:
                limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
                return 200, {"url": self.gateway_url, "shards": 1, "session_start_limit": limit}
            case "POST", ["channels", channel, "messages"]:
                return 200, await self._create(channel, body)
            case "PATCH", ["channels", channel, "messages", message_id]:
                message = self.messages_by_id.get(message_id)
                if message is None or message.channel_id != channel:
                    return 404, {"message": "Unknown Message", "code": 10008}
                message.content = str(body.get("content", message.content))
                message.components = list(body.get("components", message.components))
                message.edited = True
                return 200, self.message_json(message)
            case "POST", ["channels", channel, "messages", message_id, "threads"]:
                return await self._thread(channel, message_id, body)
            case "PUT", ["channels", _, "messages", _, "reactions", _, "@me"]:
                return 204, None
            case "POST", ["interactions", interaction_id, token, "callback"]:
                return await self._callback(interaction_id, token, body)
            case "PUT", ["applications", application, "commands"]:
                if application != APPLICATION:
                    return 404, {"message": "Unknown Application", "code": 10002}
                self.commands = list(body)
                return 200, [{**c, "id": self.snowflake()} for c in body]
        return 404, {"message": "404: Not Found", "code": 0}

    async def _create(self, channel: str, body: dict[str, Any]) -> dict[str, Any]:
        reference = (body.get("message_reference") or {}).get("message_id")
        message = Message(
            id=self.snowflake(),
            channel_id=channel,
            author=BOT_USER,
            content=str(body.get("content") or ""),
            components=list(body.get("components") or []),
            bot=True,
            reference=reference,
        )
        self._keep(message)
        if self.echo_bot_messages:
            await self.dispatch("MESSAGE_CREATE", self.message_json(message))
        return self.message_json(message)

    async def _thread(self, channel: str, message_id: str, body: Any) -> tuple[int, Any]:
        if channel == DM_CHANNEL:
            return 400, {"message": "Cannot execute action on a DM channel", "code": 50003}
        if message_id in self.threads:
            return 400, {"message": "A thread has already been created", "code": 160004}
        if message_id not in self.channels.get(channel, []):
            return 404, {"message": "Unknown Message", "code": 10008}
        self.threads[message_id] = channel
        thread = {
            "id": message_id,
            "type": 11,  # PUBLIC_THREAD
            "guild_id": GUILD,
            "parent_id": channel,
            "name": str((body or {}).get("name") or ""),
        }
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return 201, thread

    async def _callback(self, interaction_id: str, token: str, body: Any) -> tuple[int, Any]:
        if interaction_id in self.callbacks:
            return 400, {"message": "Interaction has already been acknowledged.", "code": 40060}
        async with self._answered:
            self.callbacks[interaction_id] = {"token": token, **body, "at": time.monotonic()}
            self._answered.notify_all()
        return 204, None

    async def wait_answer(self, interaction_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The adapter's callback for an interaction (fails after `timeout`)."""
        async with self._answered:
            await asyncio.wait_for(
                self._answered.wait_for(lambda: interaction_id in self.callbacks), timeout
            )
        return self.callbacks[interaction_id]

    def calls_of(self, method: str, path_prefix: str) -> list[Call]:
        """The recorded REST calls of one method under a path."""
        return [c for c in self.calls if c.method == method and c.path.startswith(path_prefix)]

    # -- the gateway -------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if self.down:
            return web.Response(status=503, text="unavailable")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json(
            {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}, "s": None}
        )
        session: Session | None = None
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                payload = json.loads(msg.data)
                op, d = payload.get("op"), payload.get("d")
                if op == 1:
                    self.heartbeats += 1
                    if self.ack_heartbeats:
                        await ws.send_json({"op": 11})
                elif op == 2:
                    session = await self._identify(ws, d)
                elif op == 6:
                    session = await self._resume(ws, d)
        finally:
            if session is not None and session.ws is ws:
                session.ws = None
        return ws

    async def _identify(self, ws: web.WebSocketResponse, d: dict[str, Any]) -> Session | None:
        self.identifies.append(d)
        if d.get("token") != TOKEN:
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        if int(d.get("intents", 0)) & self.intents_needed != self.intents_needed:
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return None
        session = Session(id=f"session-{next(self._ids)}", ws=ws)
        self.sessions[session.id] = session
        ready = {
            "v": 10,
            "user": {"id": BOT_USER, "username": "ops", "bot": True, "discriminator": "0"},
            "guilds": [{"id": GUILD, "unavailable": True}],
            "session_id": session.id,
            "resume_gateway_url": self.gateway_url,
            "application": {"id": APPLICATION, "flags": 0},
        }
        await self._send(session, "READY", ready)
        threads = [
            {"id": t, "parent_id": p, "type": 11, "guild_id": GUILD}
            for t, p in self.threads.items()
        ]
        await self._send(session, "GUILD_CREATE", {"id": GUILD, "threads": threads})
        return session

    async def _resume(self, ws: web.WebSocketResponse, d: dict[str, Any]) -> Session | None:
        self.resumes.append(d)
        session = self.sessions.get(str(d.get("session_id")))
        if session is None or d.get("token") != TOKEN:
            await ws.send_json({"op": 9, "d": False})
            return None
        session.ws = ws
        for payload in session.sent:  # what was missed, in order
            if payload["s"] > int(d.get("seq") or 0):
                await ws.send_json(payload)
        await self._send(session, "RESUMED", {})
        return session

    async def _send(self, session: Session, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        payload = {"op": 0, "s": next(self._seq), "t": kind, "d": data}
        session.sent.append(payload)
        if session.ws is not None and not session.ws.closed:
            await session.ws.send_json(payload)
        return payload

    async def send_op(self, op: int, d: Any = None) -> None:
        """Send a bare opcode (7 RECONNECT, 9 INVALID_SESSION, 1 HEARTBEAT) on every link."""
        for session in self.sessions.values():
            if session.ws is not None and not session.ws.closed:
                await session.ws.send_json({"op": op, "d": d})

    async def dispatch(self, kind: str, data: dict[str, Any]) -> None:
        """Send a dispatch to every session (kept for a RESUME while disconnected)."""
        for session in list(self.sessions.values()):
            await self._send(session, kind, data)

    async def replay(self, kind: str, object_id: str) -> None:
        """Deliver the dispatch of `kind` about `object_id` again, as a new event."""
        for session in list(self.sessions.values()):
            last = next(
                p for p in reversed(session.sent) if p["t"] == kind and p["d"]["id"] == object_id
            )
            await self._send(session, kind, last["d"])

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Until an adapter holds a gateway session."""
        deadline = time.monotonic() + timeout
        while not any(s.ws is not None for s in self.sessions.values()):
            assert time.monotonic() < deadline, "no gateway connection"
            await asyncio.sleep(0.02)

    # -- what people do ----------------------------------------------------------------------

    def _keep(self, message: Message) -> None:
        self.messages_by_id[message.id] = message
        self.channels.setdefault(message.channel_id, []).append(message.id)

    def message_json(self, message: Message) -> dict[str, Any]:
        """A Message object as Discord documents it."""
        author: dict[str, Any] = {
            "id": message.author,
            "username": "ops" if message.bot else f"user{message.author[-2:]}",
            "global_name": None,
            "discriminator": "0",
        }
        if message.bot:
            author["bot"] = True
        data: dict[str, Any] = {
            "id": message.id,
            "type": 19 if message.reference else 0,
            "channel_id": message.channel_id,
            "author": author,
            "content": message.content,
            "timestamp": "2026-01-01T00:00:00.000000+00:00",
            "edited_timestamp": "2026-01-01T00:00:01.000000+00:00" if message.edited else None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "attachments": [],
            "embeds": [],
            "components": message.components,
        }
        if message.reference:
            data["message_reference"] = {"message_id": message.reference}
        parent = self.threads.get(message.channel_id, message.channel_id)
        if parent != DM_CHANNEL:
            data["guild_id"] = GUILD
        return data

    async def say(self, channel: str, user: str, text: str) -> str:
        """A person posts in a channel (or thread); Discord sends MESSAGE_CREATE."""
        message = Message(id=self.snowflake(), channel_id=channel, author=user, content=text)
        self._keep(message)
        data = self.message_json(message)
        if channel != DM_CHANNEL:
            data["member"] = {"roles": [], "joined_at": "2026-01-01T00:00:00+00:00"}
        await self.dispatch("MESSAGE_CREATE", data)
        return message.id

    def _interaction(self, kind: int, channel: str, user: str, data: Any) -> dict[str, Any]:
        who = {"id": user, "username": f"user{user[-2:]}", "discriminator": "0"}
        interaction: dict[str, Any] = {
            "id": self.snowflake(),
            "application_id": APPLICATION,
            "type": kind,
            "data": data,
            "channel_id": channel,
            "token": f"interaction-token-{next(self._ids)}",
            "version": 1,
            "app_permissions": "0",
            "locale": "en-US",
        }
        if self.threads.get(channel, channel) == DM_CHANNEL:
            interaction["user"] = who
        else:
            interaction["guild_id"] = GUILD
            interaction["member"] = {"user": who, "roles": [], "permissions": "0"}
        return interaction

    async def click(self, message_id: str, user: str, value: str) -> str:
        """A person clicks the button (or picks the menu option) `value`; the interaction id."""
        message = self.messages_by_id[message_id]
        data: dict[str, Any] | None = None
        for row in message.components:
            for item in row["components"]:
                if item["type"] == 2 and item["custom_id"] == value:
                    data = {"custom_id": value, "component_type": 2}
                elif item["type"] == 3 and any(o["value"] == value for o in item["options"]):
                    data = {"custom_id": item["custom_id"], "component_type": 3, "values": [value]}
        assert data is not None, f"no button {value!r} on message {message_id}"
        interaction = self._interaction(3, message.channel_id, user, data)
        interaction["message"] = self.message_json(message)
        await self.dispatch("INTERACTION_CREATE", interaction)
        return str(interaction["id"])

    async def slash(self, channel: str, user: str, text: str) -> str:
        """A person runs `/ops command: <text>`; the interaction id."""
        data = {
            "id": self.snowflake(),
            "name": "ops",
            "type": 1,
            "options": [{"name": "command", "type": 3, "value": text}],
        }
        interaction = self._interaction(2, channel, user, data)
        await self.dispatch("INTERACTION_CREATE", interaction)
        return str(interaction["id"])

    def messages(self, channel: str, *, with_threads: bool = True) -> list[Message]:
        """The channel as Discord shows it now, oldest first (and its threads' messages)."""
        ids = list(self.channels.get(channel, []))
        if with_threads:
            for thread, parent in self.threads.items():
                if parent == channel:
                    ids += self.channels.get(thread, [])
        return sorted((self.messages_by_id[i] for i in ids), key=lambda m: int(m.id))


def _bucket_of(path: str) -> str:
    """A bucket hash per route and top-level channel, as Discord's are opaque strings."""
    parts = path.strip("/").split("/")
    return "bucket-" + "-".join(
        p if not p.isdigit() or i == 1 else "id" for i, p in enumerate(parts)
    )
