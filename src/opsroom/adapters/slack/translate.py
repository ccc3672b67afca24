"""Slack payloads ⇄ opsroom's model (pure: no I/O, no Slack library).

Slack sends message text with its own markup: `&amp; &lt; &gt;` entities, `<@U…>` user
mentions, `<#C…|name>` channels and `<https://…|label>` links (it turns a typed hostname
into a link). A command argument must reach the script as the person typed it, so links
become their label, and entities their characters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from opsroom.adapters.base import Interaction
from opsroom.model.messages import Inbound

ADAPTER = "slack"
# Subtypes that are still a person speaking; every other subtype (edits, joins, bots) is not.
_SPOKEN_SUBTYPES = frozenset({None, "thread_broadcast", "file_share", "me_message"})
_MARKUP = re.compile(r"<([^<>]*)>")
_INTERACTION_KINDS = ("approve:", "deny:", "menu:")


def principal(user_id: str) -> str:
    """The stable identity of a Slack user (never the display name)."""
    return f"{ADAPTER}:{user_id}"


def room(channel_id: str) -> str:
    """The opsroom room of a Slack channel, DM or group."""
    return f"{ADAPTER}:{channel_id}"


def channel_of(room_name: str) -> str:
    """The Slack channel id in an opsroom room name."""
    prefix = f"{ADAPTER}:"
    if not room_name.startswith(prefix):
        raise ValueError(f"not a Slack room: {room_name!r}")
    return room_name[len(prefix) :]


def _link(match: re.Match[str]) -> str:
    inner = match.group(1)
    target, _, label = inner.partition("|")
    if target.startswith("@"):  # a user: keep the stable id
        return f"@{target[1:]}"
    if target.startswith("#"):
        return f"#{label}" if label else f"#{target[1:]}"
    if target.startswith("!"):  # <!here>, <!channel>, <!subteam^S…|@team>
        return label or f"@{target[1:].split('^')[0]}"
    return label or target


def plain_text(text: str) -> str:
    """Slack message markup as the text the person typed."""
    text = _MARKUP.sub(_link, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def strip_bot_mention(text: str, bot_user_id: str | None, prefix: str) -> str:
    """`<@BOT> deploy web` → `!deploy web`: a leading mention of the bot is the prefix."""
    if not bot_user_id:
        return text
    stripped = text.lstrip()
    for mention in (f"<@{bot_user_id}>", f"<@{bot_user_id}|"):
        if stripped.startswith(mention):
            rest = stripped[len(mention) :]
            if mention.endswith("|"):
                rest = rest.partition(">")[2]
            return prefix + rest.lstrip(" :,").lstrip()
    return text


def is_from_a_bot(event: Mapping[str, Any], bot_user_id: str | None) -> bool:
    """The bot's own messages and every other bot's (SPEC §4.1)."""
    return bool(
        event.get("bot_id")
        or event.get("subtype") == "bot_message"
        or event.get("bot_profile")
        or (bot_user_id is not None and event.get("user") == bot_user_id)
    )


def message_event(
    event: Mapping[str, Any], *, bot_user_id: str | None, prefix: str
) -> Inbound | None:
    """A `message` or `app_mention` event as an Inbound, or None when nobody spoke."""
    if event.get("type") not in ("message", "app_mention"):
        return None
    if event.get("subtype") not in _SPOKEN_SUBTYPES or is_from_a_bot(event, bot_user_id):
        return None
    user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
    text = event.get("text")
    if not (isinstance(user, str) and isinstance(channel, str) and isinstance(ts, str)):
        return None
    if not isinstance(text, str) or not text.strip():
        return None
    direct = event.get("channel_type") == "im" or channel.startswith("D")
    thread = event.get("thread_ts")
    return Inbound(
        text=plain_text(strip_bot_mention(text, bot_user_id, prefix)),
        principal=principal(user),
        room=room(channel),
        direct=direct,
        message_id=ts,
        thread_id=thread if isinstance(thread, str) else None,
    )


def message_key(team: str | None, event: Mapping[str, Any]) -> str:
    """One key per message, whichever event (message or app_mention) or retry delivers it."""
    return f"{ADAPTER}:msg:{team or '-'}:{event.get('channel')}:{event.get('ts')}"


def slash_command(body: Mapping[str, Any], *, prefix: str) -> Inbound | None:
    """`/ops deploy web` as the Inbound `!deploy web`, answered in the channel."""
    user, channel = body.get("user_id"), body.get("channel_id")
    if not (isinstance(user, str) and isinstance(channel, str)):
        return None
    text = str(body.get("text") or "").strip()
    direct = channel.startswith("D") or body.get("channel_name") == "directmessage"
    return Inbound(
        text=prefix + plain_text(text),
        principal=principal(user),
        room=room(channel),
        direct=direct,
        display_name=str(body.get("user_name") or ""),
    )


def command_key(body: Mapping[str, Any]) -> str:
    """One key per slash-command invocation (its trigger id is unique)."""
    return f"{ADAPTER}:cmd:{body.get('team_id') or '-'}:{body.get('trigger_id')}"


def _action_value(action: Mapping[str, Any]) -> str | None:
    value = action.get("value")
    if isinstance(value, str):
        return value
    selected = action.get("selected_option")
    if isinstance(selected, Mapping) and isinstance(selected.get("value"), str):
        return str(selected["value"])
    return None


def block_actions(body: Mapping[str, Any]) -> list[Interaction]:
    """The button clicks and menu choices of a `block_actions` payload that opsroom made."""
    if body.get("type") != "block_actions":
        return []
    user = body.get("user") or {}
    channel = body.get("channel") or {}
    container = body.get("container") or {}
    message = body.get("message") or {}
    user_id = user.get("id")
    channel_id = channel.get("id") or container.get("channel_id")
    if not (isinstance(user_id, str) and isinstance(channel_id, str)):
        return []
    message_ts = container.get("message_ts") or message.get("ts")
    thread = message.get("thread_ts") or container.get("thread_ts")
    interactions: list[Interaction] = []
    for action in body.get("actions") or []:
        value = _action_value(action)
        if value is None or not value.startswith(_INTERACTION_KINDS):
            continue
        interactions.append(
            Interaction(
                principal=principal(user_id),
                room=room(channel_id),
                value=value,
                display_name=str(user.get("username") or user.get("name") or ""),
                message_id=message_ts if isinstance(message_ts, str) else None,
                thread_id=thread if isinstance(thread, str) else None,
            )
        )
    return interactions


def action_key(body: Mapping[str, Any]) -> str:
    """One key per click (a click's action_ts is unique per user and message)."""
    user = (body.get("user") or {}).get("id")
    container = body.get("container") or {}
    stamps = ",".join(str(a.get("action_ts")) for a in body.get("actions") or [])
    return f"{ADAPTER}:act:{user}:{container.get('message_ts')}:{stamps}"
