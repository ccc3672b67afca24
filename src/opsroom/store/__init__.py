"""The store room: jobs, their output and events, and the hash-chained audit trail."""

from opsroom.store.claims import Claim, Limits
from opsroom.store.owner import owner_alive, owner_id
from opsroom.store.store import Store

__all__ = ["Claim", "Limits", "Store", "owner_alive", "owner_id"]
