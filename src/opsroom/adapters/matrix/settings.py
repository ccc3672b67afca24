"""`[adapters.matrix]`: validated once, secrets kept as references until connect time."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from opsroom.errors import ConfigError

_MXID = re.compile(r"^@[^:\s]+:[^\s]+$")
_ROOM = re.compile(r"^(![^\s]+|#[^:\s]+:[^\s]+)$")  # room IDs of v12 rooms have no server


def _reference(value: str) -> str:
    kind, _, target = value.partition(":")
    if kind not in ("env", "file") or not target:
        raise ValueError('expected a reference like "env:NAME" or "file:PATH", never the value')
    return value


class MatrixSettings(BaseModel):
    """One Matrix account on one homeserver (SPEC §7.1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    homeserver: str
    user_id: str
    password: str | None = None
    access_token: str | None = None
    rooms: tuple[str, ...] = ()  # empty: join rooms on invite from anyone holding a role

    @field_validator("homeserver")
    @classmethod
    def _url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("expected an http(s) URL like https://matrix.example.org")
        return value.rstrip("/")

    @field_validator("user_id")
    @classmethod
    def _mxid(cls, value: str) -> str:
        if not _MXID.match(value):
            raise ValueError("expected a Matrix user ID like @ops:example.org")
        return value

    @field_validator("password", "access_token")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        return None if value is None else _reference(value)

    @field_validator("rooms")
    @classmethod
    def _rooms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for room in value:
            if not _ROOM.match(room):
                raise ValueError(f"{room!r} is not a room ID (!id) or alias (#name:server)")
        return value

    @model_validator(mode="after")
    def _one_credential(self) -> MatrixSettings:
        if (self.password is None) == (self.access_token is None):
            raise ValueError("set exactly one of password or access_token")
        return self


def load_settings(table: Mapping[str, Any]) -> MatrixSettings:
    """Validate the `[adapters.matrix]` table; ConfigError naming `adapters.matrix.<key>`."""
    try:
        return MatrixSettings.model_validate(dict(table))
    except ValidationError as err:
        problems = []
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"])
            where = f"adapters.matrix.{key}" if key else "adapters.matrix"
            msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
            msg = msg.removeprefix("Value error, ")
            problems.append(f"{where}: {msg}")
        raise ConfigError("; ".join(problems)) from None
