"""A local fake of Mattermost for tests: REST v4, the WebSocket, slash commands and clicks.

It keeps each channel's posts the way Mattermost shows them (a patch edits in place and
sets `edit_at`), records every REST call, can answer the next N calls of an endpoint with
429 (`Retry-After`, `X-Ratelimit-*`), deliver a post twice, and go down (close the
WebSockets, refuse connections) and come back. Shapes follow Mattermost's API reference:
the `posted` event carries its post as a JSON string in `data.post`; a bot account's posts
carry `props.from_bot = "true"`; a click POSTs the button's `integration.context` (plus
`selected_option` for a menu) to the integration URL; a slash command POSTs a form.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web

from opsroom.render.mattermost import attachment_text

TOKEN = "mm-bot-token-0001"
COMMAND_TOKEN = "mm-command-token-0002"
BOT_USER = "bot7ewyq5rf93b5e6x8ae5a1ya"
BOT_NAME = "ops"
OTHER_BOT = "otherbotj9kjrcbqbrq5q5ydkeh"
TEAM = "team4k8w7tpgjdybbz6nh4gnqa"

Asgi = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


@dataclass
class Call:
    """One REST call as the fake received it."""

    method: str
    path: str
    body: dict[str, Any]
    at: float  # time.monotonic()
    status: int = 200


@dataclass
class Post:
    """A post in a channel, as Mattermost keeps it."""

    id: str
    user_id: str
    channel_id: str
    message: str
    root_id: str = ""
    props: dict[str, Any] = field(default_factory=dict)
    create_at: int = 0
    edit_at: int = 0

    @property
    def edited(self) -> bool:
        """The post was changed after it was made."""
        return self.edit_at > 0

    @property
    def attachments(self) -> list[dict[str, Any]]:
        """Its interactive-message attachments."""
        return list(self.props.get("attachments") or [])

    @property
    def visible(self) -> str:
        """The text a person reads: the message, then the buttons' labels."""
        buttons = " ".join(attachment_text(a) for a in self.attachments)
        return f"{self.message}\n{buttons}".strip() if buttons else self.message

    def as_json(self) -> dict[str, Any]:
        """The post as the API returns it."""
        return {
            "id": self.id,
            "create_at": self.create_at,
            "update_at": self.edit_at or self.create_at,
            "edit_at": self.edit_at,
            "delete_at": 0,
            "is_pinned": False,
            "user_id": self.user_id,
            "channel_id": self.channel_id,
            "root_id": self.root_id,
            "original_id": "",
            "message": self.message,
            "type": "",
            "props": self.props,
            "hashtags": "",
            "pending_post_id": "",
            "reply_count": 0,
            "metadata": {},
        }


class FakeMattermost:
    """The fake Mattermost server on 127.0.0.1 (start with `await FakeMattermost.start()`)."""

    def __init__(self) -> None:
        self.channels: dict[str, list[Post]] = {}
        self.channel_types: dict[str, str] = {}
        self.calls: list[Call] = []
        self.sockets: set[web.WebSocketResponse] = set()
        self.connections = 0  # WebSocket sessions opened so far
        self.down = False
        self.hooks: Asgi | None = None  # opsroom's web app, where clicks and /ops go
        self._limits: dict[str, list[int]] = {}
        self._ids = itertools.count(1)
        self._seq = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def start(cls) -> FakeMattermost:
        """A running fake on a free port."""
        fake = cls()
        app = web.Application()
        app.router.add_get("/api/v4/users/me", fake._users_me)
        app.router.add_post("/api/v4/posts", fake._create_post)
        app.router.add_put("/api/v4/posts/{post_id}/patch", fake._patch_post)
        app.router.add_get("/api/v4/websocket", fake._socket)
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
    def url(self) -> str:
        """What `url` points the adapter at."""
        return f"http://127.0.0.1:{self.port}"

    # -- failures ----------------------------------------------------------------------------

    def rate_limit(self, endpoint: str, *, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next `times` calls of `endpoint` ("POST posts") with 429."""
        self._limits.setdefault(endpoint, []).extend([retry_after] * times)

    async def drop(self) -> None:
        """Go down: close every WebSocket and refuse new connections and API calls."""
        self.down = True
        for ws in list(self.sockets):
            await ws.close(code=1001, message=b"server going away")

    def restore(self) -> None:
        """Come back up."""
        self.down = False

    # -- REST --------------------------------------------------------------------------------

    def _new_id(self) -> str:
        return f"post{next(self._ids):022d}"

    async def _gate(self, request: web.Request, endpoint: str) -> tuple[Call | None, web.Response]:
        """Refusals before a call is served: down, unauthenticated, rate-limited."""
        if self.down:
            return None, web.json_response({"message": "unavailable"}, status=503)
        body: dict[str, Any] = {}
        if request.can_read_body:
            body = await request.json()
        call = Call(request.method, endpoint, body, time.monotonic())
        self.calls.append(call)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            call.status = 401
            error = {"id": "api.context.session_expired.app_error", "status_code": 401}
            return call, web.json_response(error, status=401)
        limits = self._limits.get(endpoint)
        if limits:
            call.status = 429
            wait = limits.pop(0)
            headers = {
                "Retry-After": str(wait),
                "X-Ratelimit-Limit": "10",
                "X-Ratelimit-Remaining": "0",
                "X-Ratelimit-Reset": str(wait),
            }
            return call, web.json_response(
                {"id": "api.context.rate_limit", "message": "Too many requests"},
                status=429,
                headers=headers,
            )
        return call, web.Response(status=200)

    async def _users_me(self, request: web.Request) -> web.Response:
        call, refused = await self._gate(request, "GET users/me")
        if call is None or call.status != 200:
            return refused
        return web.json_response(
            {"id": BOT_USER, "username": BOT_NAME, "is_bot": True, "roles": "system_user"}
        )

    async def _create_post(self, request: web.Request) -> web.Response:
        call, refused = await self._gate(request, "POST posts")
        if call is None or call.status != 200:
            return refused
        body = call.body
        props = {**dict(body.get("props") or {}), "from_bot": "true"}
        post = Post(
            id=self._new_id(),
            user_id=BOT_USER,
            channel_id=str(body["channel_id"]),
            message=str(body.get("message") or ""),
            root_id=str(body.get("root_id") or ""),
            props=props,
            create_at=int(time.time() * 1000),
        )
        if len(post.message) > 16383:
            call.status = 400
            return web.json_response(
                {"id": "model.post.is_valid.msg.app_error", "status_code": 400}, status=400
            )
        self.channels.setdefault(post.channel_id, []).append(post)
        await self._broadcast(post)  # Mattermost sends the bot its own posts too
        return web.json_response(post.as_json(), status=201)

    async def _patch_post(self, request: web.Request) -> web.Response:
        call, refused = await self._gate(request, "PUT posts/patch")
        if call is None or call.status != 200:
            return refused
        post_id = request.match_info["post_id"]
        for post in (p for posts in self.channels.values() for p in posts):
            if post.id == post_id:
                if "message" in call.body:
                    post.message = str(call.body["message"])
                if "props" in call.body:
                    post.props = {**dict(call.body["props"] or {}), "from_bot": "true"}
                post.edit_at = int(time.time() * 1000)
                return web.json_response(post.as_json())
        call.status = 404
        return web.json_response({"id": "app.post.get.app_error"}, status=404)

    def calls_of(self, endpoint: str) -> list[Call]:
        """The recorded calls of one endpoint ("POST posts", "PUT posts/patch")."""
        return [c for c in self.calls if c.path == endpoint]

    # -- the WebSocket -----------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        if self.down:
            return web.Response(status=503, text="unavailable")
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.Response(status=401, text="unauthorized")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        self.sockets.add(ws)
        hello = {
            "event": "hello",
            "data": {"connection_id": f"conn{self.connections}", "server_version": "9.11.0"},
            "broadcast": {"omit_users": None, "user_id": BOT_USER, "channel_id": "", "team_id": ""},
            "seq": 0,
        }
        await ws.send_str(json.dumps(hello))
        try:
            async for _ in ws:
                pass  # the adapter sends nothing we answer
        finally:
            self.sockets.discard(ws)
        return ws

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Until an adapter holds a WebSocket."""
        deadline = time.monotonic() + timeout
        while not self.sockets:
            assert time.monotonic() < deadline, "no WebSocket connection"
            await asyncio.sleep(0.02)

    def posted_event(self, post: Post) -> dict[str, Any]:
        """The documented `posted` event of a post."""
        kind = self.channel_types.get(post.channel_id, "O")
        return {
            "event": "posted",
            "data": {
                "channel_display_name": "Ops",
                "channel_name": "ops",
                "channel_type": kind,
                "post": json.dumps(post.as_json()),
                "sender_name": "@" + post.user_id[:5],
                "set_online": True,
                "team_id": TEAM,
            },
            "broadcast": {
                "omit_users": None,
                "user_id": "",
                "channel_id": post.channel_id,
                "team_id": "",
            },
            "seq": next(self._seq),
        }

    async def _broadcast(self, post: Post) -> None:
        event = json.dumps(self.posted_event(post))
        for ws in list(self.sockets):
            await ws.send_str(event)

    # -- what people do ----------------------------------------------------------------------

    async def say(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        root_id: str = "",
        props: dict[str, Any] | None = None,
    ) -> str:
        """A person posts a message; Mattermost sends the `posted` event. Returns the id."""
        post = Post(
            id=self._new_id(),
            user_id=user,
            channel_id=channel,
            message=text,
            root_id=root_id,
            props=dict(props or {}),
            create_at=int(time.time() * 1000),
        )
        self.channels.setdefault(channel, []).append(post)
        await self.wait_connected()
        await self._broadcast(post)
        return post.id

    async def deliver_again(self, post_id: str) -> None:
        """Send a post's `posted` event once more (as after a WebSocket resume)."""
        post = self.find(post_id)
        await self._broadcast(post)

    def find(self, post_id: str) -> Post:
        """A post by id."""
        return next(p for posts in self.channels.values() for p in posts if p.id == post_id)

    def action_body(self, post_id: str, user: str, value: str) -> tuple[str, dict[str, Any]]:
        """The integration URL and callback body of a click on the button (or option) `value`."""
        post = self.find(post_id)
        for attachment in post.attachments:
            for action in attachment.get("actions") or []:
                integration = action.get("integration") or {}
                context = dict(integration.get("context") or {})
                if action.get("type") == "select":
                    values = [o["value"] for o in action.get("options") or []]
                    if value not in values:
                        continue
                    context["selected_option"] = value
                elif context.get("value") != value:
                    continue
                body = {
                    "user_id": user,
                    "user_name": user[:5],
                    "channel_id": post.channel_id,
                    "channel_name": "ops",
                    "team_id": TEAM,
                    "team_domain": "test",
                    "post_id": post.id,
                    "trigger_id": f"trigger{next(self._ids)}",
                    "type": action.get("type", "button"),
                    "data_source": "",
                    "context": context,
                }
                return str(integration["url"]), body
        raise AssertionError(f"no button {value!r} on post {post_id}")

    async def post_hook(
        self, url_or_path: str, *, json_body: Any = None, form: dict[str, str] | None = None
    ) -> httpx.Response:
        """POST to opsroom's web app, as Mattermost's server does."""
        assert self.hooks is not None, "the test gives the fake opsroom's web app"
        path = urllib.parse.urlsplit(url_or_path).path or url_or_path
        transport = httpx.ASGITransport(app=self.hooks)
        async with httpx.AsyncClient(transport=transport, base_url="http://opsroom") as client:
            if form is not None:
                return await client.post(path, data=form)
            return await client.post(path, json=json_body)

    async def click(self, post_id: str, user: str, value: str) -> httpx.Response:
        """A person clicks a button; Mattermost POSTs to its integration URL."""
        url, body = self.action_body(post_id, user, value)
        return await self.post_hook(url, json_body=body)

    def slash_form(self, channel: str, user: str, text: str, token: str) -> dict[str, str]:
        """The form fields of `/ops <text>`."""
        return {
            "channel_id": channel,
            "channel_name": "ops",
            "command": "/ops",
            "response_url": f"{self.url}/hooks/commands/{next(self._ids)}",
            "team_domain": "test",
            "team_id": TEAM,
            "text": text,
            "token": token,
            "trigger_id": f"trigger{next(self._ids)}",
            "user_id": user,
            "user_name": user[:5],
        }

    async def slash(
        self, channel: str, user: str, text: str, *, token: str = COMMAND_TOKEN
    ) -> httpx.Response:
        """A person types `/ops <text>`; Mattermost POSTs the command's form."""
        form = self.slash_form(channel, user, text, token)
        return await self.post_hook("/hooks/mattermost/command", form=form)

    def posts(self, channel: str) -> list[Post]:
        """The channel as Mattermost shows it now, oldest first."""
        return list(self.channels.get(channel, []))
