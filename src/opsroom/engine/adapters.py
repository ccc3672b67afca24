"""The configured chat adapters: checked, built and lent the engine's services.

Which platforms exist is the `opsroom.adapters` entry points' say (`adapters.plugin`);
this module builds one adapter per `[adapters.<name>]` table for `opsroom serve`. A table
whose platform's extra is missing stops `serve` and `config check` with one line
("install opsroom[slack] to use [adapters.slack]"), before anything starts.
"""

from __future__ import annotations

from opsroom.adapters.base import AdapterServices, ChatAdapter
from opsroom.adapters.plugin import AdapterPlugin, load_plugins, require_installed
from opsroom.config import Settings
from opsroom.engine.dispatch import Dispatcher
from opsroom.errors import ConfigError
from opsroom.policy import rbac

__all__ = ["check_adapters", "create_adapters", "engine_services"]


def check_adapters(settings: Settings) -> list[AdapterPlugin]:
    """The plugin of each `[adapters.<name>]` table; MissingExtra when one cannot run here."""
    plugins = load_plugins()
    chosen = []
    for name in settings.adapters:
        plugin = plugins.get(name)
        if plugin is None or plugin.create is None:
            # load_settings has refused such a table already; this guards other callers.
            runnable = sorted(n for n, p in plugins.items() if p.create is not None)
            raise ConfigError(
                f"adapters.{name}: unknown chat platform (known: {', '.join(runnable)})"
            )
        require_installed(plugin)
        chosen.append(plugin)
    return chosen


def create_adapters(settings: Settings, services: AdapterServices) -> list[ChatAdapter]:
    """One adapter per `[adapters.<name>]` table; ConfigError or MissingExtra if one cannot be."""
    adapters = []
    for plugin in check_adapters(settings):
        assert plugin.create is not None  # checked: a platform with a table
        table = settings.adapters[plugin.name]
        adapters.append(plugin.create(table, settings, services=services))
    return adapters


def engine_services(dispatcher: Dispatcher) -> AdapterServices:
    """The services an adapter may use, from the serving engine: the store and policy."""

    async def may_invite(principal: str) -> bool:
        # The groups the dispatcher would resolve for a command (directory included), and
        # the settings in force now: the answer the person would get asking in chat.
        groups = await dispatcher.groups.groups_of(principal)
        return rbac.may_invite(principal, dispatcher.ctx.settings, groups=groups)

    return AdapterServices(
        first_delivery=dispatcher.ctx.store.first_delivery, may_invite=may_invite
    )
