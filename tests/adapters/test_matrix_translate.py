"""Matrix events (recorded client-server API payloads) to opsroom messages, and back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opsroom.adapters.matrix import create, holds_a_role, load_settings
from opsroom.adapters.matrix.translate import (
    edit_of,
    in_thread,
    inbound_from,
    inviter_of,
    is_own_join,
    room_id_of,
)
from opsroom.config import Settings
from opsroom.errors import ConfigError
from opsroom.model.messages import Inbound

PAYLOADS = Path(__file__).parent.parent / "fixtures" / "payloads" / "matrix"
OPS = "@ops:localhost"


def payload(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "message_text.json",
            Inbound(
                text="!store status 42",
                principal="matrix:@alice:localhost",
                room="matrix:!room:localhost",
                display_name="Alice",
                message_id="$req1",
            ),
        ),
        (
            "message_in_thread.json",
            Inbound(
                text="!job 7",
                principal="matrix:@alice:localhost",
                room="matrix:!room:localhost",
                display_name="Alice",
                message_id="$req2",
                thread_id="$root",
            ),
        ),
        (
            "message_reply_fallback.json",
            Inbound(
                text="!store status 7",
                principal="matrix:@bob:localhost",
                room="matrix:!room:localhost",
                display_name="Alice",
                message_id="$req3",
            ),
        ),
        ("message_edit.json", None),  # an edited request does not run again
        ("message_notice.json", None),  # other bots speak in notices
        ("member_join_own.json", None),
    ],
)
def test_events_become_requests(name: str, expected: Inbound | None) -> None:
    got = inbound_from(
        payload(name), "!room:localhost", own_user=OPS, direct=False, display_name="Alice"
    )
    assert got == expected


def test_the_bots_own_messages_are_not_requests() -> None:
    event = {**payload("message_text.json"), "sender": OPS}
    assert inbound_from(event, "!room:localhost", own_user=OPS, direct=False) is None


def test_identity_is_the_user_id_whatever_the_display_name() -> None:
    event = {**payload("message_text.json"), "sender": "@mallory:localhost"}
    got = inbound_from(
        event, "!r:localhost", own_user=OPS, direct=True, display_name="@alice:localhost"
    )
    assert got is not None
    assert got.principal == "matrix:@mallory:localhost"
    assert got.direct


def test_invite_and_join_are_recognised() -> None:
    assert inviter_of(payload("invite_state.json"), OPS) == "@alice:localhost"
    assert inviter_of(payload("invite_state.json"), "@bob:localhost") is None
    assert is_own_join(payload("member_join_own.json"), OPS)
    assert not is_own_join(payload("member_join_own.json"), "@alice:localhost")


def test_outgoing_relations() -> None:
    content = {"msgtype": "m.notice", "body": "done", "format": "f", "formatted_body": "<b>d</b>"}
    assert in_thread(content, "$root")["m.relates_to"] == {
        "rel_type": "m.thread",
        "event_id": "$root",
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": "$root"},
    }
    assert edit_of("$status", content) == {
        "msgtype": "m.notice",
        "body": "* done",
        "format": "f",
        "formatted_body": "* <b>d</b>",
        "m.new_content": content,
        "m.relates_to": {"rel_type": "m.replace", "event_id": "$status"},
    }


@pytest.mark.parametrize("room", ["slack:C024", "matrix:#ops:localhost", "matrix:"])
def test_a_room_of_another_kind_is_refused(room: str) -> None:
    with pytest.raises(ValueError, match="not a Matrix room"):
        room_id_of(room)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"user_id": "@ops:x", "password": "env:P"}, "adapters.matrix.homeserver: Field required"),
        (
            {"homeserver": "matrix.example.org", "user_id": "@ops:x", "password": "env:P"},
            "adapters.matrix.homeserver: expected an http(s) URL",
        ),
        (
            {"homeserver": "https://m.x", "user_id": "ops", "password": "env:P"},
            "adapters.matrix.user_id: expected a Matrix user ID",
        ),
        (
            {"homeserver": "https://m.x", "user_id": "@ops:x", "password": "hunter2"},
            "adapters.matrix.password: expected a reference",
        ),
        (
            {"homeserver": "https://m.x", "user_id": "@ops:x"},
            "adapters.matrix: set exactly one of password or access_token",
        ),
        (
            {"homeserver": "https://m.x", "user_id": "@ops:x", "password": "env:P", "room": []},
            "adapters.matrix.room: unknown key",
        ),
        (
            {
                "homeserver": "https://m.x",
                "user_id": "@ops:x",
                "password": "env:P",
                "rooms": ["ops"],
            },
            "adapters.matrix.rooms: 'ops' is not a room ID",
        ),
    ],
)
def test_bad_settings_name_the_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(table)
    assert message in str(err.value)


def test_create_resolves_the_secret_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    table = {"homeserver": "https://m.x", "user_id": "@ops:x", "password": "env:MX_TEST_PW"}
    with pytest.raises(ConfigError, match=r"adapters\.matrix\.password: .*MX_TEST_PW"):
        create(table, Settings())
    monkeypatch.setenv("MX_TEST_PW", "secret")
    adapter = create(table, Settings())
    assert adapter.name == "matrix"
    assert not adapter.capabilities.buttons


def test_invites_are_accepted_from_role_holders_only() -> None:
    settings = Settings.model_validate(
        {
            "groups": {"oncall": ["matrix:@bob:x"]},
            "roles": [
                {"name": "ops", "members": ["matrix:@alice:x", "group:oncall"], "allow": ["*"]},
                {"name": "viewers", "members": ["matrix:@*:partner.org"], "allow": ["help"]},
            ],
        }
    )
    may = holds_a_role(settings)
    assert may("matrix:@alice:x")
    assert may("matrix:@bob:x")
    assert may("matrix:@carol:partner.org")
    assert not may("matrix:@mallory:x")
