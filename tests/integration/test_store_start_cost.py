"""Opening a store loads only what its backend needs (issue 15: start-up).

Not SQLAlchemy's ORM (the store uses the async engine alone), not the PostgreSQL dialect
for a SQLite file, not Alembic for a new store (built from the code's tables, see
test_store_migrations.py) — yet code that asks SQLAlchemy's asyncio package for its
sessions still gets them.
"""

from __future__ import annotations

import json
import subprocess
import sys

from stores import backend_of

PROBE = """
import asyncio, json, sys
from opsroom.store import Store

async def main(url):
    async with await Store.open(url) as store:
        job = await store.create_job(command="c", params={}, requester="p", room="r")
        assert await store.get_job(job.id) is not None

asyncio.run(main(sys.argv[1]))
heavy = ("sqlalchemy.orm", "sqlalchemy.dialects.postgresql", "alembic")
loaded = sorted(name for name in heavy if name in sys.modules)
from sqlalchemy.ext.asyncio import AsyncSession
print(json.dumps({"loaded": loaded, "later": AsyncSession.__name__}))
"""


def test_opening_a_store_loads_only_what_its_backend_needs(empty_store_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, empty_store_url], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    needed = [] if backend_of(empty_store_url) == "sqlite" else ["sqlalchemy.dialects.postgresql"]
    assert seen["loaded"] == needed
    assert seen["later"] == "AsyncSession"
