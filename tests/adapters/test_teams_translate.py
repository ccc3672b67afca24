"""Teams activities (documented shapes, tests/fixtures/payloads/teams) → opsroom events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opsroom.adapters.base import Interaction
from opsroom.adapters.teams import translate
from opsroom.model.messages import Inbound

PAYLOADS = Path(__file__).resolve().parent.parent / "fixtures" / "payloads" / "teams"
CHANNEL = "19:c1e4b9e7c3f44b5c8f0c3c9e2b7a4d10@thread.tacv2"
MEGAN = "teams:9d3e08f9-a7ae-43aa-a4d3-de3f319a8a9c"
ADELE = "teams:0c5d2a9e-4f3b-4b7a-8c1d-2e6f9a0b1c2d"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return data


def test_channel_mention_is_the_prefix_and_text_is_as_typed() -> None:
    inbound = translate.message_activity(load("channel_mention.json"), prefix="!")
    assert inbound == Inbound(
        text='!ping web01.example.com --note "a & b <x>"',
        principal=MEGAN,
        room=f"teams:{CHANNEL}",
        direct=False,
        display_name="Megan Bowen",
        message_id="1701335702310",
        thread_id="1701335702310",
    )


def test_identity_is_the_aad_object_id_never_the_name() -> None:
    activity = load("channel_mention.json")
    renamed = {**activity, "from": {**activity["from"], "name": "Someone Else"}}
    first = translate.message_activity(activity, prefix="!")
    second = translate.message_activity(renamed, prefix="!")
    assert first is not None
    assert second is not None
    assert first.principal == second.principal == MEGAN
    nameless = {**activity, "from": {"id": activity["from"]["id"], "name": "Megan Bowen"}}
    assert translate.message_activity(nameless, prefix="!") is None, "no object id, no identity"


def test_reply_chain_keeps_its_root_and_other_mentions_become_names() -> None:
    inbound = translate.message_activity(load("thread_reply.json"), prefix="!")
    assert inbound is not None
    assert inbound.text == "!job 12 @Adele Vance"
    assert inbound.room == f"teams:{CHANNEL}"
    assert inbound.thread_id == "1701335702310"
    assert inbound.message_id == "1701335800111"


def test_personal_chat_is_direct() -> None:
    inbound = translate.message_activity(load("personal_message.json"), prefix="!")
    assert inbound is not None
    assert inbound.direct
    assert inbound.text == "store status 42"
    assert inbound.thread_id is None
    assert inbound.room == "teams:a:1Xz9qT3hUu0RtbJ9vYd7Jw0-c2QeO3sK1kHvE7pW8rLmNnB"


def test_card_submit_and_execute_are_interactions() -> None:
    submit = translate.card_action(load("card_submit.json"))
    assert submit == Interaction(
        principal=ADELE,
        room=f"teams:{CHANNEL}",
        value="approve:12",
        display_name="Adele Vance",
        message_id="1701335703999",
        thread_id="1701335702310",
    )
    execute = translate.card_action(load("card_execute_invoke.json"))
    assert execute is not None
    assert execute.value == "menu:m7:3"
    assert translate.message_activity(load("card_submit.json"), prefix="!") is None


def test_foreign_card_values_and_bots_are_ignored() -> None:
    activity = load("card_submit.json")
    assert translate.card_action({**activity, "value": {"opsroom": "rm -rf"}}) is None
    assert translate.card_action({**activity, "value": {"other": "approve:1"}}) is None
    bot = {
        **load("channel_mention.json"),
        "from": {"id": "28:x", "role": "bot", "aadObjectId": "b"},
    }
    assert translate.message_activity(bot, prefix="!") is None


def test_conversation_update_gives_the_reference_but_no_event() -> None:
    activity = load("conversation_update.json")
    assert translate.message_activity(activity, prefix="!") is None
    assert translate.card_action(activity) is None
    assert translate.reference(activity) == translate.ConversationRef(
        service_url="https://smba.trafficmanager.net/emea/",
        conversation_id=CHANNEL,
        tenant_id="72f988bf-86f1-41af-91ab-2d7cd011db47",
        bot_id="28:e5b1c4a3-1f27-4b0a-9c46-6d9c7f0a1b2c",
        conversation_type="channel",
    )


def test_tenant_and_delivery_key() -> None:
    activity = load("channel_mention.json")
    assert translate.tenant_of(activity) == "72f988bf-86f1-41af-91ab-2d7cd011db47"
    no_channel_data = {k: v for k, v in activity.items() if k != "channelData"}
    assert translate.tenant_of(no_channel_data) == "72f988bf-86f1-41af-91ab-2d7cd011db47"
    assert translate.activity_key(activity) == f"teams:act:{CHANNEL}:1701335702310"
