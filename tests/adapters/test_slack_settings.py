"""`[adapters.slack]` validation."""

from __future__ import annotations

from typing import Any

import pytest

from opsroom.adapters.slack.settings import parse
from opsroom.errors import ConfigError

ENV = {"BOT": "xoxb-1", "APP": "xapp-1", "SIGN": "s3cret"}


def test_socket_mode_defaults() -> None:
    config = parse({"bot_token": "env:BOT", "app_token": "env:APP"}, ENV)
    assert (config.mode, config.bot_token, config.app_token) == ("socket", "xoxb-1", "xapp-1")
    assert config.api_url == "https://slack.com/api/"
    assert "xoxb-1" not in repr(config)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"bot_token": "env:BOT"}, 'adapters.slack: Value error, mode "socket" needs app_token'),
        ({"mode": "http", "bot_token": "env:BOT"}, "needs signing_secret"),
        ({"bot_token": "xoxb-inline", "app_token": "env:APP"}, "adapters.slack.bot_token: "),
        ({"bot_token": "env:BOT", "app_token": "env:APP", "tokn": 1}, "adapters.slack.tokn"),
        ({"bot_token": "env:BOT", "app_token": "env:MISSING"}, "adapters.slack.app_token"),
        ({"mode": "webhook", "bot_token": "env:BOT"}, "adapters.slack.mode"),
    ],
)
def test_bad_tables_name_the_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(table, ENV)
    assert message.split("Value error, ")[-1] in str(caught.value)
    assert "xoxb-inline" not in str(caught.value), "a pasted token is never echoed"
