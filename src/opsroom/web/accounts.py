"""Local accounts: the first admin, and setting a password from the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsroom.web.passwords import hash_password, new_password

if TYPE_CHECKING:
    from opsroom.store import Store

ADMIN = "admin"


async def bootstrap_admin(store: Store, *, reset: bool = False) -> str | None:
    """The password of a newly made (or reset) `admin` account, to print once; else None.

    The account is created only when no account exists; only its hash is stored.
    """
    if not reset and await store.web_user_count() > 0:
        return None
    password = new_password()
    await store.put_web_user(ADMIN, password_hash=hash_password(password), admin=True)
    return password
