"""Shared fixtures."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from support import FIXTURES, OPSROOM, Opsroom, Result


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working folder, as a new user would have."""
    d = tmp_path / "work"
    d.mkdir()
    return d


@pytest.fixture
def opsroom(workdir: Path) -> Opsroom:
    """Run the real console script in `workdir` with a clean environment."""

    def call(
        *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
    ) -> Result:
        base = {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}
        base.update(env or {})
        proc = subprocess.run(
            [OPSROOM, *args],
            cwd=workdir,
            env=base,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return call


@pytest.fixture
def echo_catalog() -> Path:
    """A small catalog of scripts that print what they receive."""
    return FIXTURES / "echo_catalog"
