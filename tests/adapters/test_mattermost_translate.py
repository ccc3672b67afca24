"""Mattermost payloads (documented shapes, tests/fixtures/payloads/mattermost) → opsroom events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opsroom.adapters.base import Interaction
from opsroom.adapters.mattermost import translate
from opsroom.model.messages import Inbound

PAYLOADS = Path(__file__).resolve().parent.parent / "fixtures" / "payloads" / "mattermost"
BOT = "bot7ewyq5rf93b5e6x8ae5a1ya"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return data


def inbound_of(envelope: dict[str, Any]) -> Inbound | None:
    post = translate.posted_post(envelope)
    assert post is not None
    return translate.post_message(
        post,
        channel_type=envelope["data"].get("channel_type"),
        bot_user_id=BOT,
        bot_username="ops",
        prefix="!",
    )


def test_channel_post_is_typed_text_with_stable_identity() -> None:
    assert inbound_of(load("posted_channel.json")) == Inbound(
        text='!ping web01.example.com --note "a & b <x>"',
        principal="mattermost:alicew1bq3mjy8fxg5nc7tzkhe",
        room="mattermost:chanopsq8xw3n5y7tbcd1kgmha",
        direct=False,
        message_id="q4xs1ds3pbrxpm9bt9ipwyetwh",
    )


def test_mention_becomes_the_prefix_and_keeps_its_thread() -> None:
    inbound = inbound_of(load("posted_mention_in_thread.json"))
    assert inbound is not None
    assert inbound.text == "!deploy web ~noc"
    assert inbound.thread_id == "r00tpostq3ydmwqx8h1nsk4a9c"


def test_direct_message_is_direct() -> None:
    inbound = inbound_of(load("posted_dm.json"))
    assert inbound is not None
    assert inbound.direct
    assert inbound.room == "mattermost:dmchan4fjhw9c8z3bqkx1yd6r2"


def test_a_mention_of_someone_else_is_left_alone() -> None:
    assert translate.strip_bot_mention("@opsbot help", "ops", "!") == "@opsbot help"
    assert translate.strip_bot_mention("@OPS: help", "ops", "!") == "!help"


def _own(envelope: dict[str, Any]) -> dict[str, Any]:
    post = json.loads(envelope["data"]["post"])
    post["user_id"] = BOT
    return {**envelope, "data": {**envelope["data"], "post": json.dumps(post)}}


def _blank(envelope: dict[str, Any]) -> dict[str, Any]:
    post = json.loads(envelope["data"]["post"])
    post["message"] = "  "
    return {**envelope, "data": {**envelope["data"], "post": json.dumps(post)}}


@pytest.mark.parametrize(
    "envelope",
    [
        load("posted_other_bot.json"),
        load("posted_webhook.json"),
        load("posted_system_join.json"),
        _own(load("posted_channel.json")),
        _blank(load("posted_channel.json")),
    ],
    ids=["other-bot", "webhook", "system", "itself", "empty"],
)
def test_bots_system_posts_and_empty_posts_are_not_events(envelope: dict[str, Any]) -> None:
    assert inbound_of(envelope) is None


def test_only_posted_events_carry_posts() -> None:
    assert translate.posted_post(load("post_edited.json")) is None
    assert translate.posted_post(load("hello.json")) is None
    assert translate.websocket_event('{"status": "OK", "seq_reply": 1}') is None
    assert translate.websocket_event("not json") is None
    assert translate.websocket_event(json.dumps(load("hello.json"))) == load("hello.json")


def test_a_post_has_one_delivery_key_however_often_it_comes() -> None:
    first = translate.posted_post(load("posted_channel.json"))
    again = translate.posted_post({**load("posted_channel.json"), "seq": 99})
    assert first is not None
    assert again is not None
    assert translate.post_key(first) == translate.post_key(again)
    assert translate.post_key(first) == "mattermost:post:q4xs1ds3pbrxpm9bt9ipwyetwh"


def test_slash_command_is_the_prefixed_command() -> None:
    form = load("slash_command.json")
    inbound = translate.slash_command(form, prefix="!")
    assert inbound is not None
    assert inbound.text == "!store status 42 --region=emea"
    assert inbound.principal == "mattermost:bobbyr4kd9s6hp2ueavm8jq3nw", "the id, not 'bob'"
    assert inbound.display_name == "bob"
    assert inbound.room == "mattermost:chanopsq8xw3n5y7tbcd1kgmha"
    assert not inbound.direct
    assert translate.command_key(form).endswith("dGVzdDp0cmlnZ2VyOmlkOjE3MzM0OTAwMDA=")


def test_button_click_is_an_interaction_in_the_thread() -> None:
    body = load("action_button.json")
    assert translate.action_secret(body) == "the-installation-secret"
    assert translate.action(body) == Interaction(
        principal="mattermost:bobbyr4kd9s6hp2ueavm8jq3nw",
        room="mattermost:chanopsq8xw3n5y7tbcd1kgmha",
        value="approve:42",
        display_name="bob",
        message_id="cardpost5n8ybk3xq7zd1fh9wr",
        thread_id="r00tpostq3ydmwqx8h1nsk4a9c",
    )


def test_menu_choice_is_an_interaction() -> None:
    interaction = translate.action(load("action_select.json"))
    assert interaction is not None
    assert interaction.value == "menu:m1:1"
    assert interaction.room == "mattermost:dmchan4fjhw9c8z3bqkx1yd6r2"
    assert interaction.thread_id is None


def test_foreign_action_values_and_missing_secrets_are_ignored() -> None:
    body = load("action_button.json")
    body["context"]["value"] = "rm -rf /"
    assert translate.action(body) is None
    assert translate.action_secret({"context": "x"}) == ""
    assert translate.action_secret({}) == ""
