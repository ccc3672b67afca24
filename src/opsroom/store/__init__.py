"""The store room: jobs and their queue, output, the audit trail, approvals, accounts,
the web chat's history, the outbox, schedules and deliveries, one module each over one
shared database (SQLite or PostgreSQL; what differs between them is in `engine.py`).
"""

from opsroom.store.owner import owner_alive, owner_id
from opsroom.store.queue import Claim, Limits
from opsroom.store.store import Store

__all__ = ["Claim", "Limits", "Store", "owner_alive", "owner_id"]
