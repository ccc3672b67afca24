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
import contextlib
import hmac
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from opsroom.adapters.base import (
    AdapterUnavailable,
    Capabilities,
    ConnectionState,
    Event,
    MessageRef,
)
from opsroom.adapters.mattermost import translate
from opsroom.adapters.mattermost.settings import MattermostConfig
from opsroom.adapters.mattermost.transport import MattermostApiError, MattermostTransport
from opsroom.model.blocks import File, Reply
from opsroom.render.mattermost import (
    MAX_LENGTH,
    Integration,
    MattermostPost,
    render,
    render_single,
)

log = logging.getLogger("opsroom.adapters.mattermost")

CAPABILITIES = Capabilities(
    threads=True,
    edits=True,
    buttons=True,
    reactions=True,
    uploads=False,
    max_message_length=MAX_LENGTH,
    markdown="commonmark",
    messages_per_second=5.0,  # the server's default limit is 10 requests/s per user
    edits_per_second=1.0,
)
_RECENT = 2048  # keys remembered in memory in front of the store

FirstDelivery = Callable[[str], Awaitable[bool]]
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
        self._first_delivery = first_delivery
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self.transport = MattermostTransport(config, self._on_event)
        self._on_close: list[Callable[[], Awaitable[None]]] = []
        self._recording = 0  # deliveries being recorded now; close waits for them
        self._idle = asyncio.Event()
        self._idle.set()
        self._background: set[asyncio.Task[None]] = set()

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
        if interaction is not None and await self._first(translate.action_key(body)):
            self._queue.put_nowait(interaction)
        return 200, {}

    async def _deliver(self, key: str, event: Event) -> None:
        if await self._first(key):
            self._queue.put_nowait(event)
        else:
            log.info("dropped a repeated mattermost delivery", extra={"key": key})

    async def _first(self, key: str) -> bool:
        """True only for the first delivery of `key` (in the store when there is one)."""
        if key in self._recent:
            return False
        self._recent[key] = None
        while len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        if self._first_delivery is None:
            return True
        self._recording += 1
        self._idle.clear()
        try:
            return await self._first_delivery(key)
        except Exception:
            # Acted on (the request itself is audited or refused: no audit, no action); the
            # key is kept as soon as the store takes it, so a redelivery is still caught.
            log.exception("could not record a mattermost delivery yet; retrying")
            self._recording += 1
            task = asyncio.create_task(self._record_later(key))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return True
        finally:
            self._done_recording()

    def _done_recording(self) -> None:
        self._recording -= 1
        if not self._recording:
            self._idle.set()

    async def _record_later(self, key: str) -> None:
        """Keep trying to record a delivery key the store refused, backing off to 5 s."""
        assert self._first_delivery is not None
        delay = 0.1
        try:
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._first_delivery(key)
                    return
                except Exception as e:  # the store's own error types vary by backend
                    log.warning("still could not record a mattermost delivery (%s)", e)
                    delay = min(delay * 2, 5.0)
        finally:
            self._done_recording()

    # -- ChatAdapter -----------------------------------------------------------------------------

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

    def _integration(self, thread_id: str | None) -> Integration | None:
        if self.config.actions_url is None:
            return None
        context = {"secret": self.config.action_secret}
        if thread_id:
            context["root_id"] = thread_id  # the click's answer goes in the same thread
        return Integration(self.config.actions_url, context)

    async def send(self, room: str, reply: Reply, *, thread_id: str | None = None) -> MessageRef:
        """Post a reply (as several posts when it is too big for one)."""
        channel = translate.channel_of(room)
        integration = self._integration(thread_id)
        first: MessageRef | None = None
        for post in render(
            reply, max_length=self.capabilities.max_message_length, integration=integration
        ):
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
        post = render_single(
            reply,
            max_length=self.capabilities.max_message_length,
            integration=self._integration(ref.thread_id),
        )
        try:
            await self.transport.call("PUT", f"posts/{ref.id}/patch", post.payload())
        except MattermostApiError as e:
            log.error("mattermost refused an edit in %s: %s", ref.room, e)

    async def react(self, ref: MessageRef, emoji: str) -> None:
        """Add a reaction (`white_check_mark`, `:x:`) to a post."""
        if not ref.id:
            return
        body = {
            "user_id": self.transport.identity.get("id", ""),
            "post_id": ref.id,
            "emoji_name": emoji.strip(":"),
        }
        try:
            await self.transport.call("POST", "reactions", body)
        except MattermostApiError as e:
            log.error("mattermost refused a reaction in %s: %s", ref.room, e)

    async def upload(
        self, room: str, name: str, data: bytes, *, thread_id: str | None = None
    ) -> MessageRef:
        """Files stay in the web console (no `uploads`): the post names the file."""
        if self.state is not ConnectionState.CONNECTED:
            raise AdapterUnavailable(f"mattermost is {self.state.value}")
        return await self.send(room, Reply((File(name, len(data)),)), thread_id=thread_id)

    def on_close(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` when the adapter closes (e.g. release the store)."""
        self._on_close.append(callback)

    async def close(self) -> None:
        """Disconnect for good."""
        await self.transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=5)
        for task in list(self._background):
            task.cancel()
        for callback in self._on_close:
            await callback()
