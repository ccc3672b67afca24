"""Matrix events ⇄ opsroom's model, pure: raw client-server API JSON in, plain dicts out.

Identity is the sender's Matrix user ID (`matrix:@alice:example.org`), never a display
name, which anyone can set to anything. Rooms are `matrix:<room id>`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opsroom.model.messages import Inbound

PREFIX = "matrix"
_TEXT_TYPES = frozenset({"m.text"})  # m.notice is what bots send: never a request (SPEC §4.1)


def principal_of(mxid: str) -> str:
    """`@alice:example.org` → `matrix:@alice:example.org`."""
    return f"{PREFIX}:{mxid}"


def room_of(room_id: str) -> str:
    """`!abc:example.org` → `matrix:!abc:example.org`."""
    return f"{PREFIX}:{room_id}"


def room_id_of(room: str) -> str:
    """`matrix:!abc:example.org` → `!abc:example.org`; ValueError for another platform's room."""
    prefix, sep, rest = room.partition(":")
    if prefix != PREFIX or not sep or not rest.startswith("!"):
        raise ValueError(f"{room!r} is not a Matrix room (expected matrix:!id:server)")
    return rest


def strip_reply_fallback(body: str) -> str:
    """Drop the `> <@bob:x> quoted text` lines clients put before a reply's own text."""
    lines = body.split("\n")
    if not lines or not lines[0].startswith("> <@"):
        return body
    while lines and lines[0].startswith(">"):
        lines.pop(0)
    if lines and not lines[0].strip():
        lines.pop(0)
    return "\n".join(lines)


def inbound_from(
    event: Mapping[str, Any],
    room_id: str,
    *,
    own_user: str,
    direct: bool,
    display_name: str = "",
) -> Inbound | None:
    """A room timeline event as an Inbound message, or None for anything that is not a request.

    Not requests: the bot's own events, notices (other bots), edits, redacted or malformed
    events, state events and everything but `m.room.message`.
    """
    if event.get("type") != "m.room.message" or "state_key" in event:
        return None
    sender = event.get("sender")
    if not isinstance(sender, str) or not sender.startswith("@") or sender == own_user:
        return None
    content = event.get("content")
    if not isinstance(content, Mapping) or content.get("msgtype") not in _TEXT_TYPES:
        return None
    body = content.get("body")
    if not isinstance(body, str):
        return None
    relation = content.get("m.relates_to")
    thread_id: str | None = None
    if isinstance(relation, Mapping):
        if relation.get("rel_type") == "m.replace":
            return None  # an edited request is not a new request
        if relation.get("rel_type") == "m.thread" and isinstance(relation.get("event_id"), str):
            thread_id = relation["event_id"]
        if isinstance(relation.get("m.in_reply_to"), Mapping):
            body = strip_reply_fallback(body)
    event_id = event.get("event_id")
    return Inbound(
        text=body,
        principal=principal_of(sender),
        room=room_of(room_id),
        direct=direct,
        display_name=display_name,
        message_id=event_id if isinstance(event_id, str) else None,
        thread_id=thread_id,
    )


def inviter_of(invite_state: Sequence[Mapping[str, Any]], own_user: str) -> str | None:
    """Who invited `own_user`, from an invited room's stripped state; None if not shown."""
    for event in invite_state:
        content = event.get("content")
        if (
            event.get("type") == "m.room.member"
            and event.get("state_key") == own_user
            and isinstance(content, Mapping)
            and content.get("membership") == "invite"
            and isinstance(event.get("sender"), str)
        ):
            return str(event["sender"])
    return None


def is_own_join(event: Mapping[str, Any], own_user: str) -> bool:
    """The event where `own_user` joined the room (what came before it is history)."""
    content = event.get("content")
    return (
        event.get("type") == "m.room.member"
        and event.get("state_key") == own_user
        and isinstance(content, Mapping)
        and content.get("membership") == "join"
    )


def in_thread(content: Mapping[str, Any], thread_id: str) -> dict[str, Any]:
    """A message content placed in the thread rooted at `thread_id`."""
    return {
        **content,
        "m.relates_to": {
            "rel_type": "m.thread",
            "event_id": thread_id,
            # Clients without threads show it as a reply to the root.
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": thread_id},
        },
    }


def edit_of(event_id: str, content: Mapping[str, Any]) -> dict[str, Any]:
    """An `m.replace` edit of `event_id` whose new content is `content`."""
    fallback = {key: value for key, value in content.items() if key != "m.relates_to"}
    edit: dict[str, Any] = {
        **fallback,
        "body": f"* {content.get('body', '')}",
        "m.new_content": fallback,
        "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
    }
    if "formatted_body" in content:
        edit["formatted_body"] = f"* {content['formatted_body']}"
    return edit
