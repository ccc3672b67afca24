"""Discord gateway payloads ⇄ opsroom's model (pure: no I/O, no Discord library).

Message text arrives as typed, except for mentions: `<@123>` (or the older `<@!123>`) for
a user, `<#123>` for a channel, `<@&123>` for a role. A leading mention of the bot is the
prefix; other mentions keep their stable ids. Buttons and select menus carry opsroom's
value in their `custom_id` (a select's value in its options): `approve:<job>`,
`deny:<job>`, `menu:<menu id>:<index>`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from opsroom.adapters.base import Interaction
from opsroom.model.messages import Inbound

ADAPTER = "discord"
COMMAND = "ops"  # the application command `/ops`
COMMAND_OPTION = "command"  # its one string option: the command words and arguments
# Message types that are a person speaking: DEFAULT and REPLY. Joins, pins, thread
# notices and the like are not.
_SPOKEN_TYPES = frozenset({0, 19})
_INTERACTION_KINDS = ("approve:", "deny:", "menu:")
# Interaction types (Discord's `InteractionType`).
PING, APPLICATION_COMMAND, MESSAGE_COMPONENT = 1, 2, 3


def principal(user_id: str) -> str:
    """The stable identity of a Discord user: the snowflake, never the name."""
    return f"{ADAPTER}:{user_id}"


def room(channel_id: str) -> str:
    """The opsroom room of a Discord channel (guild text channel or DM)."""
    return f"{ADAPTER}:{channel_id}"


def channel_of(room_name: str) -> str:
    """The channel id in an opsroom room name."""
    prefix = f"{ADAPTER}:"
    if not room_name.startswith(prefix):
        raise ValueError(f"not a Discord room: {room_name!r}")
    return room_name[len(prefix) :]


def strip_bot_mention(text: str, bot_user_id: str | None, prefix: str) -> str:
    """`<@BOT> deploy web` → `!deploy web`: a leading mention of the bot is the prefix."""
    if not bot_user_id:
        return text
    match = re.match(rf"\s*<@!?{re.escape(bot_user_id)}>[\s:,]*", text)
    return prefix + text[match.end() :] if match else text


def is_from_a_bot(message: Mapping[str, Any], bot_user_id: str | None) -> bool:
    """The bot's own messages, every other bot's and webhooks' (SPEC §4.1)."""
    author = message.get("author") or {}
    return bool(
        author.get("bot")
        or author.get("system")
        or message.get("webhook_id")
        or (bot_user_id is not None and author.get("id") == bot_user_id)
    )


def message_create(
    message: Mapping[str, Any],
    *,
    bot_user_id: str | None,
    prefix: str,
    thread_parents: Mapping[str, str] | None = None,
) -> Inbound | None:
    """A MESSAGE_CREATE dispatch as an Inbound, or None when no person spoke.

    A message in a thread belongs to the thread's parent channel (rooms and policy are
    per channel) and to the thread (the replies go there), when the parent is known.
    """
    if message.get("type", 0) not in _SPOKEN_TYPES or is_from_a_bot(message, bot_user_id):
        return None
    author = message.get("author") or {}
    user, channel, message_id = author.get("id"), message.get("channel_id"), message.get("id")
    text = message.get("content")
    if not (isinstance(user, str) and isinstance(channel, str) and isinstance(message_id, str)):
        return None
    if not isinstance(text, str) or not text.strip():
        return None  # without MESSAGE_CONTENT, Discord sends guild messages empty
    parent = (thread_parents or {}).get(channel)
    return Inbound(
        text=strip_bot_mention(text, bot_user_id, prefix),
        principal=principal(user),
        room=room(parent or channel),
        direct="guild_id" not in message,
        display_name=str(author.get("global_name") or author.get("username") or ""),
        message_id=message_id,
        thread_id=channel if parent else None,
    )


def message_key(message: Mapping[str, Any]) -> str:
    """One key per message, however often the gateway delivers it (snowflakes are unique)."""
    return f"{ADAPTER}:msg:{message.get('id')}"


def _user(interaction: Mapping[str, Any]) -> Mapping[str, Any]:
    """Who acted: `member.user` in a guild, `user` in a DM."""
    member = interaction.get("member") or {}
    return member.get("user") or interaction.get("user") or {}


def is_command(interaction: Mapping[str, Any]) -> bool:
    """An invocation of the `/ops` application command."""
    data = interaction.get("data") or {}
    return interaction.get("type") == APPLICATION_COMMAND and data.get("name") == COMMAND


def slash_command(
    interaction: Mapping[str, Any],
    *,
    prefix: str,
    thread_parents: Mapping[str, str] | None = None,
) -> Inbound | None:
    """`/ops command: store status 42` as the Inbound `!store status 42`."""
    if not is_command(interaction):
        return None
    user, channel = _user(interaction).get("id"), interaction.get("channel_id")
    if not (isinstance(user, str) and isinstance(channel, str)):
        return None
    options = (interaction.get("data") or {}).get("options") or []
    text = next((str(o.get("value") or "") for o in options if o.get("name") == COMMAND_OPTION), "")
    parent = (thread_parents or {}).get(channel)
    return Inbound(
        text=prefix + text.strip(),
        principal=principal(user),
        room=room(parent or channel),
        direct="guild_id" not in interaction,
        display_name=str(_user(interaction).get("username") or ""),
        thread_id=channel if parent else None,
    )


def component(
    interaction: Mapping[str, Any], *, thread_parents: Mapping[str, str] | None = None
) -> Interaction | None:
    """A click on a button or a choice in a select menu that opsroom made (in a known
    thread: the thread's parent channel is the room, and the answer goes in the thread)."""
    if interaction.get("type") != MESSAGE_COMPONENT:
        return None
    data = interaction.get("data") or {}
    values = data.get("values")
    value = values[0] if isinstance(values, list) and values else data.get("custom_id")
    user, channel = _user(interaction).get("id"), interaction.get("channel_id")
    if not (isinstance(value, str) and value.startswith(_INTERACTION_KINDS)):
        return None
    if not (isinstance(user, str) and isinstance(channel, str)):
        return None
    message = interaction.get("message") or {}
    message_id = message.get("id")
    parent = (thread_parents or {}).get(channel)
    return Interaction(
        principal=principal(user),
        room=room(parent or channel),
        value=value,
        display_name=str(_user(interaction).get("username") or ""),
        message_id=message_id if isinstance(message_id, str) else None,
        thread_id=channel if parent else None,
    )


def interaction_key(interaction: Mapping[str, Any]) -> str:
    """One key per interaction (its id is a unique snowflake)."""
    return f"{ADAPTER}:int:{interaction.get('id')}"


def command_definition() -> dict[str, Any]:
    """The `/ops` application command, as registered with PUT /applications/{id}/commands."""
    return {
        "name": COMMAND,
        "type": 1,  # CHAT_INPUT
        "description": "Run an opsroom command",
        "options": [
            {
                "type": 3,  # STRING
                "name": COMMAND_OPTION,
                "description": "The command and its arguments, e.g. store status 42",
                "required": True,
            }
        ],
    }
