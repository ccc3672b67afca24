"""Bot Framework activities ⇄ opsroom's model (pure: no I/O, no SDK).

Teams sends a message's text with `<at>Name</at>` for each mention (the `entities` list
says whom each one names) and HTML entities for `& < >`. A leading mention of the bot is
the prefix; other mentions become `@Name`; entities become their characters, so an
argument reaches the script as the person typed it. A person is their Azure AD object id
(`teams:<aadObjectId>`): display names change and may be shared, object ids do not.

In a Teams channel a reply chain is a conversation of its own, `<channel>;messageid=<root>`:
the room is the channel and the root message id is the thread.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opsroom.adapters.base import Interaction
from opsroom.model.messages import Inbound

ADAPTER = "teams"
CARD_KEY = "opsroom"  # the key of an Adaptive Card's Submit data that carries the value
_INTERACTION_KINDS = ("approve:", "deny:", "menu:")
_THREAD = ";messageid="
_TAG = re.compile(r"</?(?:p|div|span|br|b|i|strong|em)\b[^>]*>", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ConversationRef:
    """Where to reach a conversation later (proactive messages): kept per room."""

    service_url: str
    conversation_id: str  # the base id, without `;messageid=`
    tenant_id: str | None = None
    bot_id: str | None = None
    conversation_type: str | None = None


def principal(aad_object_id: str) -> str:
    """The stable identity of a Teams user (the AAD object id, never the display name)."""
    return f"{ADAPTER}:{aad_object_id}"


def room(conversation_id: str) -> str:
    """The opsroom room of a Teams conversation (a channel's reply chains share its room)."""
    return f"{ADAPTER}:{split_conversation(conversation_id)[0]}"


def split_conversation(conversation_id: str) -> tuple[str, str | None]:
    """`19:x@thread.tacv2;messageid=17` → (`19:x@thread.tacv2`, `17`)."""
    base, sep, root = conversation_id.partition(_THREAD)
    return base, (root or None) if sep else None


def conversation_of(room_name: str) -> str:
    """The Teams conversation id in an opsroom room name."""
    prefix = f"{ADAPTER}:"
    if not room_name.startswith(prefix):
        raise ValueError(f"not a Teams room: {room_name!r}")
    return room_name[len(prefix) :]


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def tenant_of(activity: Mapping[str, Any]) -> str | None:
    """The Azure AD tenant an activity comes from."""
    tenant = _mapping(_mapping(activity.get("channelData")).get("tenant")).get("id")
    if isinstance(tenant, str) and tenant:
        return tenant
    tenant = _mapping(activity.get("conversation")).get("tenantId")
    return tenant if isinstance(tenant, str) and tenant else None


def reference(activity: Mapping[str, Any]) -> ConversationRef | None:
    """The conversation reference of an inbound activity (for replying later)."""
    conversation = _mapping(activity.get("conversation"))
    service_url, conversation_id = activity.get("serviceUrl"), conversation.get("id")
    if not (isinstance(service_url, str) and isinstance(conversation_id, str)):
        return None
    bot = _mapping(activity.get("recipient")).get("id")
    kind = conversation.get("conversationType")
    return ConversationRef(
        service_url=service_url,
        conversation_id=split_conversation(conversation_id)[0],
        tenant_id=tenant_of(activity),
        bot_id=bot if isinstance(bot, str) else None,
        conversation_type=kind if isinstance(kind, str) else None,
    )


def strip_mentions(
    text: str, entities: object, bot_id: str | None, prefix: str
) -> tuple[str, bool]:
    """The text with the bot's mentions removed (a leading one becomes the prefix), and
    whether the bot was mentioned; other people's mentions become `@Name`."""
    mentioned = False
    for entity in entities if isinstance(entities, list) else []:
        entity = _mapping(entity)
        if entity.get("type") != "mention":
            continue
        tag = entity.get("text")
        who = _mapping(entity.get("mentioned"))
        if not isinstance(tag, str) or not tag:
            continue
        if bot_id is not None and who.get("id") == bot_id:
            mentioned = mentioned or tag in text
            text = text.replace(tag, "\x00", 1)
        else:
            name = who.get("name")
            text = text.replace(tag, f"@{name}" if isinstance(name, str) else "", 1)
    stripped = text.strip()
    if stripped.startswith("\x00"):
        text = prefix + stripped.lstrip("\x00").lstrip(" :,\u00a0")
    text = text.replace("\x00", "")
    return text, mentioned


def plain_text(text: str) -> str:
    """Teams message markup as the text the person typed."""
    text = _TAG.sub("", text)
    return html.unescape(text).replace("\u00a0", " ").strip()


def is_from_a_bot(activity: Mapping[str, Any]) -> bool:
    """Other bots' messages (and our own, should one ever be echoed) are never commands."""
    sender = _mapping(activity.get("from"))
    recipient = _mapping(activity.get("recipient"))
    return sender.get("role") == "bot" or (
        sender.get("id") is not None and sender.get("id") == recipient.get("id")
    )


def message_activity(activity: Mapping[str, Any], *, prefix: str) -> Inbound | None:
    """A `message` activity with text as an Inbound, or None when nobody spoke a command."""
    if activity.get("type") != "message" or is_from_a_bot(activity):
        return None
    sender = _mapping(activity.get("from"))
    conversation = _mapping(activity.get("conversation"))
    aad, conversation_id, activity_id = (
        sender.get("aadObjectId"),
        conversation.get("id"),
        activity.get("id"),
    )
    text = activity.get("text")
    if not (isinstance(aad, str) and aad and isinstance(conversation_id, str)):
        return None
    if not isinstance(text, str) or not text.strip():
        return None
    bot = _mapping(activity.get("recipient")).get("id")
    text, _ = strip_mentions(
        text, activity.get("entities"), bot if isinstance(bot, str) else None, prefix
    )
    base, root = split_conversation(conversation_id)
    name = sender.get("name")
    return Inbound(
        text=plain_text(text),
        principal=principal(aad),
        room=room(base),
        direct=conversation.get("conversationType") == "personal",
        display_name=name if isinstance(name, str) else "",
        message_id=activity_id if isinstance(activity_id, str) else None,
        thread_id=root,
    )


def _card_value(activity: Mapping[str, Any]) -> object:
    """What an Adaptive Card action submitted: Action.Submit (a message activity with
    `value`) or Action.Execute (an `adaptiveCard/action` invoke)."""
    value = _mapping(activity.get("value"))
    if activity.get("type") == "invoke":
        if activity.get("name") != "adaptiveCard/action":
            return None
        value = _mapping(_mapping(value.get("action")).get("data"))
    return value.get(CARD_KEY)


def card_action(activity: Mapping[str, Any]) -> Interaction | None:
    """A click on an opsroom card (approve, deny, a menu choice) as an Interaction."""
    if activity.get("type") not in ("message", "invoke") or is_from_a_bot(activity):
        return None
    value = _card_value(activity)
    if not isinstance(value, str) or not value.startswith(_INTERACTION_KINDS):
        return None
    sender = _mapping(activity.get("from"))
    conversation_id = _mapping(activity.get("conversation")).get("id")
    aad = sender.get("aadObjectId")
    if not (isinstance(aad, str) and aad and isinstance(conversation_id, str)):
        return None
    base, root = split_conversation(conversation_id)
    card = activity.get("replyToId")
    name = sender.get("name")
    return Interaction(
        principal=principal(aad),
        room=room(base),
        value=value,
        display_name=name if isinstance(name, str) else "",
        message_id=card if isinstance(card, str) else None,
        thread_id=root,
    )


def activity_key(activity: Mapping[str, Any]) -> str:
    """One key per activity, however often the Connector delivers it."""
    conversation_id = _mapping(activity.get("conversation")).get("id")
    base = split_conversation(conversation_id)[0] if isinstance(conversation_id, str) else "-"
    return f"{ADAPTER}:act:{base}:{activity.get('id')}"
