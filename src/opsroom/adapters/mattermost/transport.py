"""The Mattermost connection: REST v4 calls (rate limits honoured) and the WebSocket.

A lean client of the documented API on aiohttp rather than the `mattermostdriver`
package: that driver is synchronous at heart (its async mode wraps the same calls) and
no longer maintained, and opsroom needs only five endpoints. A 429 waits for
`Retry-After` (or `X-Ratelimit-Reset`), a 5xx or a dropped connection is retried with
backoff. The WebSocket (`/api/v4/websocket`, the token in the Authorization header) is
connected once `hello` arrives; when it drops, it reconnects with jittered exponential
backoff and the state is exact meanwhile (the bridge's outbox depends on it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from opsroom.adapters.base import AdapterUnavailable, ConnectionState
from opsroom.adapters.mattermost import translate
from opsroom.adapters.mattermost.settings import MattermostConfig
from opsroom.errors import AdapterError
from opsroom.retry import Backoff
from opsroom.tasks import stop_task

log = logging.getLogger("opsroom.adapters.mattermost")

# Reconnects (and retried requests) wait 0.5 s, 1 s, 2 s … up to 30 s, jittered.
BACKOFF = Backoff(first=0.5, cap=30.0)
HEARTBEAT = 10.0  # websocket ping interval; a silent dead link is noticed within ~2 of these
RATE_LIMIT_RETRIES = 5  # 429s waited out before giving up
RATE_LIMIT_WAIT_CAP = 60.0  # seconds; a longer wait is given up (the outbox keeps the reply)
SERVER_ERROR_RETRIES = 2
REQUEST_TIMEOUT = 30.0

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]


class MattermostApiError(AdapterError):
    """Mattermost refused a request (4xx other than 429): not worth retrying."""

    def __init__(self, status: int, error_id: str, message: str) -> None:
        super().__init__(f"{status} {error_id}: {message}")
        self.status = status
        self.error_id = error_id


def retry_after(headers: Mapping[str, str], now: float) -> float:
    """Seconds a 429 asks us to wait: `Retry-After`, else `X-Ratelimit-Reset`, else 1.

    `X-Ratelimit-Reset` is read as seconds to wait, or as a Unix time when it is one.
    """
    for name in ("Retry-After", "X-Ratelimit-Reset"):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            continue
        if value > 1_000_000_000:  # an epoch timestamp, not a duration
            value -= now
        return max(0.0, value)
    return 1.0


class MattermostTransport:
    """REST calls plus the WebSocket that brings events."""

    def __init__(self, config: MattermostConfig, on_event: EventHandler) -> None:
        self.config = config
        self._on_frame = on_event
        self._state = ConnectionState.DISCONNECTED
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._frames: set[asyncio.Task[None]] = set()
        self.identity: dict[str, Any] = {}  # GET /users/me: id, username, is_bot
        self.connected = asyncio.Event()

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
            log.info("mattermost connection %s", state.value)
        self._state = state
        if state is ConnectionState.CONNECTED:
            self.connected.set()
        else:
            self.connected.clear()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self.config.token}"},
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
            )
        return self._session

    async def start(self) -> None:
        """Start connecting in the background (returns at once; see `state`)."""
        if self._task is None:
            self._set(ConnectionState.CONNECTING)
            self._task = asyncio.create_task(self._run(), name="mattermost-transport")

    async def close(self) -> None:
        """Disconnect for good."""
        self._set(ConnectionState.CLOSED)
        await stop_task(self._task)
        self._task = None
        for task in list(self._frames):
            task.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()

    async def call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """One REST call (`path` below /api/v4); AdapterUnavailable when it cannot be made now."""
        if self._state is not ConnectionState.CONNECTED:
            raise AdapterUnavailable(f"mattermost is {self._state.value}")
        return await self.request(method, path, body)

    async def request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """A REST call whatever the state: 429s waited out, 5xx and resets retried."""
        url = f"{self.config.url}/api/v4/{path.lstrip('/')}"
        limited = failed = 0
        while True:
            try:
                async with self._http().request(
                    method, url, json=dict(body) if body is not None else None
                ) as response:
                    if response.status == 429 and limited < RATE_LIMIT_RETRIES:
                        wait = retry_after(response.headers, time.time())
                        if wait > RATE_LIMIT_WAIT_CAP:
                            raise AdapterUnavailable(f"mattermost {path}: rate limited")
                        limited += 1
                        log.info("mattermost rate limit: waiting %.1f s", wait)
                        await asyncio.sleep(wait)
                        continue
                    if response.status == 429 or response.status >= 500:
                        if response.status >= 500 and failed < SERVER_ERROR_RETRIES:
                            failed += 1
                            await asyncio.sleep(BACKOFF.delay(failed - 1))
                            continue
                        raise AdapterUnavailable(f"mattermost {path}: {response.status}")
                    data = await response.json(content_type=None)
                    if response.status >= 400:
                        data = data if isinstance(data, dict) else {}
                        raise MattermostApiError(
                            response.status, str(data.get("id", "")), str(data.get("message", ""))
                        )
                    return data if isinstance(data, dict) else {"items": data}
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                if failed < SERVER_ERROR_RETRIES and self._state is not ConnectionState.CLOSED:
                    failed += 1
                    await asyncio.sleep(BACKOFF.delay(failed - 1))
                    continue
                raise AdapterUnavailable(f"mattermost {path}: {e}") from e

    async def _run(self) -> None:
        attempt = 0
        while self._state is not ConnectionState.CLOSED:
            try:
                if not self.identity:
                    self.identity = await self.request("GET", "users/me")
                if await self._socket_session():
                    attempt = 0  # a session that said hello resets the backoff
            except asyncio.CancelledError:
                raise
            except MattermostApiError as e:
                log.error("mattermost refused the connection: %s", e)
            except Exception as e:  # every failure to connect is retried after a backoff
                log.warning("mattermost connection failed: %s", e)
            if self.closed:
                return
            self._set(ConnectionState.CONNECTING)
            await asyncio.sleep(BACKOFF.delay(attempt))
            attempt += 1

    async def _socket_session(self) -> bool:
        """One WebSocket session, until it ends; True when Mattermost said hello."""
        url = self.config.url.replace("http", "ws", 1) + "/api/v4/websocket"
        greeted = False
        async with self._http().ws_connect(url, heartbeat=HEARTBEAT, autoping=True) as ws:
            self._ws = ws
            try:
                async for message in ws:
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        continue
                    event = translate.websocket_event(str(message.data))
                    if event is None:
                        continue
                    if event.get("event") == "hello":
                        greeted = True
                        self._set(ConnectionState.CONNECTED)
                        continue
                    task = asyncio.create_task(self._frame(event))
                    self._frames.add(task)
                    task.add_done_callback(self._frames.discard)
            finally:
                self._ws = None
                if self._state is not ConnectionState.CLOSED:
                    self._set(ConnectionState.DISCONNECTED)
        return greeted

    async def _frame(self, event: dict[str, Any]) -> None:
        try:
            await self._on_frame(event)
        except Exception:
            log.exception("a mattermost event could not be handled")
