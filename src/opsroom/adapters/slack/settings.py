"""`[adapters.slack]`: validated once, secrets resolved from their references."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from opsroom.config import resolve_reference
from opsroom.errors import ConfigError

SECTION = "adapters.slack"


class SlackSettings(BaseModel):
    """The `[adapters.slack]` table as written (secrets still references)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["socket", "http"] = "socket"
    app_token: str | None = None  # socket mode: xapp-…
    bot_token: str
    signing_secret: str | None = None  # http mode
    api_url: str = "https://slack.com/api/"
    command: str = "/ops"  # the slash command this app answers

    @field_validator("app_token", "bot_token", "signing_secret")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        if value is None:
            return None
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
        return value if value.endswith("/") else value + "/"

    @field_validator("command")
    @classmethod
    def _command(cls, value: str) -> str:
        if not value.startswith("/") or len(value) < 2 or " " in value:
            raise ValueError(f'expected a slash command like "/ops", got {value!r}')
        return value

    @model_validator(mode="after")
    def _mode_needs(self) -> SlackSettings:
        if self.mode == "socket" and self.app_token is None:
            raise ValueError(
                'mode "socket" needs app_token (an xapp- token with connections:write)'
            )
        if self.mode == "http" and self.signing_secret is None:
            raise ValueError('mode "http" needs signing_secret (from the app\'s Basic Information)')
        return self


@dataclass(frozen=True, slots=True)
class SlackConfig:
    """What the adapter runs with: the settings plus the resolved secrets."""

    mode: Literal["socket", "http"]
    bot_token: str
    app_token: str | None
    signing_secret: str | None
    api_url: str
    command: str

    def __repr__(self) -> str:
        return (
            f"SlackConfig(mode={self.mode!r}, api_url={self.api_url!r}, command={self.command!r})"
        )


def parse(table: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> SlackConfig:
    """Validate `[adapters.slack]` and resolve its secrets; ConfigError naming the key."""
    try:
        raw = SlackSettings.model_validate(dict(table))
    except ValidationError as e:
        lines = []
        for error in e.errors():
            loc = ".".join(str(p) for p in error["loc"])
            where = f"{SECTION}.{loc}" if loc else SECTION
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{where}: {message}")
        raise ConfigError("\n".join(lines)) from None

    def secret(key: str, ref: str | None) -> str | None:
        if ref is None:
            return None
        try:
            return resolve_reference(ref, environ)
        except ConfigError as e:
            raise ConfigError(f"{SECTION}.{key}: {e}") from None

    return SlackConfig(
        mode=raw.mode,
        bot_token=secret("bot_token", raw.bot_token) or "",
        app_token=secret("app_token", raw.app_token),
        signing_secret=secret("signing_secret", raw.signing_secret),
        api_url=raw.api_url,
        command=raw.command,
    )
