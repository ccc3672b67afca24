"""The Mattermost adapter: posts from the WebSocket, `/ops` and clicks over HTTP.

Mattermost delivers a post to every WebSocket connection of the bot, and again after a
reconnect that replays missed events; a slash command or click can be sent twice by a
retrying proxy. Each post, command and click is recorded in the store before it becomes an
event, so a second delivery of the same one is dropped, across restarts and across
opsroom processes.

Inbound HTTP is verified before anything is parsed further: the slash command by its
token, a click by the installation's secret that opsroom put in the button's context
(Mattermost strips a button's integration from what clients see, and sends the context
back only to the integration URL). Both compare in constant time; a mismatch is 401 and
nothing runs.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

from opsroom.adapters.base import (
    Capabilities,
    ConnectionState,
    Event,
    MessageRef,
)
from opsroom.adapters.deliveries import Deliveries, FirstDelivery
from opsroom.adapters.mattermost import translate
from opsroom.adapters.mattermost.settings import MattermostConfig
from opsroom.adapters.mattermost.transport import MattermostApiError, MattermostTransport
from opsroom.model.blocks import Reply
from opsroom.render.mattermost import (
    MAX_LENGTH,
    Integration,
    MattermostPost,
    MattermostRenderer,
)

log = logging.getLogger("opsroom.adapters.mattermost")

CAPABILITIES = Capabilities(
    threads=True,
    edits=True,
    buttons=True,
    max_message_length=MAX_LENGTH,
    edits_per_second=1.0,
)

Answer = tuple[int, dict[str, Any]]  # HTTP status and JSON body for a hook


class MattermostAdapter:
    """One Mattermost server connection, as one bot account."""

    name = "mattermost"

    def __init__(
        self, config: MattermostConfig, *, prefix: str = "!", first_delivery: FirstDelivery | None
    ) -> None:
        self.config = config
        self.prefix = prefix
        # Without an integration URL Mattermost has nowhere to send a click: no buttons.
        self.capabilities = replace(CAPABILITIES, buttons=config.actions_url is not None)
        self.deliveries = Deliveries("mattermost", first_delivery)
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self.transport = MattermostTransport(config, self._on_event)

    # -- inbound -------------------------------------------------------------------------------

    async def _on_event(self, envelope: dict[str, Any]) -> None:
        """One WebSocket event: a new post may be a request."""
        post = translate.posted_post(envelope)
        if post is None:
            return
        data = envelope.get("data") or {}
        identity = self.transport.identity
        inbound = translate.post_message(
            post,
            channel_type=str(data.get("channel_type") or "") or None,
            bot_user_id=identity.get("id"),
            bot_username=identity.get("username"),
            prefix=self.prefix,
        )
        if inbound is not None:
            await self._deliver(translate.post_key(post), inbound)

    async def command(self, form: Mapping[str, Any]) -> Answer:
        """The `/ops` slash command (POST /hooks/mattermost/command): verified, then queued."""
        expected = self.config.command_token
        given = str(form.get("token") or "")
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            return 401, {"text": "invalid command token"}
        inbound = translate.slash_command(form, prefix=self.prefix)
        if inbound is None:
            return 400, {"text": "not a slash command"}
        await self._deliver(translate.command_key(form), inbound)
        # Answered at once (Mattermost waits a few seconds at most); replies follow as posts.
        return 200, {"response_type": "ephemeral", "text": "opsroom is on it."}

    async def action(self, body: Mapping[str, Any]) -> Answer:
        """A button click (POST /hooks/mattermost/actions): verified, then queued."""
        given = translate.action_secret(body)
        expected = self.config.action_secret
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return 401, {"error": "invalid action secret"}
        interaction = translate.action(body)
        if interaction is not None and await self.deliveries.first(translate.action_key(body)):
            self._queue.put_nowait(interaction)
        return 200, {}

    async def _deliver(self, key: str, event: Event) -> None:
        if await self.deliveries.first(key):
            self._queue.put_nowait(event)

    @property
    def state(self) -> ConnectionState:
        """Where the Mattermost connection stands."""
        return self.transport.state

    async def connect(self) -> None:
        """Start connecting; returns once connected or after a first attempt's grace time."""
        await self.transport.start()
        try:
            await asyncio.wait_for(self.transport.connected.wait(), timeout=10)
        except TimeoutError:
            log.warning("mattermost is not connected yet; still trying in the background")

    async def events(self) -> AsyncIterator[Event]:
        """Posts, slash commands and clicks, in arrival order."""
        while True:
            yield await self._queue.get()

    def _renderer(self, thread_id: str | None) -> MattermostRenderer:
        """Clicks on a post's buttons go to the integration URL, answered in its thread."""
        limit = self.capabilities.max_message_length
        if self.config.actions_url is None:
            return MattermostRenderer(limit)
        context = {"secret": self.config.action_secret}
        if thread_id:
            context["root_id"] = thread_id  # the click's answer goes in the same thread
        return MattermostRenderer(limit, Integration(self.config.actions_url, context))

    async def send(self, room: str, reply: Reply, *, thread_id: str | None = None) -> MessageRef:
        """Post a reply (as several posts when it is too big for one)."""
        channel = translate.channel_of(room)
        first: MessageRef | None = None
        for post in self._renderer(thread_id).render(reply):
            ref = await self._post(channel, room, post, thread_id)
            first = first or ref
        return first or MessageRef(room=room, id="", thread_id=thread_id)

    async def _post(
        self, channel: str, room: str, post: MattermostPost, thread_id: str | None
    ) -> MessageRef:
        body: dict[str, Any] = {"channel_id": channel, **post.payload()}
        if thread_id:
            body["root_id"] = thread_id
        try:
            data = await self.transport.call("POST", "posts", body)
        except MattermostApiError as e:
            log.error("mattermost refused a post in %s: %s", room, e)
            return MessageRef(room=room, id="", thread_id=thread_id)
        return MessageRef(room=room, id=str(data.get("id", "")), thread_id=thread_id)

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        """Replace a post the bot made (the end of the reply kept when it must shrink)."""
        if not ref.id:
            return
        post = self._renderer(ref.thread_id).render_single(reply)
        try:
            await self.transport.call("PUT", f"posts/{ref.id}/patch", post.payload())
        except MattermostApiError as e:
            log.error("mattermost refused an edit in %s: %s", ref.room, e)

    async def close(self) -> None:
        """Disconnect for good."""
        await self.transport.close()
        # Listeners may still be recording deliveries in the store: let them finish first.
        await self.deliveries.settle()
