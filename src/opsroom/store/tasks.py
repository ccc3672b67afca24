"""The workers' job queue (SPEC §8): Procrastinate on the store's own PostgreSQL database.

A job handed to a queue becomes one Procrastinate task, `opsroom.run_job(job_id=N)`, on
that queue; an `opsroom worker` of the queue takes it. The task carries only the job's id:
the job itself (command, parameters, catalog commit) is read from the store by the worker.
Procrastinate is the transport and nothing else — never a second record of a job: a task
is deleted once it ran, and a task whose worker died is never retried (the job is
`interrupted`, SPEC §5.5). Procrastinate (the `postgres` extra) is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from opsroom.errors import StoreError, require_extra
from opsroom.store.database import Part
from opsroom.store.engine import serialise
from opsroom.store.url import redacted

if TYPE_CHECKING:
    import procrastinate

TASK_NAME = "opsroom.run_job"
"""The one task every queue carries; its argument is `job_id`."""

_SCHEMA_LOCK_KEY = 0x6F70737461736B73  # "opstasks": one process creates the queue's tables


def workers_can_share(url: str) -> bool:
    """Whether workers on other hosts can share the store at `url`: PostgreSQL, not SQLite."""
    return url.lower().startswith(("postgresql", "postgres:"))


def not_shared(url: str) -> str:
    """Why workers cannot use the store at `url`, for people."""
    return (
        'workers need a PostgreSQL store ([store] url = "postgresql://..."); '
        f"{redacted(url)} is a SQLite file only this host can open"
    )


class Tasks(Part):
    """Handing jobs to the workers of a queue, and aborting them there."""

    _task_app: procrastinate.App | None = None

    @property
    def has_workers(self) -> bool:
        """Whether workers can share this store: PostgreSQL, never a SQLite file."""
        return workers_can_share(self._db.url)

    async def task_app(self, *, connections: int = 4) -> procrastinate.App:
        """The opened Procrastinate app on this database (its tables created on first use).

        `connections`: the most the app's pool holds (a worker needs one per job it runs
        at once, and a few more).
        """
        if self._task_app is not None:
            return self._task_app
        if not self.has_workers:
            raise StoreError(not_shared(self._db.url))
        require_extra("procrastinate", "postgres", "workers (opsroom worker, runs_on)")
        import procrastinate

        await self._ensure_queue_schema()
        scheme, _, rest = self._db.url.partition("://")
        kwargs: dict[str, Any] = {}
        if self._db.password is not None:
            kwargs["password"] = self._db.password
        connector = procrastinate.PsycopgConnector(
            conninfo=f"{scheme.split('+', 1)[0]}://{rest}",
            kwargs=kwargs,
            min_size=1,
            max_size=max(connections, 2),
            timeout=30.0,
        )
        app = procrastinate.App(connector=connector)
        try:
            await app.open_async()
        except Exception as e:  # Procrastinate wraps every driver failure its own way
            raise StoreError(
                f"cannot open the workers' job queue on {redacted(self._db.url)}: {e}"
            ) from None
        self._task_app = app
        return app

    async def defer_job(self, job_id: int, queue: str) -> int:
        """Put job `job_id` on `queue` for its workers; returns the task's id."""
        app = await self.task_app()
        deferrer = app.configure_task(TASK_NAME, queue=queue, allow_unknown=True)
        try:
            task_id = await deferrer.defer_async(job_id=job_id)
        except Exception as e:
            raise StoreError(f"cannot hand job {job_id} to queue {queue}: {e}") from None
        return int(task_id)

    async def abort_task(self, task_id: int) -> bool:
        """Ask the worker running task `task_id` to stop it now (a queued task is dropped)."""
        app = await self.task_app()
        try:
            return bool(await app.job_manager.cancel_job_by_id_async(task_id, abort=True))
        except Exception as e:
            raise StoreError(f"cannot abort task {task_id}: {e}") from None

    async def close_tasks(self) -> None:
        """Close the job queue's connections (if it was ever opened)."""
        app, self._task_app = self._task_app, None
        if app is not None:
            await app.close_async()

    async def _ensure_queue_schema(self) -> None:
        """Create Procrastinate's tables unless they exist; concurrent starters take turns.

        Kept out of opsroom's own migrations: only installations with workers need them,
        and they are Procrastinate's to define.
        """
        from procrastinate.schema import SchemaManager

        async with self._db.write("create the workers' job queue") as conn:
            await serialise(conn, _SCHEMA_LOCK_KEY)
            exists = await conn.scalar(text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL"))
            if exists:
                return
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            # Several statements in one call: psycopg runs them so when given no parameters.
            await raw.execute(SchemaManager.get_schema())
