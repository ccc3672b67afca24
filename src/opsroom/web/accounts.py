"""Local accounts: the first admin, and the demo roles of embedded defaults."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsroom.config import RoleSettings, Settings
from opsroom.web.passwords import hash_password, new_password

if TYPE_CHECKING:
    from opsroom.store import Store

ADMIN = "admin"
DEMO_APPROVERS = "storage-leads"  # the role the bundled `storage decommission` waits for
_EVERYONE = ("local:*", "web:*")


def demo_settings(settings: Settings) -> Settings:
    """On embedded defaults (no config file, no roles), roles that let the demo approve.

    Everyone local or on the web may run everything and is an operator, exactly as with no
    roles at all (SPEC §6.2); and all of them are in `storage-leads`, so a second account
    (`opsroom user add bob`) can approve what the first one asked for. A config file, or
    any role of its own, turns this off.
    """
    if settings.source != "defaults" or settings.roles:
        return settings
    roles = (
        RoleSettings(name="everyone", members=_EVERYONE, allow=("*",), admin=True),
        RoleSettings(name=DEMO_APPROVERS, members=_EVERYONE),
    )
    return settings.model_copy(update={"roles": roles})


def has_demo_roles(settings: Settings) -> bool:
    """Whether `settings` are embedded defaults with the demo roles."""
    return settings.source == "defaults" and any(
        r.name == DEMO_APPROVERS and r.members == _EVERYONE for r in settings.roles
    )


async def bootstrap_admin(store: Store, *, reset: bool = False) -> str | None:
    """The password of a newly made (or reset) `admin` account, to print once; else None.

    The account is created only when no account exists; only its hash is stored.
    """
    if not reset and await store.web_user_count() > 0:
        return None
    password = new_password()
    if reset:
        await store.put_web_user(ADMIN, password_hash=hash_password(password), admin=True)
        return password
    # Another bot starting on the same new store may be first: then its password stands.
    first = await store.create_first_web_user(
        ADMIN, password_hash=hash_password(password), admin=True
    )
    return password if first else None
