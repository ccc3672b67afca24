"""A person on the test homeserver (a plain matrix-nio client) and what they see in a room."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from nio import AsyncClient, AsyncClientConfig, RoomCreateResponse, RoomSendResponse

from adapters.contract import Seen
from adapters.synapse import Synapse


@dataclass
class Person:
    """alice, bob or mallory, logged in with a plain client."""

    server: Synapse
    name: str
    client: AsyncClient

    @classmethod
    async def login(cls, server: Synapse, name: str) -> Person:
        """Log `name` in."""
        client = AsyncClient(
            server.url, server.mxid(name), config=AsyncClientConfig(encryption_enabled=False)
        )
        response = await client.login(f"{name}-pw")
        assert client.access_token, response
        return cls(server, name, client)

    @property
    def mxid(self) -> str:
        """`@name:localhost`."""
        return self.server.mxid(self.name)

    async def close(self) -> None:
        """Log out and close the session."""
        await self.client.logout()
        await self.client.close()

    async def create_room(self, *invite: str) -> str:
        """A new room with `invite` invited; its room ID."""
        response = await self.client.room_create(name="ops test", invite=list(invite))
        assert isinstance(response, RoomCreateResponse), response
        return str(response.room_id)

    async def join(self, room_id: str) -> None:
        """Join a room (after an invite)."""
        response = await self.client.join(room_id)
        assert getattr(response, "room_id", None) == room_id, response

    async def invite(self, room_id: str, user: str) -> None:
        """Invite `user` to a room."""
        await self.client.room_invite(room_id, user)

    async def say(self, room_id: str, text: str, *, thread_id: str | None = None) -> str:
        """Post `text` (in a thread if given); the event ID."""
        content: dict[str, Any] = {"msgtype": "m.text", "body": text}
        if thread_id:
            content["m.relates_to"] = {"rel_type": "m.thread", "event_id": thread_id}
        response = await self.client.room_send(room_id, "m.room.message", content)
        assert isinstance(response, RoomSendResponse), response
        return str(response.event_id)

    async def set_display_name(self, name: str) -> None:
        """Change the display name (in every room)."""
        await self.client.set_displayname(name)

    async def events(self, room_id: str) -> list[dict[str, Any]]:
        """Every event of the room, oldest first, straight from the client-server API."""
        return await asyncio.to_thread(self._events, room_id)

    def _events(self, room_id: str) -> list[dict[str, Any]]:
        quoted = urllib.parse.quote(room_id)
        url = f"{self.server.url}/_matrix/client/v3/rooms/{quoted}/messages?dir=b&limit=1000"
        request = urllib.request.Request(  # noqa: S310
            url, headers={"Authorization": f"Bearer {self.client.access_token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310
            chunk: list[dict[str, Any]] = json.load(r)["chunk"]
        return list(reversed(chunk))

    async def seen(self, room_id: str) -> list[Seen]:
        """The room's messages as this person's client shows them (edits applied)."""
        return fold(await self.events(room_id))


def fold(events: list[dict[str, Any]]) -> list[Seen]:
    """Messages with their latest edit applied, as a Matrix client renders a room."""
    shown: dict[str, Seen] = {}
    for event in events:
        if event.get("type") != "m.room.message":
            continue
        content = event.get("content", {})
        relation = content.get("m.relates_to") or {}
        if relation.get("rel_type") == "m.replace":
            original = shown.get(relation.get("event_id", ""))
            new = content.get("m.new_content", {})
            if original is not None and event["sender"] == original.sender:
                shown[original.id] = Seen(
                    original.id,
                    str(new.get("body", "")),
                    original.sender,
                    original.thread_id,
                    edited=True,
                )
            continue
        thread = relation.get("event_id") if relation.get("rel_type") == "m.thread" else None
        shown[event["event_id"]] = Seen(
            event["event_id"], str(content.get("body", "")), event["sender"], thread
        )
    return list(shown.values())
