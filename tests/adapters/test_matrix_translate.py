"""Matrix events (recorded client-server API payloads) to opsroom messages, and back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opsroom.adapters.matrix import create, load_settings
from opsroom.adapters.matrix.translate import (
    edit_of,
    in_thread,
    inbound_from,
    inviter_of,
    is_own_join,
    room_id_of,
)
from opsroom.config import Settings
from opsroom.engine.adapters import engine_services
from opsroom.errors import ConfigError
from opsroom.model.messages import Inbound
from opsroom.policy import rbac
from opsroom.testing import Bot

PAYLOADS = Path(__file__).parent.parent / "fixtures" / "payloads" / "matrix"
OPS = "@ops:localhost"
ECHO = Path(__file__).parent.parent / "fixtures" / "echo_catalog"


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


async def test_the_invite_decision_is_policys_for_every_principal(tmp_path: Path) -> None:
    """The engine lends the adapter policy's answer: the same for each principal."""
    url = f"sqlite:///{tmp_path}/opsroom.db"
    settings = Settings.model_validate(
        {
            "store": {"url": url},
            "groups": {"oncall": ["matrix:@bob:x"], "leads": ["group:oncall"]},
            "roles": [
                {"name": "ops", "members": ["matrix:@alice:x", "group:leads"], "allow": ["*"]},
                {"name": "viewers", "members": ["matrix:@*:partner.org"], "allow": ["help"]},
            ],
        }
    )
    expected = {
        "matrix:@alice:x": True,  # a member of a role
        "matrix:@bob:x": True,  # through a group within a group
        "matrix:@carol:partner.org": True,  # a glob
        "matrix:@mallory:x": False,
        "matrix:~guest": False,  # nobody the platform vouches for
    }
    async with Bot.open(catalog_dir=str(ECHO), store_url=url, settings=settings) as bot:
        services = engine_services(bot.app.dispatcher)
        assert services.may_invite is not None
        for principal, welcome in expected.items():
            assert rbac.may_invite(principal, settings) is welcome, principal
            assert await services.may_invite(principal) is welcome, principal
    # With no roles at all nobody may bring the bot in, as nobody there may run anything.
    assert not any(rbac.may_invite(p, Settings()) for p in expected)
