"""Composition root: settings → store → catalog → registry → policy → dispatcher."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opsroom.config import Settings
from opsroom.model.catalog import Catalog
from opsroom.model.jobs import Job

if TYPE_CHECKING:  # imported lazily at run time: start-up cost
    from opsroom.router.dispatch import Dispatcher
    from opsroom.store import Store


@dataclass(slots=True)
class App:
    """One running opsroom engine: what `run`, `shell` and `serve` share."""

    settings: Settings
    catalog: Catalog
    store: Store
    dispatcher: Dispatcher
    interrupted: tuple[Job, ...] = ()

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        catalog_dir: str | None = None,
        store_url: str | None = None,
    ) -> App:
        """Open the store (reconciling it), load the catalog and build the dispatcher."""
        from opsroom.catalog.scan import bundled_catalog_path, catalog_commit, load_catalog
        from opsroom.router.builtins import BUILTIN_SPECS
        from opsroom.router.dispatch import DispatchContext, Dispatcher
        from opsroom.router.registry import Registry
        from opsroom.runner.tree import end_orphaned_job
        from opsroom.store.owner import owner_alive, owner_id

        root = Path(catalog_dir or settings.catalog.path or bundled_catalog_path()).resolve()
        commit = catalog_commit(root)
        catalog = load_catalog(root, commit=commit)
        registry = Registry((*BUILTIN_SPECS, *catalog.commands))
        store = await _open_store(store_url or settings.store.url)
        try:
            interrupted = await store.reconcile(is_owner_alive=owner_alive)
            await store.release_orphaned_queue(is_owner_alive=owner_alive)
            for job in interrupted:
                # Its owner died (kill -9, crash, reboot): end what it left running.
                await end_orphaned_job(job.process_token, job.pid, grace=settings.runner.kill_grace)
        except BaseException:
            await store.close()
            raise
        dispatcher = Dispatcher(
            DispatchContext(
                settings=settings,
                registry=registry,
                store=store,
                catalog_root=root,
                catalog_commit=commit,
                owner=owner_id(),
            )
        )
        await dispatcher.approvals.expire()
        return cls(settings, catalog, store, dispatcher, tuple(interrupted))

    async def close(self) -> None:
        """Stop background work and release the store."""
        await self.dispatcher.supervisor.close()
        await self.store.close()

    async def interrupted_notices(self, requester: str) -> list[Job]:
        """Jobs of `requester` that were interrupted and not yet reported; marks them told."""
        jobs = await self.store.unnotified_interrupted(requester=requester)
        if not jobs:
            return []
        # Mark first, tell only what this process marked: two processes never both tell.
        mine = await self.store.mark_notified([j.id for j in jobs])
        return [j for j in jobs if j.id in mine]


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


async def _open_store(url: str) -> Store:
    from opsroom.store import Store as _Store

    return await _Store.open(url)
