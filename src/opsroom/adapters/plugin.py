"""The chat-adapter extension point: one `AdapterPlugin` record per platform, found by entry point.

Each platform, built in or from another package, declares one entry point in the group
`opsroom.adapters` naming an `AdapterPlugin`:

    [project.entry-points."opsroom.adapters"]
    irc = "opsroom.adapters.irc:plugin"

The module named there imports no platform library: it is loaded to check a config file
(`opsroom config check`) even where the platform's extra is not installed. The record
says how `[adapters.<name>]` is validated (`settings`), which modules the platform needs
(`requires`, and the extra that brings them), how the adapter is built (`create`, which
imports the heavy parts itself) and which HTTP endpoints the web app mounts for it
(`hooks`). `opsroom serve` and `config check` read nothing else: adding a platform is
one package and one entry point.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from opsroom.adapters.base import AdapterServices, ChatAdapter
from opsroom.errors import ConfigError, MissingExtra

if TYPE_CHECKING:
    from opsroom.config import Settings

__all__ = [
    "GROUP",
    "AdapterFactory",
    "AdapterPlugin",
    "Hook",
    "load_plugins",
    "require_installed",
]

GROUP = "opsroom.adapters"


class AdapterFactory(Protocol):
    """Build the adapter for one `[adapters.<name>]` table (ConfigError naming a bad key)."""

    def __call__(
        self, table: Mapping[str, Any], settings: Settings, *, services: AdapterServices
    ) -> ChatAdapter:
        """The adapter, not yet connected."""
        ...


@dataclass(frozen=True, slots=True)
class Hook:
    """An HTTP endpoint the platform calls (POST `path`), served by the web app.

    `app` is an ASGI application; it verifies each request itself (a signature, a token),
    so no web login applies to it.
    """

    path: str
    app: Any


@dataclass(frozen=True, slots=True)
class AdapterPlugin:
    """Everything opsroom needs to know about one chat platform."""

    name: str  # the `[adapters.<name>]` table
    # The table's model (pydantic, extra keys forbidden); None for a chat opsroom runs
    # without a table (the web chat, the terminal), which `about` then explains.
    settings: type[BaseModel] | None
    create: AdapterFactory | None = None
    requires: tuple[str, ...] = ()  # modules the platform needs beyond opsroom's core
    extra: str | None = None  # the opsroom extra that installs `requires`
    hooks: Callable[[ChatAdapter], Sequence[Hook]] | None = None
    about: str = ""  # for a built-in chat: why it needs no table

    def missing(self) -> str | None:
        """The first module of `requires` that cannot be imported here, if any."""
        for module in self.requires:
            try:
                if importlib.util.find_spec(module) is None:
                    return module
            except ImportError:  # a parent package is missing, or a finder refused it
                return module
        return None


def load_plugins() -> dict[str, AdapterPlugin]:
    """Every installed platform by name, from the `opsroom.adapters` entry points.

    A broken entry point is a ConfigError naming it: a platform that cannot be loaded
    must not be taken for one that is not installed.
    """
    found: dict[str, AdapterPlugin] = {}
    for point in entry_points(group=GROUP):
        try:
            plugin = point.load()
        except Exception as e:
            raise ConfigError(
                f"chat adapter {point.name!r} ({point.value}) cannot load: {e}"
            ) from e
        if not isinstance(plugin, AdapterPlugin):
            raise ConfigError(
                f"chat adapter {point.name!r} ({point.value}) is not an AdapterPlugin"
            )
        if plugin.name != point.name:
            raise ConfigError(
                f"chat adapter {point.name!r} ({point.value}) calls itself {plugin.name!r}"
            )
        found.setdefault(plugin.name, plugin)  # the first distribution on the path wins
    return found


def require_installed(plugin: AdapterPlugin) -> None:
    """MissingExtra ("install opsroom[slack] to use [adapters.slack]") unless it can run."""
    module = plugin.missing()
    if module is None:
        return
    if plugin.extra is not None:
        raise MissingExtra(plugin.extra, f"[adapters.{plugin.name}]")
    raise ConfigError(
        f"adapters.{plugin.name}: needs the Python module {module!r}, which is not installed"
    )
