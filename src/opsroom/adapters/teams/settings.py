"""`[adapters.teams]`: validated once, secrets resolved from their references."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from opsroom.config import resolve_reference
from opsroom.errors import ConfigError

SECTION = "adapters.teams"
OPENID_METADATA = "https://login.botframework.com/v1/.well-known/openidconfiguration"
TOKEN_URL = "https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token"  # noqa: S105


def _is_reference(value: str) -> bool:
    kind, _, target = value.partition(":")
    return kind in ("env", "file") and bool(target)


class TeamsSettings(BaseModel):
    """The `[adapters.teams]` table as written (the password still a reference)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    app_id: str  # the Azure Bot's Microsoft App ID: a reference or the id itself
    app_password: str  # its client secret: always a reference
    tenant_id: str  # the only Azure AD tenant whose activities run anything
    openid_metadata: str = OPENID_METADATA
    token_url: str = TOKEN_URL

    @field_validator("app_password")
    @classmethod
    def _reference(cls, value: str) -> str:
        if not _is_reference(value):
            # Never echo the value: it may be the secret pasted inline.
            raise ValueError(
                'expected a reference like "env:NAME" or "file:PATH", never the secret'
            )
        return value

    @field_validator("app_id", "tenant_id")
    @classmethod
    def _present(cls, value: str) -> str:
        if not value.strip() or value != value.strip():
            raise ValueError("expected a non-empty id without surrounding spaces")
        return value

    @field_validator("openid_metadata", "token_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value


@dataclass(frozen=True, slots=True)
class TeamsConfig:
    """What the adapter runs with: the settings plus the resolved secrets."""

    app_id: str
    app_password: str
    tenant_id: str
    openid_metadata: str
    token_url: str

    def __repr__(self) -> str:
        return f"TeamsConfig(app_id={self.app_id!r}, tenant_id={self.tenant_id!r})"


def parse(table: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> TeamsConfig:
    """Validate `[adapters.teams]` and resolve its references; ConfigError naming the key."""
    try:
        raw = TeamsSettings.model_validate(dict(table))
    except ValidationError as e:
        lines = []
        for error in e.errors():
            loc = ".".join(str(p) for p in error["loc"])
            where = f"{SECTION}.{loc}" if loc else SECTION
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{where}: {message}")
        raise ConfigError("\n".join(lines)) from None

    def resolved(key: str, value: str) -> str:
        if not _is_reference(value):
            return value
        try:
            return resolve_reference(value, environ)
        except ConfigError as e:
            raise ConfigError(f"{SECTION}.{key}: {e}") from None

    return TeamsConfig(
        app_id=resolved("app_id", raw.app_id),
        app_password=resolved("app_password", raw.app_password),
        tenant_id=raw.tenant_id,
        openid_metadata=raw.openid_metadata,
        token_url=raw.token_url,
    )
