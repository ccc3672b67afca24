"""The IRC adapter (SPEC §7.1 `[adapters.irc]`): principals are services accounts.

`plugin` is the entry point (`opsroom.adapters`); nothing here imports the `irc` library.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsroom.adapters.base import AdapterServices, ChatAdapter
from opsroom.adapters.irc.settings import IrcSettings
from opsroom.adapters.plugin import AdapterPlugin
from opsroom.config import Settings, resolve_reference
from opsroom.errors import ConfigError


def create(
    table: Mapping[str, Any], settings: Settings, *, services: AdapterServices | None = None
) -> ChatAdapter:
    """The IRC adapter for `[adapters.irc]`; ConfigError naming the bad key.

    IRC needs nothing of the engine beyond its settings, so `services` is unused.
    """
    from opsroom.adapters.irc.settings import parse_irc_settings
    from opsroom.adapters.irc.transport import IrcAdapter

    config = parse_irc_settings(table)
    password = None
    if config.sasl_password is not None:
        try:
            password = resolve_reference(config.sasl_password)
        except ConfigError as e:
            raise ConfigError(f"adapters.irc.sasl_password: {e}") from None
    return IrcAdapter(config, password=password, prefix=settings.bot.prefix)


plugin = AdapterPlugin(
    name="irc",
    settings=IrcSettings,
    create=create,
    requires=("irc", "jaraco.stream"),
    extra="irc",
)
