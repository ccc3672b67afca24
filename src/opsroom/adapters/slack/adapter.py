"""The Slack adapter: Bolt routes Slack's events; opsroom's bridge does everything else.

Every request is acknowledged at once (Bolt acks before the listener's work continues), so
Slack never waits on a job and never retries because of one. Slack delivers at least once
— Events API retries carry `X-Slack-Retry-Num`, Socket Mode redelivers an envelope that
was not acked — so each message, slash command and click is recorded in the store before
it becomes an event, and a second delivery of the same one is dropped, across restarts and
across opsroom processes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from slack_sdk.errors import SlackApiError

from opsroom.adapters.base import (
    Capabilities,
    ConnectionState,
    Event,
    MessageRef,
)
from opsroom.adapters.deliveries import Deliveries, FirstDelivery
from opsroom.adapters.slack import translate
from opsroom.adapters.slack.settings import SlackConfig
from opsroom.adapters.slack.transport import SlackTransport
from opsroom.model.blocks import Reply
from opsroom.render.slack import SlackMessage, SlackRenderer

log = logging.getLogger("opsroom.adapters.slack")

CAPABILITIES = Capabilities(
    threads=True,
    edits=True,
    buttons=True,
    max_message_length=4000,  # Slack's practical size; 3,000 per section, 40,000 hard cap
    edits_per_second=1.0,
)
_TOO_BIG = frozenset({"msg_too_long", "invalid_blocks", "too_many_blocks", "invalid_arguments"})


class SlackAdapter:
    """One Slack workspace connection (Socket Mode or Events API over HTTP)."""

    name = "slack"
    capabilities = CAPABILITIES
    renderer = SlackRenderer(CAPABILITIES.max_message_length)

    def __init__(
        self, config: SlackConfig, *, prefix: str = "!", first_delivery: FirstDelivery | None
    ) -> None:
        self.config = config
        self.prefix = prefix
        self.deliveries = Deliveries("slack", first_delivery)
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self.transport = SlackTransport(config, self._envelope)
        self.bolt = self._bolt_app()

    # -- Bolt wiring ---------------------------------------------------------------------------

    def _bolt_app(self) -> AsyncApp:
        app = AsyncApp(
            client=self.transport.client,
            signing_secret=self.config.signing_secret or "",
            # Socket Mode messages come over our own authenticated websocket: no signature.
            request_verification_enabled=self.config.mode == "http",
            process_before_response=False,
            ignoring_self_events_enabled=True,
            logger=logging.getLogger("opsroom.adapters.slack.bolt"),
        )
        app.event("message")(self._on_message)
        app.event("app_mention")(self._on_message)
        app.command(self.config.command)(self._on_command)
        app.action(re.compile(r"^opsroom_"))(self._on_action)
        return app

    async def _envelope(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """A Socket Mode envelope through Bolt; what to put in the ack."""
        headers: dict[str, str | Sequence[str]] = {}
        if data.get("retry_attempt"):
            headers["x-slack-retry-num"] = [str(data["retry_attempt"])]
            headers["x-slack-retry-reason"] = [str(data.get("retry_reason") or "")]
        request = AsyncBoltRequest(
            mode="socket_mode", body=data.get("payload") or {}, headers=headers
        )
        response = await self.bolt.async_dispatch(request)
        if response.status != 200 or not response.body:
            return None
        content_type = response.headers.get("content-type", [""])[0]
        if content_type.startswith("application/json"):
            body = json.loads(response.body)
            return body if isinstance(body, dict) else None
        return {"text": response.body}

    async def _on_message(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        bot_user = self.transport.identity.get("user_id")
        inbound = translate.message_event(event, bot_user_id=bot_user, prefix=self.prefix)
        if inbound is None:
            return
        await self._deliver(translate.message_key(body.get("team_id"), event), inbound)

    async def _on_command(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()  # at once: the job may take hours, Slack waits 3 seconds
        inbound = translate.slash_command(body, prefix=self.prefix)
        if inbound is not None:
            await self._deliver(translate.command_key(body), inbound)

    async def _on_action(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        interactions = translate.block_actions(body)
        if interactions and await self.deliveries.first(translate.action_key(body)):
            for interaction in interactions:
                self._queue.put_nowait(interaction)

    async def _deliver(self, key: str, event: Event) -> None:
        if await self.deliveries.first(key):
            self._queue.put_nowait(event)

    # -- ChatAdapter -----------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """Where the Slack connection stands."""
        return self.transport.state

    async def connect(self) -> None:
        """Start connecting; returns once connected or after a first attempt's grace time."""
        await self.transport.start()
        try:
            await asyncio.wait_for(self.transport.connected.wait(), timeout=10)
        except TimeoutError:
            log.warning("slack is not connected yet; still trying in the background")

    async def events(self) -> AsyncIterator[Event]:
        """Messages, slash commands and clicks, in arrival order."""
        while True:
            yield await self._queue.get()

    async def send(self, room: str, reply: Reply, *, thread_id: str | None = None) -> MessageRef:
        """Post a reply (as several messages when it is too big for one)."""
        channel = translate.channel_of(room)
        first: MessageRef | None = None
        for message in self.renderer.render(reply):
            ref = await self._post(channel, room, message, thread_id)
            first = first or ref
        return first or MessageRef(room=room, id="", thread_id=thread_id)

    async def _post(
        self, channel: str, room: str, message: SlackMessage, thread_id: str | None
    ) -> MessageRef:
        params: dict[str, Any] = {"channel": channel, **message.payload()}
        if thread_id:
            params["thread_ts"] = thread_id
        try:
            data = await self.transport.call("chat.postMessage", **params)
        except SlackApiError as e:
            error = str(e.response.get("error"))
            if error not in _TOO_BIG:
                log.error("slack refused a message in %s: %s", room, error)
                return MessageRef(room=room, id="", thread_id=thread_id)
            # Re-chunk: the blocks were refused as too big; plain text in smaller pieces.
            return await self._post_plain(channel, room, message.text, thread_id)
        return MessageRef(room=room, id=str(data.get("ts", "")), thread_id=thread_id)

    async def _post_plain(
        self, channel: str, room: str, text: str, thread_id: str | None
    ) -> MessageRef:
        first: MessageRef | None = None
        for start in range(0, max(len(text), 1), 3000):
            params: dict[str, Any] = {"channel": channel, "text": text[start : start + 3000]}
            if thread_id:
                params["thread_ts"] = thread_id
            data = await self.transport.call("chat.postMessage", **params)
            first = first or MessageRef(room=room, id=str(data.get("ts", "")), thread_id=thread_id)
        return first or MessageRef(room=room, id="", thread_id=thread_id)

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        """Replace a message the bot sent (the end of the reply kept when it must shrink)."""
        if not ref.id:
            return
        message = self.renderer.render_single(reply)
        params = {"channel": translate.channel_of(ref.room), "ts": ref.id, **message.payload()}
        try:
            await self.transport.call("chat.update", **params)
        except SlackApiError as e:
            log.error("slack refused an edit in %s: %s", ref.room, e.response.get("error"))

    async def close(self) -> None:
        """Disconnect for good."""
        await self.transport.close()
        # Listeners may still be recording deliveries in the store: let them finish first.
        await self.deliveries.settle()
