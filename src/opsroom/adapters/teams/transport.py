"""The Bot Connector REST API (v3), over httpx: send, update, with the bot's bearer token.

A 429 waits for `Retry-After` (a few times); a 401 renews the token once (it may have been
revoked before it expired); a 5xx, a refused connection or a timeout marks the platform
unreachable (AdapterUnavailable: the bridge keeps the reply) until a background check
can reach the token endpoint and the signing keys again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from opsroom.adapters.base import AdapterUnavailable, ConnectionState
from opsroom.adapters.teams.auth import TIMEOUT, KeyCache, OutboundToken
from opsroom.adapters.teams.settings import TeamsConfig
from opsroom.errors import AdapterError
from opsroom.retry import Backoff

log = logging.getLogger("opsroom.adapters.teams")

RATE_LIMIT_RETRIES = 4
RETRY_AFTER_CAP = 30.0
# Reconnects (and retried requests) wait 0.5 s, 1 s, 2 s … up to 30 s, jittered.
BACKOFF = Backoff(first=0.5, cap=30.0)


class ConnectorRefused(AdapterError):
    """The Connector refused a request for good (4xx other than 401/429)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the bot connector answered {status}")
        self.status = status


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(max(float(response.headers.get("retry-after", "1")), 0.0), RETRY_AFTER_CAP)
    except ValueError:
        return 1.0


class TeamsTransport:
    """The HTTP client, the key cache, the outbound token and the connection state."""

    def __init__(self, config: TeamsConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.client = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False)
        self.keys = KeyCache(config.openid_metadata, self.client, clock)
        self.token = OutboundToken(config, self.client, clock)
        self._state = ConnectionState.DISCONNECTED
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> ConnectionState:
        """Where the connection stands now."""
        return self._state

    def _set(self, state: ConnectionState) -> None:
        if state is not self._state:
            log.info("teams connection %s", state.value)
        self._state = state
        if state is ConnectionState.CONNECTED:
            self.connected.set()
        else:
            self.connected.clear()

    async def start(self) -> None:
        """Start (re)connecting in the background."""
        if self._state is ConnectionState.CLOSED:
            return
        if self._task is None or self._task.done():
            if self._state is not ConnectionState.CONNECTED:
                self._set(ConnectionState.CONNECTING)
            self._task = asyncio.create_task(self._connect(), name="teams-transport")

    async def _connect(self) -> None:
        """Fetch the signing keys and a token until both succeed: then we are connected."""
        attempt = 0
        while self._state is not ConnectionState.CLOSED:
            try:
                await self.keys.fetch()
                await self.token.get()
                self._set(ConnectionState.CONNECTED)
                return
            except (httpx.HTTPError, ValueError, OSError) as e:
                log.warning("teams: cannot reach the bot framework yet: %s", e)
            await asyncio.sleep(BACKOFF.delay(attempt))
            attempt += 1

    def _lost(self, why: str) -> AdapterUnavailable:
        if self._state is ConnectionState.CONNECTED:
            self._set(ConnectionState.DISCONNECTED)
            self._task = asyncio.ensure_future(self._reconnect())
        return AdapterUnavailable(f"teams: {why}")

    async def _reconnect(self) -> None:
        self._task = None
        await self.start()

    async def close(self) -> None:
        """Stop for good."""
        self._set(ConnectionState.CLOSED)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.client.aclose()

    async def call(
        self, method: str, service_url: str, path: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """One Connector call; AdapterUnavailable when it cannot be reached right now."""
        if self._state is not ConnectionState.CONNECTED:
            raise AdapterUnavailable(f"teams is {self._state.value}")
        url = service_url.rstrip("/") + path
        renewed = False
        for _ in range(RATE_LIMIT_RETRIES + 1):
            try:
                token = await self.token.get()
                response = await self.client.request(
                    method, url, json=body, headers={"Authorization": f"Bearer {token}"}
                )
            except (httpx.HTTPError, OSError) as e:
                raise self._lost(f"{method} {path.split('/')[1]}: {type(e).__name__}") from e
            if response.status_code == 401 and not renewed:
                self.token.forget()
                renewed = True
                continue
            if response.status_code == 429:
                await asyncio.sleep(_retry_after(response))
                continue
            if response.status_code >= 500:
                raise self._lost(f"the bot connector answered {response.status_code}")
            if response.status_code >= 400:
                raise ConnectorRefused(response.status_code)
            try:
                data = response.json() if response.content else {}
            except ValueError:
                data = {}
            return data if isinstance(data, dict) else {}
        raise AdapterUnavailable("teams: still rate limited")


def activities_path(conversation_id: str, activity_id: str | None = None) -> str:
    """`/v3/conversations/{id}/activities[/{activityId}]`, ids percent-encoded."""
    path = f"/v3/conversations/{quote(conversation_id, safe='')}/activities"
    return f"{path}/{quote(activity_id, safe='')}" if activity_id else path
