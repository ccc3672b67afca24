"""A script's `rooms` directive (SPEC §3.5) is a control: outside its rooms it never runs."""

from __future__ import annotations

import pytest

from opsroom.config import RoleSettings, Settings
from opsroom.model.commands import CommandSpec, Language
from opsroom.policy.rbac import decide

NOC_ONLY = CommandSpec("noc restart", "noc/restart.sh", Language.SHELL, rooms=("slack:C0NOC*",))
ANYWHERE = CommandSpec("noc status", "noc/status.sh", Language.SHELL)
ROLES = Settings(
    roles=(
        RoleSettings(name="admins", members=("slack:UADMIN",), allow=("*",), admin=True),
        RoleSettings(name="noc", members=("slack:UNOC",), allow=("noc *",), rooms=("slack:*",)),
    )
)


@pytest.mark.parametrize("room", ["slack:C0NOC", "slack:C0NOC42"])
def test_allowed_in_its_rooms(room: str) -> None:
    assert decide("slack:UNOC", room, NOC_ONLY, ROLES).allowed


@pytest.mark.parametrize("who", ["slack:UNOC", "slack:UADMIN"])
@pytest.mark.parametrize("room", ["slack:CGENERAL", "slack:c0noc42", "matrix:!C0NOC1:x.org"])
def test_refused_elsewhere_whoever_asks(who: str, room: str) -> None:
    decision = decide(who, room, NOC_ONLY, ROLES)
    assert not decision.allowed
    assert decision.reason == "denied: noc restart may run only in slack:C0NOC*"
    assert decide("slack:UADMIN", room, ANYWHERE, ROLES).allowed, "only the directive refuses"


def test_refused_elsewhere_without_roles_too() -> None:
    # With no roles the local and web users may run everything — except outside its rooms.
    decision = decide("local:alice", "local:terminal", NOC_ONLY, Settings())
    assert (decision.allowed, decision.reason) == (
        False,
        "denied: noc restart may run only in slack:C0NOC*",
    )
    assert decide("local:alice", "local:terminal", ANYWHERE, Settings()).allowed


def test_several_rooms_any_one_will_do() -> None:
    spec = CommandSpec("x", "x.sh", Language.SHELL, rooms=("web:noc", "slack:C0NOC*"))
    settings = Settings()
    assert decide("web:alice", "web:noc", spec, settings).allowed
    refused = decide("web:alice", "web:general", spec, settings)
    assert refused.reason == "denied: x may run only in web:noc, slack:C0NOC*"
