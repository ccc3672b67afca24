"""Slack payloads (documented shapes, tests/fixtures/payloads/slack) → opsroom events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opsroom.adapters.base import Interaction
from opsroom.adapters.slack import translate
from opsroom.model.messages import Inbound

PAYLOADS = Path(__file__).resolve().parent.parent / "fixtures" / "payloads" / "slack"
BOT = "U0BOT"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return data


def test_channel_message_is_typed_text_with_stable_identity() -> None:
    inbound = translate.message_event(
        load("message_channels.json")["event"], bot_user_id=BOT, prefix="!"
    )
    assert inbound == Inbound(
        text='!ping web01.example.com --note "a & b <x>"',
        principal="slack:U123ABC456",
        room="slack:C123ABC456",
        direct=False,
        message_id="1355517523.000005",
    )


def test_mention_becomes_the_prefix_and_keeps_its_thread() -> None:
    inbound = translate.message_event(
        load("app_mention.json")["event"], bot_user_id=BOT, prefix="!"
    )
    assert inbound is not None
    assert inbound.text == "!deploy web #noc"
    assert inbound.thread_id == "1515449500.000001"


def test_direct_message_is_direct() -> None:
    inbound = translate.message_event(load("message_im.json")["event"], bot_user_id=BOT, prefix="!")
    assert inbound is not None
    assert inbound.direct
    assert inbound.room == "slack:D024BE91L"


@pytest.mark.parametrize(
    "event",
    [
        load("bot_message.json")["event"],
        load("message_changed.json")["event"],
        {**load("message_channels.json")["event"], "user": BOT},
        {**load("message_channels.json")["event"], "bot_id": "B0OTHER"},
        {**load("message_channels.json")["event"], "text": "   "},
    ],
    ids=["other-bot", "edit", "itself", "bot-id", "empty"],
)
def test_bots_edits_and_empty_messages_are_not_events(event: dict[str, Any]) -> None:
    assert translate.message_event(event, bot_user_id=BOT, prefix="!") is None


def test_message_and_its_mention_share_one_delivery_key() -> None:
    event = load("message_channels.json")["event"]
    mention = {**event, "type": "app_mention"}
    assert translate.message_key("T1", event) == translate.message_key("T1", mention)


def test_slash_command_is_the_prefixed_command() -> None:
    inbound = translate.slash_command(load("slash_command.json"), prefix="!")
    assert inbound is not None
    assert inbound.text == "!store status 42 --region=emea"
    assert inbound.principal == "slack:U2147483697"
    assert inbound.room == "slack:C2147483705"
    assert not inbound.direct
    assert translate.command_key(load("slash_command.json")).endswith(
        "13345224609.738474920.8088930838d88f008e0"
    )


def test_button_click_is_an_interaction_in_the_thread() -> None:
    assert translate.block_actions(load("block_actions_button.json")) == [
        Interaction(
            principal="slack:U0BOB",
            room="slack:C123ABC456",
            value="approve:42",
            display_name="bob",
            message_id="1548261231.000200",
            thread_id="1548261200.000100",
        )
    ]


def test_menu_choice_is_an_interaction() -> None:
    (interaction,) = translate.block_actions(load("block_actions_select.json"))
    assert interaction.value == "menu:m1:1"
    assert interaction.room == "slack:D0ALICE"


def test_foreign_action_values_are_ignored() -> None:
    body = load("block_actions_button.json")
    body["actions"][0]["value"] = "rm -rf /"
    assert translate.block_actions(body) == []


@pytest.mark.parametrize(
    ("slack", "typed"),
    [
        ("<https://example.com/a?b=1&amp;c=2>", "https://example.com/a?b=1&c=2"),
        ("<mailto:ops@example.com|ops@example.com>", "ops@example.com"),
        ("<@U024BE7LH>", "@U024BE7LH"),
        ("<!here>", "@here"),
        ("a &lt;b&gt; &amp;amp;", "a <b> &amp;"),
    ],
)
def test_slack_markup_becomes_what_was_typed(slack: str, typed: str) -> None:
    assert translate.plain_text(slack) == typed
