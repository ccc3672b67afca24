"""Someone the platform cannot vouch for (`irc:~guest`) may ask for `help` and nothing else.

A nick without a services account can be anyone: whatever a role grants `irc:~guest`
(or `irc:*`), policy lets it read help only. Decided here, for every adapter, from the
principal alone.
"""

from __future__ import annotations

import pytest

from opsroom.config import Settings
from opsroom.model.commands import CommandSpec, Language
from opsroom.policy.rbac import UNVERIFIED_DENIAL, Decision, decide, is_unverified

# The widest grant there is: everyone on IRC, every command, in every room.
SETTINGS = Settings.model_validate(
    {"roles": [{"name": "everyone", "members": ["irc:*", "slack:*"], "allow": ["*"]}]}
)
STATUS = CommandSpec(name="store status", path="store/status.sh", language=Language.SHELL)


def _builtin(name: str) -> CommandSpec:
    return CommandSpec(name=name, path="", language=Language.BUILTIN)


@pytest.mark.parametrize("name", ["whoami", "jobs", "job", "approve", "deny", "cancel", "reload"])
def test_a_guest_is_refused_every_builtin_but_help(name: str) -> None:
    got = decide("irc:~guest", "irc:#ops", _builtin(name), SETTINGS)
    assert got == Decision(False, UNVERIFIED_DENIAL)


def test_a_guest_is_refused_a_catalog_command_any_role_allows() -> None:
    assert decide("irc:~guest", "irc:#ops", STATUS, SETTINGS) == Decision(False, UNVERIFIED_DENIAL)
    assert decide("irc:~guest", "irc:@~mallory", STATUS, SETTINGS).allowed is False
    # A catalog script that happens to be called `help` is not the built-in.
    fake_help = CommandSpec(name="help", path="help.sh", language=Language.SHELL)
    assert decide("irc:~guest", "irc:#ops", fake_help, SETTINGS).allowed is False


def test_help_still_follows_the_roles() -> None:
    assert decide("irc:~guest", "irc:#ops", _builtin("help"), SETTINGS).allowed
    # Without a role holding the guest, not even help (SPEC §6.2).
    assert decide("irc:~guest", "irc:#ops", _builtin("help"), Settings()).allowed is False


def test_an_account_is_not_a_guest() -> None:
    assert decide("irc:alice", "irc:#ops", STATUS, SETTINGS) == Decision(
        True, "allowed by role everyone", "everyone"
    )
    assert (is_unverified("irc:~guest"), is_unverified("irc:alice")) == (True, False)
    assert is_unverified("irc:al~ice") is False  # only a leading `~` marks a guest
    assert UNVERIFIED_DENIAL.startswith("denied: only `help` works without an account")
