"""Composition root: settings → store → catalog → registry → policy → dispatcher."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opsroom.config import Settings
from opsroom.errors import ConfigError, StoreError, require_extra
from opsroom.model.catalog import Catalog
from opsroom.model.jobs import Job

if TYPE_CHECKING:  # imported lazily at run time: start-up cost
    from opsroom.deploy import Deployer
    from opsroom.engine.dispatch import Dispatcher
    from opsroom.store import Store


@dataclass(slots=True)
class App:
    """One running opsroom engine: what `run`, `shell` and `serve` share."""

    settings: Settings
    store: Store
    dispatcher: Dispatcher
    deployer: Deployer  # keeps the catalog current (SPEC §10)
    interrupted: tuple[Job, ...] = ()

    @property
    def catalog(self) -> Catalog:
        """The catalog serving now (it may be swapped for a newer version at any time)."""
        return self.deployer.live.current.catalog

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        catalog_dir: str | None = None,
        store_url: str | None = None,
    ) -> App:
        """Open the store (reconciling it), load the catalog and build the dispatcher."""
        with _imports_without_gc():
            from opsroom.deploy import Deployer
            from opsroom.engine.dispatch import DispatchContext, Dispatcher
            from opsroom.runner.tree import end_orphaned_job
            from opsroom.store.owner import owner_alive, owner_id

        require_extras(settings)
        # A git catalog is kept beside the config file (or in the working folder).
        workdir = Path(settings.path).parent if settings.path else Path.cwd()
        deployer = await Deployer.start(
            settings,
            catalog_dir=catalog_dir,
            owner=owner_id(),
            owner_alive=owner_alive,
            workdir=workdir,
        )
        try:
            store = await _open_store(settings, store_url)
        except BaseException:
            await deployer.close()
            raise
        deployer.store = store
        try:
            interrupted = await store.reconcile(is_owner_alive=owner_alive)
            await store.release_orphaned_queue(is_owner_alive=owner_alive)
            for job in interrupted:
                # Its owner died (kill -9, crash, reboot): end what it left running.
                await end_orphaned_job(job.process_token, job.pid, grace=settings.runner.kill_grace)
        except BaseException:
            await store.close()
            await deployer.close()
            raise
        dispatcher = Dispatcher(
            DispatchContext(
                settings=settings,
                live=deployer.live,
                store=store,
                owner=owner_id(),
                reload=deployer.reload,
            )
        )
        await dispatcher.approvals.expire()
        return cls(settings, store, dispatcher, deployer, tuple(interrupted))

    async def close(self) -> None:
        """Stop background work and release the store and the catalog's work trees."""
        await self.dispatcher.supervisor.close()
        await self.deployer.close()
        await self.store.close()

    async def interrupted_notices(self, requester: str) -> list[Job]:
        """Jobs of `requester` that were interrupted and not yet reported; marks them told."""
        jobs = await self.store.unnotified_interrupted(requester=requester)
        if not jobs:
            return []
        # Mark first, tell only what this process marked: two processes never both tell.
        mine = await self.store.mark_notified([j.id for j in jobs])
        return [j for j in jobs if j.id in mine]


@contextmanager
def _imports_without_gc() -> Iterator[None]:
    """The engine's first import with the cyclic garbage collector paused.

    That import (the store, SQLAlchemy, the dispatcher) creates some 55,000 objects that
    live as long as the process, and the collector would pass over them again and again as
    they pile up: about a tenth of a restart's time to its first reply. They are frozen
    afterwards (kept out of every later collection) rather than scanned once more when it
    resumes.
    """
    if "opsroom.engine.dispatch" in sys.modules or not gc.isenabled():
        yield  # imported already (another engine in this process), or paused by its owner
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def require_extras(settings: Settings) -> None:
    """MissingExtra for the first configured feature whose optional extra is not installed.

    Checked before anything starts, so a missing package is one line at start-up rather
    than a traceback when the first login, lookup or secret needs it.
    """
    needs: list[tuple[bool, str, str, str]] = [
        # (configured, module, extra, config table)
        (settings.ldap is not None, "ldap3", "ldap", "[ldap]"),
        (settings.vault.url is not None, "hvac", "vault", "[vault]"),
        (settings.vault.url is not None, "requests", "vault", "[vault]"),
        (settings.web.oidc is not None, "authlib", "sso", "[web.oidc]"),
        (settings.web.oidc is not None, "joserfc", "sso", "[web.oidc]"),
        (settings.web.oidc is not None, "httpx", "sso", "[web.oidc]"),
    ]
    for configured, module, extra, table in needs:
        if configured:
            require_extra(module, extra, table)


def job_isolation(settings: Settings) -> tuple[str, str]:
    """How jobs are contained and limited on this host, as two lines for people."""
    from opsroom.runner.cgroup import describe
    from opsroom.runner.limits import Limits

    return describe(Limits.from_settings(settings.runner))


def job_isolation_summary(settings: Settings) -> dict[str, str]:
    """The same for /healthz: the mechanism per guarantee, without host paths."""
    from opsroom.runner.cgroup import summary
    from opsroom.runner.limits import Limits

    return summary(Limits.from_settings(settings.runner))


async def _open_store(settings: Settings, url: str | None) -> Store:
    """The configured store, or the one at `url` (`--store`, which brings its own password)."""
    from opsroom.store import Store as _Store

    if url is not None:
        return await _Store.open(url)
    try:
        password = settings.store.password_value()
    except ConfigError as e:
        raise StoreError(f"cannot open the store: [store] password {e}") from None
    return await _Store.open(settings.store.url, password=password)
