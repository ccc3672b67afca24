"""`Store`: the one handle callers hold, assembled from the store's parts.

Each part owns one concern in its own module — jobs, the queue, output, the audit trail,
approvals, accounts, the web chat's history, the outbox, schedules, deliveries, workers,
the bots sharing the store — and all of them work over one shared `Database` (one engine,
one write-lock discipline).
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from opsroom.store.accounts import Accounts
from opsroom.store.approvals import Approvals
from opsroom.store.audit import Audit
from opsroom.store.bots import Bots
from opsroom.store.database import Database
from opsroom.store.deliveries import Deliveries
from opsroom.store.jobs import Jobs
from opsroom.store.messages import Messages
from opsroom.store.notify import Notices
from opsroom.store.outbox import Outbox
from opsroom.store.output import Output
from opsroom.store.queue import Queue
from opsroom.store.schedules import Schedules
from opsroom.store.tasks import Tasks
from opsroom.store.workers import Workers


class Store(
    Jobs,
    Queue,
    Output,
    Audit,
    Approvals,
    Accounts,
    Messages,
    Outbox,
    Schedules,
    Deliveries,
    Workers,
    Tasks,
    Bots,
    Notices,
):
    """Async access to the opsroom database; open with `await Store.open(url)`."""

    @classmethod
    async def open(cls, url: str, *, password: str | None = None) -> Store:
        """Open (creating and migrating as needed) the store at `url`.

        `password`: PostgreSQL's, when it is not in the URL (`[store] password`).
        """
        return cls(await Database.open(url, password=password))

    @property
    def url(self) -> str:
        """The URL the store was opened with (it may hold a password: see `url.redacted`)."""
        return self._db.url

    async def close(self) -> None:
        """Release every connection."""
        await self.close_notices()
        await self.close_tasks()
        await self._db.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
