"""The runner type-checks as Windows code: `mypy --platform win32` against Windows' stubs.

`--always-true ON_WINDOWS` makes mypy read runner/platform.py's flag as the platform check it
is, so a POSIX branch is skipped exactly as `if sys.platform != "win32"` would be. The
project's own mypy run is the Linux one (pyproject: `always_false = ["ON_WINDOWS"]`); mypy
refuses both at once, so this run takes its options here rather than from pyproject.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import opsroom

PACKAGE = Path(opsroom.__file__).parent
# Never run on Windows (tests/unit/runner/test_windows_path.py: nothing on the Windows path
# calls them, and what runs when they are imported is Windows-safe).
POSIX_ONLY = {"tree.py", "cgroup.py", "pool.py", "spawn.py"}


def test_the_runner_type_checks_as_windows_code(tmp_path: Path) -> None:
    files = [
        *sorted((PACKAGE / "runner").glob("*.py")),
        PACKAGE / "engine" / "loop.py",
        PACKAGE / "script.py",  # a script's helper: on Windows it opens the channel's handle
    ]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            "",  # none: pyproject's always_false would clash with always-true
            "--strict",
            "--python-version",
            "3.11",
            "--platform",
            "win32",
            "--always-true",
            "ON_WINDOWS",
            "--follow-imports",
            "silent",
            "--cache-dir",
            str(tmp_path),
            "--show-error-codes",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    by_file = {Path(re.split(r":\d+:", line)[0]).name for line in errors}
    windows_code = [
        line for line in errors if Path(re.split(r":\d+:", line)[0]).name not in POSIX_ONLY
    ]
    assert windows_code == [], done.stdout
    # The check does judge by Windows' stubs: the POSIX-only modules fail it.
    assert by_file == POSIX_ONLY, done.stdout + done.stderr
    assert any('Module has no attribute "killpg"' in line for line in errors)
