"""One measured figure, with the budget it is held to and how it compares to peers."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Figure:
    """A benchmark result row: `value` in `unit`, met when at most `budget` (if any)."""

    name: str
    value: float | None  # None when the benchmark could not run
    unit: str
    budget: float | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        """`ok`, `OVER` budget, `n/a` without a budget, or `error` when it did not run."""
        if self.value is None:
            return "error"
        if self.budget is None:
            return "n/a"
        return "ok" if self.value <= self.budget else "OVER"

    @property
    def shown(self) -> str:
        """The value as printed in the table."""
        if self.value is None:
            return "—"
        digits = 0 if self.value >= 100 else (1 if self.value >= 10 else 2)
        return f"{self.value:,.{digits}f} {self.unit}"


def median(values: list[float]) -> float:
    """The median of a non-empty list."""
    return float(statistics.median(values))
