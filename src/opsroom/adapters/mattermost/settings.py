"""`[adapters.mattermost]`: validated once, secrets resolved from their references."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from opsroom.config import resolve_reference
from opsroom.errors import ConfigError

SECTION = "adapters.mattermost"
ACTIONS_PATH = "/hooks/mattermost/actions"
COMMAND_PATH = "/hooks/mattermost/command"


def _http_url(value: str) -> str:
    if not value.startswith(("https://", "http://")) or len(value.split("://", 1)[1]) < 1:
        raise ValueError(f"expected an http(s) URL, got {value!r}")
    return value.rstrip("/")


class MattermostSettings(BaseModel):
    """The `[adapters.mattermost]` table as written (secrets still references)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str  # the server, e.g. https://mm.example.org
    token: str  # the bot account's access token
    command_token: str | None = None  # the /ops slash command's token; None: /ops refused
    actions_url: str | None = None  # where Mattermost POSTs button clicks; None: from [web]

    @field_validator("token", "command_token")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        if value is None:
            return None
        kind, _, target = value.partition(":")
        if kind not in ("env", "file") or not target:
            # Never echo the value: it may be the token pasted inline.
            raise ValueError('expected a reference like "env:NAME" or "file:PATH", never the token')
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("actions_url")
    @classmethod
    def _actions_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)


@dataclass(frozen=True, slots=True)
class MattermostConfig:
    """What the adapter runs with: the settings plus the resolved secrets."""

    url: str
    token: str
    command_token: str | None
    actions_url: str | None  # None: no buttons (the reply's text says what to type)

    @property
    def action_secret(self) -> str:
        """The installation's button secret, carried in each button's context.

        Derived from the bot token (itself a per-installation secret) so buttons posted
        before a restart still verify, and no second secret has to be configured.
        """
        return hmac.new(
            self.token.encode(), b"opsroom mattermost actions", hashlib.sha256
        ).hexdigest()

    def __repr__(self) -> str:
        return f"MattermostConfig(url={self.url!r}, actions_url={self.actions_url!r})"


def parse(
    table: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    *,
    base_url: str | None = None,
) -> MattermostConfig:
    """Validate `[adapters.mattermost]` and resolve its secrets; ConfigError naming the key.

    `base_url` (`[web] base_url`) gives the default `actions_url`.
    """
    try:
        raw = MattermostSettings.model_validate(dict(table))
    except ValidationError as e:
        lines = []
        for error in e.errors():
            loc = ".".join(str(p) for p in error["loc"])
            where = f"{SECTION}.{loc}" if loc else SECTION
            message = "unknown key" if error["type"] == "extra_forbidden" else str(error["msg"])
            lines.append(f"{where}: {message.removeprefix('Value error, ')}")
        raise ConfigError("\n".join(lines)) from None

    def secret(key: str, ref: str | None) -> str | None:
        if ref is None:
            return None
        try:
            return resolve_reference(ref, environ)
        except ConfigError as e:
            raise ConfigError(f"{SECTION}.{key}: {e}") from None

    actions_url = raw.actions_url
    if actions_url is None and base_url:
        actions_url = base_url.rstrip("/") + ACTIONS_PATH
    return MattermostConfig(
        url=raw.url,
        token=secret("token", raw.token) or "",
        command_token=secret("command_token", raw.command_token),
        actions_url=actions_url,
    )
