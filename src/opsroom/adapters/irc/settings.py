"""`[adapters.irc]`: validated once, frozen; errors name `adapters.irc.<key>`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from opsroom.errors import ConfigError

_CHANNEL_START = "#&+!"


def _reference(text: str) -> str:
    # The bad value is never echoed: it may be the password pasted inline.
    if not (text.startswith("env:") and len(text) > 4) and not (
        text.startswith("file:") and len(text) > 5
    ):
        raise ValueError('expected a reference like "env:IRC_PASSWORD" or "file:/path"')
    return text


def _channel(text: str) -> str:
    if not text or text[0] not in _CHANNEL_START or any(c in text for c in " ,\x07\r\n\0"):
        raise ValueError(f"expected a channel name like #ops, got {text!r}")
    return text


def _nick(text: str) -> str:
    if not text or text[0].isdigit() or text[0] == "-" or any(c in text for c in " ,:!@*?\r\n\0"):
        raise ValueError(f"expected an IRC nick like ops, got {text!r}")
    return text


class IrcSettings(BaseModel):
    """One IRC network: where to connect, who the bot is, which channels it sits in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 6697
    tls: bool = True
    nick: Annotated[str, AfterValidator(_nick)]
    sasl_password: Annotated[str, AfterValidator(_reference)] | None = None
    channels: tuple[Annotated[str, AfterValidator(_channel)], ...]
    # Additive keys (all optional):
    sasl_account: str | None = None  # the services account to log in as; default: nick
    tls_ca_file: str | None = None  # PEM file of CAs to trust instead of the system store
    rate: Annotated[float, Field(gt=0)] = 1.0  # lines per second, sustained
    burst: Annotated[int, Field(ge=1)] = 4  # lines sent at once before pacing starts
    max_lines: Annotated[int, Field(ge=1, le=100)] = 10  # script-output lines per reply


def parse_irc_settings(table: Mapping[str, Any]) -> IrcSettings:
    """Validate `[adapters.irc]`; ConfigError naming the first bad key."""
    try:
        return IrcSettings.model_validate(dict(table))
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        key = f"adapters.irc.{where}" if where else "adapters.irc"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{key}: {message}") from None
