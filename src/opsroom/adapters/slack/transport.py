"""The Slack connection: the Web API client (rate limits honoured) and the Socket Mode link.

Slack's own SDK gives the Web API client and its retry handlers: a 429 waits for
`Retry-After`, a 500/503 or a dropped connection is retried with backoff. The Socket Mode
websocket is kept here rather than in the SDK's client so that the connection state is
exact (the bridge's outbox depends on it) and reconnects follow a jittered exponential
backoff: each `apps.connections.open` URL is single-use, so every reconnect asks anew.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from opsroom.adapters.base import AdapterUnavailable, ConnectionState
from opsroom.adapters.slack.settings import SlackConfig
from opsroom.retry import Backoff
from opsroom.tasks import stop_task

log = logging.getLogger("opsroom.adapters.slack")

# Reconnects (and retried requests) wait 0.5 s, 1 s, 2 s … up to 30 s, jittered.
BACKOFF = Backoff(first=0.5, cap=30.0)
HEARTBEAT = 10.0  # websocket ping interval; a silent dead link is noticed within ~2 of these
RATE_LIMIT_RETRIES = 5  # 429s waited out (each for its Retry-After) before giving up
SERVER_ERROR_RETRIES = 2

# What one Socket Mode envelope is answered with: the ack payload, or None for a bare ack.
EnvelopeHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]


def web_client(config: SlackConfig) -> AsyncWebClient:
    """A Web API client on `api_url` that waits out 429s and retries 5xx and resets."""
    return AsyncWebClient(
        token=config.bot_token,
        base_url=config.api_url,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
            AsyncServerErrorRetryHandler(max_retry_count=SERVER_ERROR_RETRIES),
        ],
    )


def is_transient(error: BaseException) -> bool:
    """Slack is unreachable or overloaded (try later), not refusing this request."""
    if isinstance(error, SlackApiError):
        status = getattr(error.response, "status_code", 200)
        return status == 429 or status >= 500
    return isinstance(error, aiohttp.ClientError | TimeoutError | OSError)


class SlackTransport:
    """The Web API client plus, in Socket Mode, the websocket that brings events."""

    def __init__(self, config: SlackConfig, on_envelope: EnvelopeHandler) -> None:
        self.config = config
        self.client = web_client(config)
        self._on_envelope = on_envelope
        self._state = ConnectionState.DISCONNECTED
        self._task: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._envelopes: set[asyncio.Task[None]] = set()
        self.identity: dict[str, Any] = {}  # auth.test: user_id, bot_id, team_id
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
            log.info("slack connection %s", state.value)
        self._state = state
        if state is ConnectionState.CONNECTED:
            self.connected.set()
        else:
            self.connected.clear()

    async def start(self) -> None:
        """Start connecting in the background (returns at once; see `state`)."""
        if self._task is None:
            self._set(ConnectionState.CONNECTING)
            self._task = asyncio.create_task(self._run(), name="slack-transport")

    async def close(self) -> None:
        """Disconnect for good."""
        self._set(ConnectionState.CLOSED)
        await stop_task(self._task)
        self._task = None
        for task in list(self._envelopes):
            task.cancel()
        if self._ws is not None:
            await self._ws.close()

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One Web API call; AdapterUnavailable when Slack cannot be reached right now."""
        if self._state is not ConnectionState.CONNECTED:
            raise AdapterUnavailable(f"slack is {self._state.value}")
        try:
            response = await self.client.api_call(method, json=params)
        except SlackApiError as e:
            if is_transient(e):
                raise AdapterUnavailable(f"slack {method}: {e.response.status_code}") from e
            raise
        except (TimeoutError, aiohttp.ClientError, OSError, SlackRequestError) as e:
            raise AdapterUnavailable(f"slack {method}: {e}") from e
        return dict(response.data) if isinstance(response.data, dict) else {}

    async def _identify(self) -> None:
        response = await self.client.auth_test()
        self.identity = dict(response.data) if isinstance(response.data, dict) else {}

    async def _run(self) -> None:
        attempt = 0
        while self._state is not ConnectionState.CLOSED:
            try:
                if not self.identity:
                    await self._identify()
                if self.config.mode == "http":
                    # Events arrive at POST /hooks/slack; knowing who we are is connected.
                    self._set(ConnectionState.CONNECTED)
                    return
                if await self._socket_session():
                    attempt = 0  # a session that said hello resets the backoff
            except asyncio.CancelledError:
                raise
            except SlackApiError as e:
                if not is_transient(e):
                    log.error("slack refused the connection: %s", e.response.get("error"))
                else:
                    log.warning("slack unavailable: %s", e.response.status_code)
            except Exception as e:  # every failure to connect is retried after a backoff
                log.warning("slack connection failed: %s", e)
            if self.closed:
                return
            self._set(ConnectionState.CONNECTING)
            await asyncio.sleep(BACKOFF.delay(attempt))
            attempt += 1

    async def _socket_session(self) -> bool:
        """One websocket session, until it ends; True when Slack said hello."""
        opened = await self.client.apps_connections_open(app_token=self.config.app_token or "")
        url = str(opened["url"])
        greeted = False
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url, heartbeat=HEARTBEAT, autoping=True) as ws,
        ):
            self._ws = ws
            try:
                async for message in ws:
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        continue
                    data = json.loads(message.data)
                    kind = data.get("type")
                    if kind == "hello":
                        greeted = True
                        self._set(ConnectionState.CONNECTED)
                    elif kind == "disconnect":
                        # Slack asks us to move to a fresh connection (refresh, too many).
                        log.info("slack asked to reconnect: %s", data.get("reason"))
                        break
                    elif data.get("envelope_id"):
                        task = asyncio.create_task(self._envelope(ws, data))
                        self._envelopes.add(task)
                        task.add_done_callback(self._envelopes.discard)
            finally:
                self._ws = None
                if self._state is not ConnectionState.CLOSED:
                    self._set(ConnectionState.DISCONNECTED)
        return greeted

    async def _envelope(self, ws: aiohttp.ClientWebSocketResponse, data: dict[str, Any]) -> None:
        ack: dict[str, Any] = {"envelope_id": data["envelope_id"]}
        try:
            payload = await self._on_envelope(data)
        except Exception:
            log.exception("a slack event could not be handled")
            payload = None
        if payload:
            ack["payload"] = payload
        with contextlib.suppress(ConnectionError, RuntimeError, aiohttp.ClientError):
            await ws.send_str(json.dumps(ack))
