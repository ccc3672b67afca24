"""A PostgreSQL store without its driver: one line saying which extra to install, exit 2."""

from __future__ import annotations

import subprocess
import sys

# A fresh interpreter in which `psycopg` cannot be imported, whatever this venv has, running
# the real command line (its entry point turns MissingExtra into the one line).
_WITHOUT_PSYCOPG = """
import sys
class _Absent:
    def find_spec(self, name, path=None, target=None):
        if name == "psycopg" or name.startswith("psycopg."):
            raise ModuleNotFoundError(name)
        return None
sys.meta_path.insert(0, _Absent())
from opsroom.cli.main import main
main(["jobs", "--store", "postgresql://ops:secret@db.example.org/opsroom"])
"""


def test_a_postgresql_url_without_the_driver_names_the_extra() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_PSYCOPG],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == "opsroom: install opsroom[postgres] to use a postgresql:// [store] url\n"
    assert done.stdout == ""
