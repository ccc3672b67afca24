"""Discord payloads (documented shapes, tests/fixtures/payloads/discord) → opsroom events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opsroom.adapters.base import Interaction
from opsroom.adapters.discord import translate
from opsroom.adapters.discord.transport import route_key
from opsroom.model.messages import Inbound

PAYLOADS = Path(__file__).resolve().parent.parent / "fixtures" / "payloads" / "discord"
BOT = "1118214545237405767"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return data


def test_guild_message_mentioning_the_bot_is_a_command_with_stable_identity() -> None:
    inbound = translate.message_create(
        load("message_create_guild.json"), bot_user_id=BOT, prefix="!"
    )
    assert inbound == Inbound(
        text='!ping web01.example.com --note "a & b <x>" for <@!41771983423143937>',
        principal="discord:80351110224678912",
        room="discord:1118213123452395622",
        direct=False,
        display_name="Nelly",
        message_id="1221447418416341023",
        thread_id=None,
    )


def test_a_message_in_a_known_thread_belongs_to_its_channel_and_thread() -> None:
    message = {**load("message_create_guild.json"), "channel_id": "1300000000000000001"}
    parents = {"1300000000000000001": "1118213123452395622"}
    inbound = translate.message_create(message, bot_user_id=BOT, prefix="!", thread_parents=parents)
    assert inbound is not None
    assert inbound.room == "discord:1118213123452395622", "policy rooms are channels"
    assert inbound.thread_id == "1300000000000000001", "the replies go in the thread"


def test_direct_message_has_no_guild() -> None:
    inbound = translate.message_create(load("message_create_dm.json"), bot_user_id=BOT, prefix="!")
    assert inbound is not None
    assert inbound.direct
    assert inbound.text == "jobs mine"
    assert inbound.display_name == "nelly", "username when there is no global name"


@pytest.mark.parametrize(
    "name",
    ["message_create_bot.json", "message_create_webhook.json", "message_create_pin_notice.json"],
)
def test_bots_webhooks_and_notices_are_not_people(name: str) -> None:
    assert translate.message_create(load(name), bot_user_id=BOT, prefix="!") is None


def test_own_message_is_ignored_even_without_the_bot_flag() -> None:
    message = load("message_create_dm.json")
    message["author"] = {**message["author"], "id": BOT}
    assert translate.message_create(message, bot_user_id=BOT, prefix="!") is None


def test_message_without_content_is_ignored() -> None:
    # What a guild message looks like when the MESSAGE_CONTENT intent is not granted.
    message = {**load("message_create_guild.json"), "content": ""}
    assert translate.message_create(message, bot_user_id=BOT, prefix="!") is None


def test_button_click_carries_the_value_and_the_member() -> None:
    assert translate.component(load("interaction_button.json")) == Interaction(
        principal="discord:53908232506183680",
        room="discord:1118213123452395622",
        value="approve:42",
        display_name="Mason",
        message_id="1221447418416341200",
    )


def test_a_click_in_a_known_thread_belongs_to_its_channel_and_thread() -> None:
    payload = {**load("interaction_button.json"), "channel_id": "1300000000000000001"}
    parents = {"1300000000000000001": "1118213123452395622"}
    interaction = translate.component(payload, thread_parents=parents)
    assert interaction is not None
    assert interaction.room == "discord:1118213123452395622"
    assert interaction.thread_id == "1300000000000000001"
    command = {**load("interaction_command.json"), "channel_id": "1300000000000000001"}
    inbound = translate.slash_command(command, prefix="!", thread_parents=parents)
    assert inbound is not None
    assert (inbound.room, inbound.thread_id) == (interaction.room, interaction.thread_id)


def test_select_in_a_dm_carries_the_chosen_option_and_the_user() -> None:
    interaction = translate.component(load("interaction_select_dm.json"))
    assert interaction is not None
    assert interaction.value == "menu:m7:11"
    assert interaction.principal == "discord:80351110224678912"


def test_foreign_component_values_are_ignored() -> None:
    payload = load("interaction_button.json")
    payload["data"] = {"custom_id": "somebody_elses_button", "component_type": 2}
    assert translate.component(payload) is None


def test_slash_command_is_the_prefixed_text() -> None:
    payload = load("interaction_command.json")
    assert translate.is_command(payload)
    inbound = translate.slash_command(payload, prefix="!")
    assert inbound == Inbound(
        text='!store status 42 --note "late shift"',
        principal="discord:80351110224678912",
        room="discord:1118213123452395622",
        direct=False,
        display_name="nelly",
    )


def test_keys_are_per_message_and_per_interaction() -> None:
    assert translate.message_key(load("message_create_guild.json")) == (
        "discord:msg:1221447418416341023"
    )
    assert translate.interaction_key(load("interaction_button.json")) == (
        "discord:int:846462639134605312"
    )


def test_command_definition_has_one_required_string_option() -> None:
    definition = translate.command_definition()
    assert definition["name"] == "ops"
    assert definition["options"] == [
        {
            "type": 3,
            "name": "command",
            "description": "The command and its arguments, e.g. store status 42",
            "required": True,
        }
    ]


def test_rate_limit_routes_keep_only_the_top_level_id_and_no_token() -> None:
    assert route_key("POST", "/channels/111/messages") == "POST /channels/111/messages"
    assert route_key("PATCH", "/channels/111/messages/222") == ("PATCH /channels/111/messages/{id}")
    assert route_key("POST", "/interactions/333/tok/callback") == (
        "POST /interactions/{id}/{token}/callback"
    )


def test_room_names_round_trip() -> None:
    assert translate.channel_of(translate.room("1118213123452395622")) == "1118213123452395622"
    with pytest.raises(ValueError, match="not a Discord room"):
        translate.channel_of("slack:C1")
