"""The store room: jobs and their queue, output, the audit trail, approvals, accounts,
the web chat's history, the outbox, schedules and deliveries, one module each over one
shared database (SQLite or PostgreSQL; what differs between them is in `engine.py`).
"""

# First, before any store module imports SQLAlchemy's asyncio engine: it then comes
# without the ORM (see sa_async.py).
from opsroom.store import sa_async as _sa_async  # noqa: F401
from opsroom.store.owner import owner_alive, owner_id
from opsroom.store.queue import Claim, Limits
from opsroom.store.store import Store

__all__ = ["Claim", "Limits", "Store", "owner_alive", "owner_id"]
