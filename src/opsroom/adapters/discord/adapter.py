"""The Discord adapter: gateway events in, REST messages out; the bridge does the rest.

Discord delivers at least once — after a RESUME the gateway replays what was missed, and
a dispatch may come twice — so every message and interaction is recorded (its snowflake
is the key) before it becomes an event, and a second delivery is dropped, across restarts
and across opsroom processes. An interaction must be answered within 3 seconds: it is
acknowledged first, before anything is recorded or run.

Threads: a reply to a request goes in a thread started from the request message (a thread
started from a message has the message's id, so `thread_id` is both). Where no thread can
be started (a DM), the reply answers the request message instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

from opsroom.adapters.base import (
    AdapterUnavailable,
    Capabilities,
    ConnectionState,
    Event,
    MessageRef,
)
from opsroom.adapters.deliveries import Deliveries, FirstDelivery
from opsroom.adapters.discord import translate
from opsroom.adapters.discord.settings import DiscordConfig
from opsroom.adapters.discord.transport import DiscordError, Gateway, RestClient
from opsroom.model.blocks import Reply
from opsroom.render.discord import MAX_LENGTH, DiscordMessage, DiscordRenderer

log = logging.getLogger("opsroom.adapters.discord")

CAPABILITIES = Capabilities(
    threads=True,
    edits=True,
    buttons=True,
    max_message_length=MAX_LENGTH,
    edits_per_second=1.0,
)
_RECENT = 2048  # message channels remembered in memory
_THREAD_EXISTS = 160004  # "A thread has already been created for this message"
# Interaction callback types.
_CHANNEL_MESSAGE, _DEFERRED_UPDATE = 4, 6


class DiscordAdapter:
    """One bot connection to Discord (every guild it is in, and its DMs)."""

    name = "discord"
    capabilities = CAPABILITIES
    renderer = DiscordRenderer(CAPABILITIES.max_message_length)

    def __init__(
        self, config: DiscordConfig, *, prefix: str = "!", first_delivery: FirstDelivery | None
    ) -> None:
        self.config = config
        self.prefix = prefix
        self.deliveries = Deliveries("discord", first_delivery)
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self.rest = RestClient(config)
        self.gateway = Gateway(config, self.rest, self._on_dispatch)
        self._threads: dict[str, str] = {}  # thread channel → parent channel
        self._no_thread: set[str] = set()  # request messages that cannot hold a thread
        self._channel_of: OrderedDict[str, str] = OrderedDict()  # message sent → its channel
        self._registered = False

    # -- events --------------------------------------------------------------------------------

    async def _on_dispatch(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "READY" and self.config.register_command and not self._registered:
            await self._register_command()
        elif kind in ("THREAD_CREATE", "THREAD_UPDATE"):
            self._learn_thread(data)
        elif kind == "GUILD_CREATE":
            for thread in data.get("threads") or []:
                self._learn_thread(thread)
        elif kind == "MESSAGE_CREATE":
            inbound = translate.message_create(
                data,
                bot_user_id=self.gateway.user_id,
                prefix=self.prefix,
                thread_parents=self._threads,
            )
            if inbound is not None and await self.deliveries.first(translate.message_key(data)):
                self._queue.put_nowait(inbound)
        elif kind == "INTERACTION_CREATE":
            await self._on_interaction(data)

    def _learn_thread(self, thread: dict[str, Any]) -> None:
        thread_id, parent = thread.get("id"), thread.get("parent_id")
        if isinstance(thread_id, str) and isinstance(parent, str):
            self._threads[thread_id] = parent

    async def _on_interaction(self, data: dict[str, Any]) -> None:
        event: Event | None
        if translate.is_command(data):
            event = translate.slash_command(data, prefix=self.prefix, thread_parents=self._threads)
            # Shown in the channel, so everyone sees what was asked; the replies follow.
            text = f"`/{translate.COMMAND} {event.text.removeprefix(self.prefix)}`" if event else ""
            answer = {
                "type": _CHANNEL_MESSAGE,
                "data": {"content": text or "…", "allowed_mentions": {"parse": []}},
            }
        else:
            event = translate.component(data, thread_parents=self._threads)
            answer = {"type": _DEFERRED_UPDATE}  # acknowledged; the message stays as it is
        await self._answer(data, answer)
        if event is not None and await self.deliveries.first(translate.interaction_key(data)):
            self._queue.put_nowait(event)

    async def _answer(self, data: dict[str, Any], answer: dict[str, Any]) -> None:
        """Answer an interaction at once (Discord waits 3 seconds, then shows a failure)."""
        interaction_id, token = data.get("id"), data.get("token")
        path = f"/interactions/{interaction_id}/{token}/callback"
        try:
            await self.rest.request("POST", path, json_body=answer)
        except (DiscordError, AdapterUnavailable) as e:
            # A replayed interaction was already answered (40060): nothing to do.
            log.info("discord interaction not answered: %s", e)

    async def _register_command(self) -> None:
        """PUT the `/ops` command for this application (replaces its global commands)."""
        app = self.gateway.application_id
        if not app:
            log.warning("discord: READY named no application; /ops not registered")
            return
        try:
            await self.rest.request(
                "PUT", f"/applications/{app}/commands", json_body=[translate.command_definition()]
            )
            self._registered = True
        except (DiscordError, AdapterUnavailable) as e:
            log.error("discord refused to register /ops: %s", e)

    # -- ChatAdapter -----------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """Where the gateway connection stands."""
        return self.gateway.state

    async def connect(self) -> None:
        """Start connecting; returns once connected or after a first attempt's grace time."""
        await self.gateway.start()
        try:
            await asyncio.wait_for(self.gateway.connected.wait(), timeout=10)
        except TimeoutError:
            log.warning("discord is not connected yet; still trying in the background")

    async def events(self) -> AsyncIterator[Event]:
        """Messages, slash commands and clicks, in arrival order."""
        while True:
            yield await self._queue.get()

    def _check_connected(self) -> None:
        if self.state is not ConnectionState.CONNECTED:
            raise AdapterUnavailable(f"discord is {self.state.value}")

    async def _target(self, channel: str, thread_id: str | None) -> tuple[str, str | None]:
        """Where a reply to `thread_id` goes: (channel, message it answers or None)."""
        if not thread_id or thread_id == channel:
            return channel, None
        if thread_id in self._threads:
            return thread_id, None
        if thread_id in self._no_thread:
            return channel, thread_id
        body = {"name": "opsroom", "auto_archive_duration": 1440}
        try:
            await self.rest.request(
                "POST", f"/channels/{channel}/messages/{thread_id}/threads", json_body=body
            )
        except DiscordError as e:
            if e.code != _THREAD_EXISTS:
                # A DM, or no permission to start threads: answer the message instead.
                log.info("discord: no thread for %s (%s); replying instead", thread_id, e)
                self._no_thread.add(thread_id)
                return channel, thread_id
        self._threads[thread_id] = channel
        return thread_id, None

    async def send(self, room: str, reply: Reply, *, thread_id: str | None = None) -> MessageRef:
        """Post a reply (as several messages when it is too big for one)."""
        self._check_connected()
        channel, answers = await self._target(translate.channel_of(room), thread_id)
        first: MessageRef | None = None
        for message in self.renderer.render(reply):
            ref = await self._post(room, channel, message, answers, thread_id)
            first = first or ref
            answers = None  # only the first piece answers the request
        return first or MessageRef(room=room, id="", thread_id=thread_id)

    async def _post(
        self,
        room: str,
        channel: str,
        message: DiscordMessage,
        answers: str | None,
        thread_id: str | None,
    ) -> MessageRef:
        body = message.payload()
        if answers:
            body["message_reference"] = {"message_id": answers, "fail_if_not_exists": False}
        try:
            data = await self.rest.request("POST", f"/channels/{channel}/messages", json_body=body)
        except DiscordError as e:
            log.error("discord refused a message in %s: %s", room, e)
            return MessageRef(room=room, id="", thread_id=thread_id)
        message_id = str((data or {}).get("id", ""))
        self._channel_of[message_id] = channel
        while len(self._channel_of) > _RECENT:
            self._channel_of.popitem(last=False)
        return MessageRef(room=room, id=message_id, thread_id=thread_id)

    def _channel(self, ref: MessageRef) -> str:
        known = self._channel_of.get(ref.id)
        if known:
            return known
        if ref.thread_id and ref.thread_id in self._threads:
            return ref.thread_id
        return translate.channel_of(ref.room)

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        """Replace a message the bot sent (the end of the reply kept when it must shrink)."""
        if not ref.id:
            return
        self._check_connected()
        message = self.renderer.render_single(reply)
        path = f"/channels/{self._channel(ref)}/messages/{ref.id}"
        try:
            await self.rest.request("PATCH", path, json_body=message.payload())
        except DiscordError as e:
            log.error("discord refused an edit in %s: %s", ref.room, e)

    async def close(self) -> None:
        """Disconnect for good."""
        await self.gateway.close()
        await self.rest.close()
        await self.deliveries.settle()
