"""Helpers shared by the tests: the real `opsroom` console script, run as a child process."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
OPSROOM = str(Path(sys.executable).with_name("opsroom"))


@dataclass(frozen=True)
class Result:
    """What one `opsroom` call did."""

    code: int
    stdout: str
    stderr: str

    @property
    def json_lines(self) -> list[Any]:
        """stdout parsed as JSON lines."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    @property
    def summary(self) -> dict[str, Any]:
        """The last JSON line of `run --json`."""
        last: dict[str, Any] = self.json_lines[-1]
        return last


Opsroom = Callable[..., Result]
