"""Mattermost payloads ⇄ opsroom's model (pure: no I/O, no Mattermost library).

Three documented shapes come in: WebSocket events (`{"event": "posted", "data": {"post":
"<the post as a JSON string>", "channel_type": …}, "broadcast": {…}, "seq": n}`), the
slash command's form fields, and the interactive-message callback (JSON with the button's
`context`). Mattermost keeps a message as the Markdown the person typed, so the text needs
no unescaping; only a leading mention of the bot becomes the prefix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from opsroom.adapters.base import Interaction
from opsroom.model.messages import Inbound

ADAPTER = "mattermost"
_INTERACTION_KINDS = ("approve:", "deny:", "menu:")


def principal(user_id: str) -> str:
    """The stable identity of a Mattermost user: the user id, never the username."""
    return f"{ADAPTER}:{user_id}"


def room(channel_id: str) -> str:
    """The opsroom room of a Mattermost channel (or direct/group message channel)."""
    return f"{ADAPTER}:{channel_id}"


def channel_of(room_name: str) -> str:
    """The Mattermost channel id in an opsroom room name."""
    prefix = f"{ADAPTER}:"
    if not room_name.startswith(prefix):
        raise ValueError(f"not a Mattermost room: {room_name!r}")
    return room_name[len(prefix) :]


def websocket_event(raw: str) -> dict[str, Any] | None:
    """One WebSocket frame as an event envelope; None for replies, junk and non-events."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        return None  # e.g. `{"status": "OK", "seq_reply": 1}`, the answer to an action
    return data


def posted_post(envelope: Mapping[str, Any]) -> dict[str, Any] | None:
    """The post of a `posted` event (its `data.post` is a JSON string); None otherwise."""
    if envelope.get("event") != "posted":
        return None
    data = envelope.get("data")
    raw = data.get("post") if isinstance(data, Mapping) else None
    if isinstance(raw, str):
        try:
            post = json.loads(raw)
        except ValueError:
            return None
    else:
        post = raw
    return post if isinstance(post, dict) else None


def is_from_a_bot(post: Mapping[str, Any], bot_user_id: str | None) -> bool:
    """The bot's own posts, every other bot's and integrations' (SPEC §4.1)."""
    props = post.get("props")
    props = props if isinstance(props, Mapping) else {}
    return bool(
        (bot_user_id is not None and post.get("user_id") == bot_user_id)
        or str(props.get("from_bot", "")).lower() == "true"
        or str(props.get("from_webhook", "")).lower() == "true"
        or str(props.get("from_plugin", "")).lower() == "true"
    )


def strip_bot_mention(text: str, bot_username: str | None, prefix: str) -> str:
    """`@ops deploy web` → `!deploy web`: a leading mention of the bot is the prefix."""
    if not bot_username:
        return text
    stripped = text.lstrip()
    mention = f"@{bot_username}"
    if stripped.lower().startswith(mention.lower()):
        rest = stripped[len(mention) :]
        if not rest or rest[0] in " :,\t\n":
            return prefix + rest.lstrip(" :,\t\n")
    return text


def post_message(
    post: Mapping[str, Any],
    *,
    channel_type: str | None,
    bot_user_id: str | None,
    bot_username: str | None,
    prefix: str,
) -> Inbound | None:
    """A new post as an Inbound, or None when no person spoke (system posts, bots, empty)."""
    if post.get("type") not in (None, "") or is_from_a_bot(post, bot_user_id):
        return None
    if post.get("delete_at") or post.get("edit_at"):
        return None
    user, channel, post_id = post.get("user_id"), post.get("channel_id"), post.get("id")
    text = post.get("message")
    if not (isinstance(user, str) and isinstance(channel, str) and isinstance(post_id, str)):
        return None
    if not (user and channel and post_id) or not isinstance(text, str) or not text.strip():
        return None
    root = post.get("root_id")
    return Inbound(
        text=strip_bot_mention(text, bot_username, prefix),
        principal=principal(user),
        room=room(channel),
        direct=channel_type == "D",
        message_id=post_id,
        thread_id=root if isinstance(root, str) and root else None,
    )


def post_key(post: Mapping[str, Any]) -> str:
    """One key per post, however many times the WebSocket delivers it."""
    return f"{ADAPTER}:post:{post.get('id')}"


def slash_command(form: Mapping[str, Any], *, prefix: str) -> Inbound | None:
    """`/ops deploy web` as the Inbound `!deploy web`, answered in the channel."""
    user, channel = form.get("user_id"), form.get("channel_id")
    if not (isinstance(user, str) and user and isinstance(channel, str) and channel):
        return None
    text = str(form.get("text") or "").strip()
    return Inbound(
        text=prefix + text,
        principal=principal(user),
        room=room(channel),
        direct=str(form.get("channel_name") or "").count("__") == 1,  # a DM is "<id>__<id>"
        display_name=str(form.get("user_name") or ""),
    )


def command_key(form: Mapping[str, Any]) -> str:
    """One key per slash-command invocation (its trigger id is unique)."""
    return f"{ADAPTER}:cmd:{form.get('team_id') or '-'}:{form.get('trigger_id')}"


def action_secret(body: Mapping[str, Any]) -> str:
    """The secret a button carried back in its context ("" when there is none)."""
    context = body.get("context")
    secret = context.get("secret") if isinstance(context, Mapping) else None
    return secret if isinstance(secret, str) else ""


def action(body: Mapping[str, Any]) -> Interaction | None:
    """The click (or menu choice) of an interactive-message callback opsroom made."""
    context = body.get("context")
    if not isinstance(context, Mapping):
        return None
    # A select menu's choice comes back as `selected_option`; a button's value as `value`.
    value = context.get("selected_option") or context.get("value")
    user, channel = body.get("user_id"), body.get("channel_id")
    if not (isinstance(user, str) and user and isinstance(channel, str) and channel):
        return None
    if not isinstance(value, str) or not value.startswith(_INTERACTION_KINDS):
        return None
    post_id, root = body.get("post_id"), context.get("root_id")
    return Interaction(
        principal=principal(user),
        room=room(channel),
        value=value,
        display_name=str(body.get("user_name") or ""),
        message_id=post_id if isinstance(post_id, str) and post_id else None,
        thread_id=root if isinstance(root, str) and root else None,
    )


def action_key(body: Mapping[str, Any]) -> str:
    """One key per click (each click has its own trigger id)."""
    return f"{ADAPTER}:act:{body.get('user_id')}:{body.get('post_id')}:{body.get('trigger_id')}"
