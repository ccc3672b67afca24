"""The Matrix adapter: a matrix-nio client that syncs, joins rooms and answers in threads.

`plugin` is the entry point (`opsroom.adapters`); nothing here imports matrix-nio.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsroom.adapters.base import AdapterServices, ChatAdapter
from opsroom.adapters.matrix.settings import MatrixSettings, load_settings
from opsroom.adapters.plugin import AdapterPlugin
from opsroom.config import Settings, resolve_reference
from opsroom.errors import ConfigError

__all__ = ["MatrixSettings", "create", "load_settings", "plugin"]


def _secret(key: str, reference: str | None) -> str | None:
    if reference is None:
        return None
    try:
        return resolve_reference(reference)
    except ConfigError as error:
        raise ConfigError(f"adapters.matrix.{key}: {error}") from None


def create(
    table: Mapping[str, Any], settings: Settings, *, services: AdapterServices | None = None
) -> ChatAdapter:
    """The adapter for `[adapters.matrix]`; ConfigError naming the key when it is invalid.

    Whose invitation is accepted is policy's decision, asked through `services`; without
    it no invitation is (the rooms listed in `rooms` are still joined).
    """
    from opsroom.adapters.matrix.transport import MatrixAdapter

    matrix = load_settings(table)
    password = _secret("password", matrix.password)
    token = _secret("access_token", matrix.access_token)
    may_invite = services.may_invite if services is not None else None
    return MatrixAdapter(
        matrix,
        password=password,
        access_token=token,
        may_invite=may_invite or _nobody,
    )


async def _nobody(principal: str) -> bool:
    """No policy to ask: decline the invitation."""
    return False


plugin = AdapterPlugin(
    name="matrix",
    settings=MatrixSettings,
    create=create,
    requires=("nio",),
    extra="matrix",
)
