"""`[adapters.irc]`: validation naming the key, secrets by reference, flood control."""

from __future__ import annotations

import re

import pytest

from opsroom.adapters.base import ChatAdapter
from opsroom.adapters.irc import create
from opsroom.adapters.irc.flood import TokenBucket
from opsroom.config import Settings
from opsroom.errors import ConfigError

BASE = {"server": "irc.example.org", "nick": "ops", "channels": ["#ops"]}


def test_defaults_follow_the_spec() -> None:
    adapter = create(BASE, Settings())
    assert isinstance(adapter, ChatAdapter)
    config = adapter.settings  # type: ignore[attr-defined]
    assert (config.port, config.tls, config.rate, config.burst) == (6697, True, 1.0, 4)
    caps = adapter.capabilities
    assert (caps.threads, caps.edits, caps.buttons, caps.max_message_length) == (
        False,
        False,
        False,
        400,
    )


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"port": 70000}, "adapters.irc.port"),
        ({"channels": ["ops"]}, "adapters.irc.channels.0"),
        ({"nick": "bad nick"}, "adapters.irc.nick"),
        ({"sasl_password": "hunter2"}, "adapters.irc.sasl_password"),
        ({"colour": True}, "adapters.irc.colour"),
        ({"rate": 0}, "adapters.irc.rate"),
    ],
)
def test_bad_values_name_the_key(change: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)) as caught:
        create({**BASE, **change}, Settings())
    assert "hunter2" not in str(caught.value), "an inline password is never echoed"


def test_missing_server_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"adapters\.irc\.server"):
        create({"nick": "ops", "channels": []}, Settings())


def test_password_by_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRC_PASSWORD", "s3cret")
    adapter = create({**BASE, "sasl_password": "env:IRC_PASSWORD"}, Settings())
    assert adapter._password == "s3cret"  # type: ignore[attr-defined]
    monkeypatch.delenv("IRC_PASSWORD")
    with pytest.raises(ConfigError, match=r"adapters\.irc\.sasl_password"):
        create({**BASE, "sasl_password": "env:IRC_PASSWORD"}, Settings())


def test_token_bucket_allows_a_burst_then_paces() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.reserve() for _ in range(5)] == [0.0, 0.0, 0.0, 0.5, 1.0]
    now[0] = 10.0  # idle time refills up to the burst, never more
    assert [bucket.reserve() for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]
