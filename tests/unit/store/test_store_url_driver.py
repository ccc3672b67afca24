"""A PostgreSQL store without its driver: one line saying which extra to install."""

from __future__ import annotations

import subprocess
import sys

# Run in a fresh interpreter in which `asyncpg` cannot be imported, whatever this venv has.
_WITHOUT_ASYNCPG = """
import sys
class _Absent:
    def find_spec(self, name, path=None, target=None):
        if name == "asyncpg":
            raise ModuleNotFoundError(name)
        return None
sys.meta_path.insert(0, _Absent())
import asyncio
from opsroom.errors import StoreError
from opsroom.store import Store
try:
    asyncio.run(Store.open("postgresql://ops:secret@db.example.org/opsroom"))
except StoreError as e:
    print("ERROR", e)
"""


def test_a_postgresql_url_without_the_driver_names_the_extra() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _WITHOUT_ASYNCPG],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    [line] = out
    assert line.startswith("ERROR cannot open the store postgresql://ops:***@db.example.org/")
    assert line.endswith("its driver is not installed (asyncpg); install opsroom[postgres]")
    assert "secret" not in line
