"""The Discord connection: a REST client that honours rate limits, and the gateway.

A lean client of the documented API on aiohttp (already a dependency): both base URLs are
configurable, so the real code runs against a local fake in tests (see
docs/adapters/discord.md for why not discord.py).

REST rate limits: every response names its bucket (`X-RateLimit-Bucket`) and what is left
of it (`X-RateLimit-Remaining`, `X-RateLimit-Reset-After`); a request whose bucket is
spent waits for the reset instead of collecting a 429. A 429 still happens (shared and
global limits): its JSON `retry_after` is waited out and the same request sent again; a
global 429 holds back every request.

Gateway: HELLO → heartbeats every `heartbeat_interval` (a missing ACK means a dead link) →
IDENTIFY, or RESUME with the session id and last sequence after a drop, so the dispatches
missed meanwhile are replayed rather than lost. The connection state is exact (the
bridge's outbox depends on it): CONNECTED from READY/RESUMED until the socket ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp

from opsroom import __version__
from opsroom.adapters.base import AdapterUnavailable, ConnectionState
from opsroom.adapters.discord.settings import DiscordConfig
from opsroom.errors import AdapterError
from opsroom.retry import Backoff
from opsroom.tasks import stop_task

log = logging.getLogger("opsroom.adapters.discord")

# GUILDS (threads and their parents), GUILD_MESSAGES, DIRECT_MESSAGES, MESSAGE_CONTENT.
INTENTS = (1 << 0) | (1 << 9) | (1 << 12) | (1 << 15)
# Reconnects (and retried requests) wait 0.5 s, 1 s, 2 s … up to 30 s, jittered.
BACKOFF = Backoff(first=0.5, cap=30.0)
RATE_LIMIT_RETRIES = 5  # 429s waited out before giving up on a request
SERVER_ERROR_RETRIES = 2
REQUEST_TIMEOUT = 30.0
# Close codes after which reconnecting cannot help (bad token, intents not enabled, ...).
FATAL_CLOSE = {
    4004: "authentication failed (check the token)",
    4010: "invalid shard",
    4011: "sharding required",
    4012: "invalid API version",
    4013: "invalid intents",
    4014: "disallowed intents: enable MESSAGE CONTENT INTENT in the Developer Portal",
}
# Gateway opcodes.
DISPATCH, HEARTBEAT, IDENTIFY, RESUME, RECONNECT, INVALID_SESSION, HELLO, HEARTBEAT_ACK = (
    0,
    1,
    2,
    6,
    7,
    9,
    10,
    11,
)

Dispatch = Callable[[str, dict[str, Any]], Awaitable[None]]


class DiscordError(AdapterError):
    """Discord refused a request (4xx other than 429): status, JSON error code, message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code


def route_key(method: str, path: str) -> str:
    """The route a bucket is learnt for: the method and path, ids kept only for the top
    resource (channel, guild, webhook), as Discord's buckets are per top-level resource;
    interaction and webhook tokens left out."""
    parts = path.strip("/").split("/")
    kept: list[str] = []
    for i, part in enumerate(parts):
        major = i == 1 and parts[0] in ("channels", "guilds", "webhooks")
        if i == 2 and parts[0] in ("interactions", "webhooks"):
            kept.append("{token}")  # a credential: never in a route name (or a log line)
        else:
            kept.append(part if major or not part.isdigit() else "{id}")
    return method + " /" + "/".join(kept)


@dataclass(slots=True)
class _Bucket:
    remaining: int = 1
    reset_at: float = 0.0  # time.monotonic() when the bucket refills
    lock: asyncio.Lock | None = None


class RestClient:
    """Discord's HTTP API on `api_url`, rate limits honoured."""

    def __init__(self, config: DiscordConfig, *, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._buckets: dict[str, _Bucket] = {}  # bucket hash (or route, until known) → state
        self._route_bucket: dict[str, str] = {}  # route → bucket hash
        self._global_until = 0.0

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bot {self.config.token}",
            "User-Agent": f"DiscordBot (https://github.com/opsroom/opsroom, {__version__})",
        }

    def session(self) -> aiohttp.ClientSession:
        """The one HTTP session (made on first use, inside the running loop)."""
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
            self._session = aiohttp.ClientSession(headers=self._headers(), timeout=timeout)
        return self._session

    async def close(self) -> None:
        """Release the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _bucket(self, route: str) -> _Bucket:
        key = self._route_bucket.get(route, route)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(lock=asyncio.Lock())
        return bucket

    async def _wait_for(self, bucket: _Bucket) -> None:
        now = self._clock()
        wait = max(self._global_until - now, 0.0)
        if bucket.remaining <= 0 and bucket.reset_at > now:
            wait = max(wait, bucket.reset_at - now)
        if wait > 0:
            log.info("discord rate limit: waiting %.2f s", wait)
            await asyncio.sleep(wait)

    def _learn(self, route: str, bucket: _Bucket, headers: Any) -> _Bucket:
        name = headers.get("X-RateLimit-Bucket")
        if name:
            known = self._buckets.get(name)
            if known is None:
                self._buckets[name] = bucket
            elif known is not bucket:
                bucket = known
            self._route_bucket[route] = name
        remaining, reset_after = (
            headers.get("X-RateLimit-Remaining"),
            headers.get("X-RateLimit-Reset-After"),
        )
        with contextlib.suppress(ValueError):
            if remaining is not None:
                bucket.remaining = int(remaining)
            if reset_after is not None:
                bucket.reset_at = self._clock() + float(reset_after)
        return bucket

    async def request(self, method: str, path: str, *, json_body: Any = None) -> Any:
        """One API call: its JSON (None when empty); AdapterUnavailable when unreachable."""
        route = route_key(method, path)
        url = self.config.api_url + path
        server_errors = rate_limits = 0
        while True:
            bucket = self._bucket(route)
            assert bucket.lock is not None
            async with bucket.lock:
                await self._wait_for(bucket)
                try:
                    async with self.session().request(method, url, json=json_body) as response:
                        body = await response.read()
                        status = response.status
                        bucket = self._learn(route, bucket, response.headers)
                        scope = response.headers.get("X-RateLimit-Scope", "")
                except (TimeoutError, aiohttp.ClientError, OSError) as e:
                    raise AdapterUnavailable(f"discord {method} {route}: {e}") from e
                data = _json(body)
                if status == 429:
                    rate_limits += 1
                    if rate_limits > RATE_LIMIT_RETRIES:
                        raise AdapterUnavailable(f"discord {route}: still rate limited")
                    retry_after = _retry_after(data, response.headers)
                    if (isinstance(data, dict) and data.get("global")) or scope == "global":
                        self._global_until = self._clock() + retry_after
                    log.warning("discord 429 on %s; retrying after %.2f s", route, retry_after)
                    bucket.remaining, bucket.reset_at = 0, self._clock() + retry_after
                    continue  # the wait happens before the next attempt, holding the bucket
            if status >= 500:
                server_errors += 1
                if server_errors > SERVER_ERROR_RETRIES:
                    raise AdapterUnavailable(f"discord {route}: {status}")
                await asyncio.sleep(BACKOFF.delay(server_errors - 1))
                continue
            if status >= 400:
                code = data.get("code", 0) if isinstance(data, dict) else 0
                message = data.get("message", "") if isinstance(data, dict) else ""
                raise DiscordError(status, int(code or 0), str(message))
            return data


def _json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _retry_after(data: Any, headers: Any) -> float:
    """Seconds a 429 asks for: the JSON `retry_after`, else the Retry-After header."""
    if isinstance(data, dict) and isinstance(data.get("retry_after"), int | float):
        return max(float(data["retry_after"]), 0.0)
    try:
        return max(float(headers.get("Retry-After", "1")), 0.0)
    except ValueError:
        return 1.0


class Gateway:
    """The gateway websocket: heartbeats, IDENTIFY/RESUME, dispatches to `on_dispatch`."""

    def __init__(self, config: DiscordConfig, rest: RestClient, on_dispatch: Dispatch) -> None:
        self.config = config
        self.rest = rest
        self._on_dispatch = on_dispatch
        self._state = ConnectionState.DISCONNECTED
        self._task: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ws_session: aiohttp.ClientSession | None = None
        self.connected = asyncio.Event()
        self.session_id: str | None = None
        self.resume_url: str | None = None
        self.sequence: int | None = None
        self.user_id: str | None = None
        self.application_id: str | None = None
        self.identifies = 0  # IDENTIFY sent (a RESUME is not counted)
        self.resumes = 0
        self._url: str | None = config.gateway_url or None

    @property
    def state(self) -> ConnectionState:
        """Where the connection stands now."""
        return self._state

    @property
    def closed(self) -> bool:
        """`close` was called."""
        return self._state is ConnectionState.CLOSED

    def _set(self, state: ConnectionState) -> None:
        if state is not self._state:
            log.info("discord connection %s", state.value)
        self._state = state
        if state is ConnectionState.CONNECTED:
            self.connected.set()
        else:
            self.connected.clear()

    async def start(self) -> None:
        """Start connecting in the background (returns at once; see `state`)."""
        if self._task is None:
            self._set(ConnectionState.CONNECTING)
            self._task = asyncio.create_task(self._run(), name="discord-gateway")

    async def close(self) -> None:
        """Disconnect for good."""
        self._set(ConnectionState.CLOSED)
        await stop_task(self._task)
        self._task = None
        if self._ws is not None:
            await self._ws.close()
        if self._ws_session is not None:
            await self._ws_session.close()

    async def _gateway_url(self) -> str:
        if self._url is None:
            data = await self.rest.request("GET", "/gateway/bot")
            url = data.get("url") if isinstance(data, dict) else None
            if not isinstance(url, str):
                raise AdapterUnavailable("discord: GET /gateway/bot named no url")
            self._url = url
        return self._url

    async def _run(self) -> None:
        attempt = 0
        while not self.closed:
            fatal = None
            try:
                code = await self._session()
                fatal = FATAL_CLOSE.get(code or 0)
                if self._state is ConnectionState.CLOSED:
                    return
                if self.session_id is not None or code is None:
                    attempt = 0
                if code in (4007, 4009):  # bad sequence, session timed out: identify anew
                    self._forget_session()
            except asyncio.CancelledError:
                raise
            except DiscordError as e:
                if e.status == 401:
                    fatal = FATAL_CLOSE[4004]
                log.warning("discord refused the gateway: %s", e)
            except Exception as e:  # every failure to connect is retried after a backoff
                log.warning("discord connection failed: %s", e)
            if self.closed:
                return
            if fatal:
                log.error("discord gateway closed for good: %s", fatal)
                self._set(ConnectionState.DISCONNECTED)
                return
            self._set(ConnectionState.CONNECTING)
            await asyncio.sleep(BACKOFF.delay(attempt))
            attempt += 1

    async def _session(self) -> int | None:
        """One websocket session until it ends; its close code (None: we ended it)."""
        resuming = self.session_id is not None and self.sequence is not None
        base = (self.resume_url if resuming else None) or await self._gateway_url()
        parsed = urlsplit(base)
        query = urlencode({"v": 10, "encoding": "json"})
        url = urlunsplit(parsed._replace(path=parsed.path or "/", query=query))
        if self._ws_session is None or self._ws_session.closed:
            self._ws_session = aiohttp.ClientSession()
        heartbeat: asyncio.Task[None] | None = None
        acked = asyncio.Event()
        try:
            async with self._ws_session.ws_connect(url, autoping=True) as ws:
                self._ws = ws
                async for message in ws:
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        continue
                    payload = json.loads(message.data)
                    op = payload.get("op")
                    if payload.get("s") is not None:
                        self.sequence = int(payload["s"])
                    if op == HELLO:
                        interval = float(payload["d"]["heartbeat_interval"]) / 1000
                        acked.set()
                        heartbeat = asyncio.create_task(self._heartbeat(ws, interval, acked))
                        await self._hello(ws, resuming)
                    elif op == HEARTBEAT_ACK:
                        acked.set()
                    elif op == HEARTBEAT:
                        await ws.send_json({"op": HEARTBEAT, "d": self.sequence})
                    elif op == RECONNECT:
                        log.info("discord asked to reconnect")
                        await ws.close(code=4900)  # not 1000: the session stays resumable
                    elif op == INVALID_SESSION:
                        if not payload.get("d"):
                            self._forget_session()
                        await ws.close(code=4900)
                    elif op == DISPATCH:
                        await self._dispatch(str(payload.get("t")), payload.get("d") or {})
                return ws.close_code
        finally:
            self._ws = None
            if heartbeat is not None:
                heartbeat.cancel()
            if self._state is not ConnectionState.CLOSED:
                self._set(ConnectionState.DISCONNECTED)

    def _forget_session(self) -> None:
        self.session_id = self.resume_url = None
        self.sequence = None

    async def _hello(self, ws: aiohttp.ClientWebSocketResponse, resuming: bool) -> None:
        if resuming:
            self.resumes += 1
            d: dict[str, Any] = {
                "token": self.config.token,
                "session_id": self.session_id,
                "seq": self.sequence,
            }
            await ws.send_json({"op": RESUME, "d": d})
            return
        self.identifies += 1
        identify = {
            "token": self.config.token,
            "intents": INTENTS,
            "properties": {"os": "linux", "browser": "opsroom", "device": "opsroom"},
        }
        await ws.send_json({"op": IDENTIFY, "d": identify})

    async def _heartbeat(
        self, ws: aiohttp.ClientWebSocketResponse, interval: float, acked: asyncio.Event
    ) -> None:
        # The first beat after interval × jitter, as documented, so reconnecting bots spread.
        await asyncio.sleep(interval * random.random())  # noqa: S311 - jitter
        while not ws.closed:
            if not acked.is_set():
                log.warning("discord heartbeat not acknowledged; reconnecting")
                await ws.close(code=4901)
                return
            acked.clear()
            with contextlib.suppress(ConnectionError, RuntimeError, aiohttp.ClientError):
                await ws.send_json({"op": HEARTBEAT, "d": self.sequence})
            await asyncio.sleep(interval)

    async def _dispatch(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "READY":
            self.session_id = str(data.get("session_id") or "") or None
            self.resume_url = data.get("resume_gateway_url") or None
            self.user_id = str((data.get("user") or {}).get("id") or "") or None
            self.application_id = str((data.get("application") or {}).get("id") or "") or None
        try:
            await self._on_dispatch(kind, data)
        except Exception:
            log.exception("a discord %s dispatch could not be handled", kind)
        if kind in ("READY", "RESUMED"):
            # After the handler: what READY sets up (the /ops command) is done once connected.
            self._set(ConnectionState.CONNECTED)
