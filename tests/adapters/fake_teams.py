"""A local fake of the Bot Framework for tests: OpenID metadata and keys, the token
endpoint, and the Bot Connector (v3 conversations/activities).

It mints real RS256 tokens with a test key (the Connector's side of POST /hooks/teams),
issues bearer tokens for client credentials and refuses Connector calls without one, keeps
each conversation's messages the way Teams shows them (updates in place, reply chains),
records every call, can answer the next N Connector calls with 429 and `Retry-After`, and
can go down and come back. Payload shapes follow the Bot Framework REST API reference.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import RSAKey

from opsroom.render.teams import card_text

APP_ID = "00000000-aaaa-4bbb-8ccc-000000000001"
APP_PASSWORD = "fake-client-secret-value"
TENANT = "72f988bf-0000-4000-8000-00000000ten1"
BOT = f"28:{APP_ID}"
ISSUER = "https://api.botframework.com"
CHANNEL = "19:ops0123456789@thread.tacv2"
KID = "fake-key-1"
ENV = {"TEAMS_APP_ID": APP_ID, "TEAMS_APP_PASSWORD": APP_PASSWORD}

Asgi = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


@dataclass(frozen=True)
class Person:
    """A Teams user: channel id, AAD object id, display name."""

    id: str
    aad: str
    name: str


ALICE = Person("29:1alice", "aad-0000-alice", "Alice Example")
BOB = Person("29:1bob", "aad-0000-bob", "Bob Example")


@dataclass
class Call:
    """One request the fake answered."""

    method: str
    path: str
    status: int
    authorization: str = ""
    body: Any = None
    at: float = field(default_factory=time.monotonic)


@dataclass
class Message:
    """A message as Teams keeps it."""

    id: str
    sender: str  # a Person's id or BOT
    text: str = ""
    card: dict[str, Any] | None = None
    reply_to: str | None = None  # the root of its reply chain
    edited: bool = False

    @property
    def visible(self) -> str:
        """What a person reads."""
        return card_text(self.card) if self.card is not None else self.text


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class FakeTeams:
    """The fake Bot Framework on 127.0.0.1 (start with `await FakeTeams.start()`)."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": KID, "use": "sig"})
        self.rotated: list[RSAKey] = []  # keys published after a rotation
        self.conversations: dict[str, list[Message]] = {}
        self.calls: list[Call] = []
        self.issued: set[str] = set()
        self.down = False
        self.bot_app: Asgi | None = None  # where activities are POSTed (the opsroom web app)
        self._limits: list[float] = []
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def start(cls) -> FakeTeams:
        """A running fake on a free port."""
        fake = cls()
        app = web.Application()
        app.router.add_get("/openid", fake._metadata)
        app.router.add_get("/keys", fake._keys)
        app.router.add_post("/token", fake._token)
        app.router.add_post("/v3/conversations/{conversation}/activities", fake._post)
        app.router.add_post("/v3/conversations/{conversation}/activities/{reply_to}", fake._post)
        app.router.add_put("/v3/conversations/{conversation}/activities/{activity}", fake._put)
        fake._runner = web.AppRunner(app, access_log=None)
        await fake._runner.setup()
        site = web.TCPSite(fake._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        fake.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return fake

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base(self) -> str:
        """The fake's root URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def service_url(self) -> str:
        """The Connector's service URL, as Teams puts it in activities and tokens."""
        return f"{self.base}/"

    def table(self, **more: Any) -> dict[str, Any]:
        """An `[adapters.teams]` table pointing at the fake."""
        return {
            "app_id": "env:TEAMS_APP_ID",
            "app_password": "env:TEAMS_APP_PASSWORD",
            "tenant_id": TENANT,
            "openid_metadata": f"{self.base}/openid",
            "token_url": f"{self.base}/token",
            **more,
        }

    # -- failures ----------------------------------------------------------------------------

    def rate_limit(self, *, times: int = 1, retry_after: float = 1) -> None:
        """Answer the next `times` Connector calls with 429 and `Retry-After`."""
        self._limits.extend([retry_after] * times)

    async def drop(self) -> None:
        """Go down: every endpoint answers 503."""
        self.down = True

    def restore(self) -> None:
        """Come back up."""
        self.down = False

    def rotate(self) -> RSAKey:
        """Publish a second signing key (as the Connector does before it switches)."""
        key = RSAKey.generate_key(2048, parameters={"kid": f"fake-key-{len(self.rotated) + 2}"})
        self.rotated.append(key)
        return key

    # -- OpenID metadata, keys and the token endpoint ---------------------------------------

    def _record(self, request: web.Request, status: int, body: Any = None) -> None:
        self.calls.append(
            Call(
                request.method, request.path, status, request.headers.get("Authorization", ""), body
            )
        )

    async def _metadata(self, request: web.Request) -> web.Response:
        if self.down:
            return web.Response(status=503)
        self._record(request, 200)
        return web.json_response(
            {
                "issuer": ISSUER,
                "authorization_endpoint": "https://invalid.example/authorize",
                "jwks_uri": f"{self.base}/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }
        )

    async def _keys(self, request: web.Request) -> web.Response:
        if self.down:
            return web.Response(status=503)
        self._record(request, 200)
        keys = []
        for key in (self.key, *self.rotated):
            public = dict(key.as_dict(private=False))
            public["endorsements"] = ["msteams", "webchat"]
            keys.append(public)
        return web.json_response({"keys": keys})

    async def _token(self, request: web.Request) -> web.Response:
        if self.down:
            return web.Response(status=503)
        form = await request.post()
        good = (
            form.get("grant_type") == "client_credentials"
            and form.get("client_id") == APP_ID
            and form.get("client_secret") == APP_PASSWORD
            and form.get("scope") == "https://api.botframework.com/.default"
        )
        if not good:
            self._record(request, 401)
            return web.json_response({"error": "invalid_client"}, status=401)
        token = f"fake-bearer-{next(self._ids)}"
        self.issued.add(token)
        self._record(request, 200)
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": token,
            }
        )

    def mint(
        self,
        *,
        key: RSAKey | None = None,
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A Connector token for an inbound activity, valid unless told otherwise."""
        now = int(time.time())
        body: dict[str, Any] = {
            "serviceurl": self.service_url,
            "nbf": now - 60,
            "exp": now + 3600,
            "iss": ISSUER,
            "aud": APP_ID,
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        signing = key or self.key
        if header and header.get("alg") == "none":
            return f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': KID})}.{_b64(body)}."
        if header and header.get("alg") == "HS256":
            # Key confusion: an HMAC "signed" with the published public key as the secret.
            signed = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': KID})}.{_b64(body)}"
            secret = signing.as_bytes(private=False)
            mac = hmac.new(secret, signed.encode(), hashlib.sha256).digest()
            return f"{signed}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
        head = {"alg": "RS256", "typ": "JWT", "kid": signing.kid, **(header or {})}
        return jwt.encode(head, body, signing)

    # -- the Bot Connector -------------------------------------------------------------------

    def _authorised(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme == "Bearer" and token in self.issued

    async def _guard(self, request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
        body = await request.json() if request.can_read_body else {}
        if self.down:
            self._record(request, 503, body)
            return body, web.Response(status=503)
        if not self._authorised(request):
            self._record(request, 401, body)
            return body, web.json_response({"error": {"code": "Unauthorized"}}, status=401)
        if self._limits:
            wait = self._limits.pop(0)
            self._record(request, 429, body)
            return body, web.Response(status=429, headers={"Retry-After": str(wait)})
        self._record(request, 200, body)
        return body, None

    def _content(self, body: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        for attachment in body.get("attachments") or []:
            if attachment.get("contentType") == "application/vnd.microsoft.card.adaptive":
                return "", attachment["content"]
        return str(body.get("text") or ""), None

    async def _post(self, request: web.Request) -> web.Response:
        body, refused = await self._guard(request)
        if refused is not None:
            return refused
        base, _, root = request.match_info["conversation"].partition(";messageid=")
        reply_to = request.match_info.get("reply_to") or body.get("replyToId") or root or None
        text, card = self._content(body)
        message = Message(id=self._next_id(), sender=BOT, text=text, card=card, reply_to=reply_to)
        self.conversations.setdefault(base, []).append(message)
        return web.json_response({"id": message.id}, status=201)

    async def _put(self, request: web.Request) -> web.Response:
        body, refused = await self._guard(request)
        if refused is not None:
            return refused
        base = request.match_info["conversation"].partition(";messageid=")[0]
        wanted = request.match_info["activity"]
        for message in self.conversations.get(base, []):
            if message.id == wanted and message.sender == BOT:
                message.text, message.card = self._content(body)
                message.edited = True
                return web.json_response({"id": message.id})
        return web.json_response({"error": {"code": "ActivityNotFound"}}, status=404)

    def _next_id(self) -> str:
        return str(1_700_000_000_000 + next(self._ids))

    def messages(self, conversation: str = CHANNEL) -> list[Message]:
        """A conversation's messages, oldest first."""
        return list(self.conversations.get(conversation, []))

    def calls_to(self, method: str, fragment: str = "/v3/") -> list[Call]:
        """Recorded Connector calls of one HTTP method."""
        return [c for c in self.calls if c.method == method and fragment in c.path]

    # -- Teams calling the bot ---------------------------------------------------------------

    def activity(
        self,
        person: Person,
        *,
        kind: str = "message",
        text: str | None = None,
        conversation: str = CHANNEL,
        conversation_type: str = "channel",
        thread: str | None = None,
        tenant: str = TENANT,
        **more: Any,
    ) -> dict[str, Any]:
        """An activity from `person`, shaped as the Connector posts it."""
        activity_id = self._next_id()
        root = thread or activity_id
        conversation_id = (
            f"{conversation};messageid={root}" if conversation_type == "channel" else conversation
        )
        activity: dict[str, Any] = {
            "type": kind,
            "id": activity_id,
            "timestamp": "2026-12-06T10:00:00.000Z",
            "localTimestamp": "2026-12-06T11:00:00.000+01:00",
            "serviceUrl": self.service_url,
            "channelId": "msteams",
            "from": {"id": person.id, "name": person.name, "aadObjectId": person.aad},
            "conversation": {
                "isGroup": conversation_type != "personal",
                "conversationType": conversation_type,
                "id": conversation_id,
                "tenantId": tenant,
            },
            "recipient": {"id": BOT, "name": "ops"},
            "entities": [{"type": "clientInfo", "locale": "en-US", "country": "US"}],
            "channelData": {"tenant": {"id": tenant}},
            "locale": "en-US",
        }
        if conversation_type == "channel":
            activity["channelData"].update(
                {
                    "teamsChannelId": conversation,
                    "teamsTeamId": conversation,
                    "channel": {"id": conversation},
                }
            )
        if text is not None:
            activity["text"] = text
            activity["textFormat"] = "plain"
        activity.update(more)
        return activity

    async def post(
        self,
        activity: dict[str, Any],
        *,
        token: str | None = "",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST an activity to the bot's messaging endpoint with a Connector token."""
        assert self.bot_app is not None, "set bot_app to the opsroom web app first"
        sent = {"content-type": "application/json", **(headers or {})}
        if token is not None:
            sent["authorization"] = f"Bearer {token or self.mint()}"
        transport = httpx.ASGITransport(app=self.bot_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://opsroom") as client:
            return await client.post("/hooks/teams", content=json.dumps(activity), headers=sent)

    async def post_raw(self, body: bytes, *, token: str | None = "") -> httpx.Response:
        """POST arbitrary bytes to the messaging endpoint (with a valid token unless None)."""
        assert self.bot_app is not None
        headers = {"content-type": "application/json"}
        if token is not None:
            headers["authorization"] = f"Bearer {token or self.mint()}"
        transport = httpx.ASGITransport(app=self.bot_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://opsroom") as client:
            return await client.post("/hooks/teams", content=body, headers=headers)

    async def install(self, person: Person = ALICE) -> httpx.Response:
        """The app is added to the team: a conversationUpdate with the bot among membersAdded."""
        activity = self.activity(person, kind="conversationUpdate", membersAdded=[{"id": BOT}])
        activity["conversation"]["id"] = CHANNEL
        return await self.post(activity)

    async def say(
        self, person: Person, text: str, *, thread: str | None = None, mention: bool = False
    ) -> str:
        """A person posts in the channel (optionally @mentioning the bot); the message id."""
        shown = f"<at>ops</at> {text}" if mention else text
        activity = self.activity(person, text=shown, thread=thread)
        if mention:
            activity["entities"].append(
                {"type": "mention", "text": "<at>ops</at>", "mentioned": {"id": BOT, "name": "ops"}}
            )
        message = Message(id=activity["id"], sender=person.id, text=text, reply_to=thread)
        self.conversations.setdefault(CHANNEL, []).append(message)
        response = await self.post(activity)
        assert response.status_code == 200, response.status_code
        return message.id

    async def click(self, person: Person, message_id: str, value: str) -> httpx.Response:
        """A person presses an Action.Submit button whose data carries `value`."""
        root = next((m.reply_to for m in self.messages() if m.id == message_id), None)
        activity = self.activity(
            person, thread=root or message_id, replyToId=message_id, value={"opsroom": value}
        )
        return await self.post(activity)
