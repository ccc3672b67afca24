"""`[adapters.discord]`: validated once, the bot token resolved from its reference."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from opsroom.config import resolve_reference
from opsroom.errors import ConfigError

SECTION = "adapters.discord"
DEFAULT_API_URL = "https://discord.com/api/v10"


class DiscordSettings(BaseModel):
    """The `[adapters.discord]` table as written (the token still a reference)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: str
    api_url: str = DEFAULT_API_URL
    gateway_url: str = ""  # empty: asked from the API (GET /gateway/bot)
    register_command: bool = False  # PUT the /ops application command at start

    @field_validator("token")
    @classmethod
    def _reference(cls, value: str) -> str:
        kind, _, target = value.partition(":")
        if kind not in ("env", "file") or not target:
            # Never echo the value: it may be the token pasted inline.
            raise ValueError('expected a reference like "env:NAME" or "file:PATH", never the token')
        return value

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("gateway_url")
    @classmethod
    def _gateway(cls, value: str) -> str:
        if value and not value.startswith(("wss://", "ws://")):
            raise ValueError(f"expected a ws(s) URL or nothing, got {value!r}")
        return value


@dataclass(frozen=True, slots=True)
class DiscordConfig:
    """What the adapter runs with: the settings plus the resolved token."""

    token: str
    api_url: str
    gateway_url: str
    register_command: bool

    def __repr__(self) -> str:
        return (
            f"DiscordConfig(api_url={self.api_url!r}, gateway_url={self.gateway_url!r}, "
            f"register_command={self.register_command!r})"
        )


def parse(table: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> DiscordConfig:
    """Validate `[adapters.discord]` and resolve its token; ConfigError naming the key."""
    try:
        raw = DiscordSettings.model_validate(dict(table))
    except ValidationError as e:
        lines = []
        for error in e.errors():
            loc = ".".join(str(p) for p in error["loc"])
            where = f"{SECTION}.{loc}" if loc else SECTION
            message = "unknown key" if error["type"] == "extra_forbidden" else str(error["msg"])
            lines.append(f"{where}: {message.removeprefix('Value error, ')}")
        raise ConfigError("\n".join(lines)) from None
    try:
        token = resolve_reference(raw.token, environ)
    except ConfigError as e:
        raise ConfigError(f"{SECTION}.token: {e}") from None
    return DiscordConfig(
        token=token,
        api_url=raw.api_url,
        gateway_url=raw.gateway_url,
        register_command=raw.register_command,
    )
