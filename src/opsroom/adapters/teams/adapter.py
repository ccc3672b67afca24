"""The Teams adapter: Bot Framework activities in, Bot Connector REST calls out.

Teams calls us (POST /hooks/teams, see `http.py`); nothing is kept open. "Connected" means
the signing keys and a token could be fetched; a Connector that cannot be reached makes
the adapter disconnected until a background check succeeds again, and replies wait in the
bridge's outbox meanwhile. Every conversation an activity comes from leaves its reference
(service URL, conversation id, tenant) here, so a job that ends hours later is announced
proactively in the same conversation. The Connector delivers at least once: each activity
id is recorded before it becomes an event, and a repeat is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from opsroom.adapters.base import (
    AdapterUnavailable,
    Capabilities,
    ConnectionState,
    Event,
    MessageRef,
)
from opsroom.adapters.deliveries import Deliveries, FirstDelivery
from opsroom.adapters.teams import translate
from opsroom.adapters.teams.auth import Verified
from opsroom.adapters.teams.settings import TeamsConfig
from opsroom.adapters.teams.translate import ConversationRef
from opsroom.adapters.teams.transport import ConnectorRefused, TeamsTransport, activities_path
from opsroom.model.blocks import Reply
from opsroom.render.teams import MAX_LENGTH, TeamsMessage, TeamsRenderer

log = logging.getLogger("opsroom.adapters.teams")

CAPABILITIES = Capabilities(
    threads=True,
    edits=True,
    buttons=True,
    max_message_length=MAX_LENGTH,
    edits_per_second=1.0,
)
INVOKE_OK = {"statusCode": 200, "type": "application/vnd.microsoft.activity.message", "value": "OK"}


class TeamsAdapter:
    """One Azure Bot (one app id) in one tenant."""

    name = "teams"
    capabilities = CAPABILITIES
    renderer = TeamsRenderer(CAPABILITIES.max_message_length)

    def __init__(
        self,
        config: TeamsConfig,
        *,
        prefix: str = "!",
        first_delivery: FirstDelivery | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.prefix = prefix
        self.deliveries = Deliveries("teams", first_delivery)
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self.transport = TeamsTransport(config, clock)
        self.references: dict[str, ConversationRef] = {}

    # -- inbound (called by the /hooks/teams endpoint once the token is verified) ----------

    async def accept(
        self, activity: Mapping[str, Any], verified: Verified
    ) -> tuple[int, dict[str, Any] | None]:
        """Handle one authenticated activity; the HTTP status and body to answer with."""
        if activity.get("serviceUrl") != verified.service_url:
            log.warning("teams: an activity's serviceUrl differs from its token's; refused")
            return 401, None
        if (
            verified.endorsements is not None
            and activity.get("channelId") not in verified.endorsements
        ):
            log.warning("teams: the signing key does not endorse this channel; refused")
            return 401, None
        tenant = translate.tenant_of(activity)
        if tenant != self.config.tenant_id:
            log.warning("teams: ignored an activity from another tenant", extra={"tenant": tenant})
            return 403, None
        ref = translate.reference(activity)
        if ref is not None:
            self._remember(ref)
        key = translate.activity_key(activity)
        event: Event | None = translate.card_action(activity) or translate.message_activity(
            activity, prefix=self.prefix
        )
        if event is not None and await self.deliveries.first(key):
            self._queue.put_nowait(event)
        if activity.get("type") == "invoke":
            return 200, INVOKE_OK
        return 200, None

    def _remember(self, ref: ConversationRef) -> None:
        room = translate.room(ref.conversation_id)
        self.references.pop(room, None)
        self.references[room] = ref
        while len(self.references) > 10_000:
            del self.references[next(iter(self.references))]

    # -- ChatAdapter -------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """Where the Teams connection stands."""
        return self.transport.state

    async def connect(self) -> None:
        """Fetch the signing keys and a token; returns once done or after a grace time."""
        await self.transport.start()
        try:
            await asyncio.wait_for(self.transport.connected.wait(), timeout=10)
        except TimeoutError:
            log.warning("teams is not reachable yet; still trying in the background")

    async def events(self) -> AsyncIterator[Event]:
        """Messages and card actions, in arrival order."""
        while True:
            yield await self._queue.get()

    def _where(self, room: str, thread_id: str | None) -> tuple[ConversationRef, str]:
        """The conversation reference of a room and the conversation id to post to."""
        ref = self.references.get(room)
        if ref is None:
            # Never spoken to since start: the room's conversation at the service URL seen
            # last (one tenant's conversations share their regional service URL).
            latest = next(reversed(self.references.values()), None)
            if latest is None:
                raise AdapterUnavailable(f"teams: no conversation reference for {room} yet")
            ref = ConversationRef(latest.service_url, translate.conversation_of(room))
        conversation = ref.conversation_id
        if thread_id and ref.conversation_type == "channel":
            conversation = f"{conversation};messageid={thread_id}"
        return ref, conversation

    async def send(self, room: str, reply: Reply, *, thread_id: str | None = None) -> MessageRef:
        """Post a reply (in the reply chain of `thread_id`), split when it is too big."""
        first: MessageRef | None = None
        for message in self.renderer.render(reply):
            ref = await self._post(room, message, thread_id)
            first = first or ref
        return first or MessageRef(room=room, id="", thread_id=thread_id)

    async def _post(self, room: str, message: TeamsMessage, thread_id: str | None) -> MessageRef:
        ref, conversation = self._where(room, thread_id)
        body = {**message.payload(), "conversation": {"id": conversation}}
        if ref.bot_id:
            body["from"] = {"id": ref.bot_id}
        if thread_id:
            body["replyToId"] = thread_id
        path = activities_path(conversation, thread_id)
        try:
            data = await self.transport.call("POST", ref.service_url, path, body)
        except ConnectorRefused as e:
            log.error("teams refused a message in %s: %s", room, e.status)
            return MessageRef(room=room, id="", thread_id=thread_id)
        return MessageRef(room=room, id=str(data.get("id", "")), thread_id=thread_id)

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        """Update a message the bot sent, in place."""
        if not ref.id:
            return
        where, conversation = self._where(ref.room, ref.thread_id)
        message = self.renderer.render_single(reply)
        body = {**message.payload(), "id": ref.id, "conversation": {"id": conversation}}
        path = activities_path(conversation, ref.id)
        try:
            await self.transport.call("PUT", where.service_url, path, body)
        except ConnectorRefused as e:
            log.error("teams refused an update in %s: %s", ref.room, e.status)

    async def close(self) -> None:
        """Stop for good."""
        await self.transport.close()
        await self.deliveries.settle()
