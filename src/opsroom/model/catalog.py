"""A loaded catalog: the command specs and the problems found while reading the scripts."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from opsroom.model.commands import CommandSpec


class Severity(StrEnum):
    """How bad a catalog issue is; warnings become errors under `--strict`."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class CatalogIssue:
    """One problem in one script, printed GNU style as `path:line: message`."""

    path: str
    line: int
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        prefix = "warning: " if self.severity is Severity.WARNING else ""
        return f"{self.path}:{self.line}: {prefix}{self.message}"


@dataclass(frozen=True, slots=True)
class Catalog:
    """All commands of one catalog folder, plus what was wrong with the rest."""

    root: str
    commands: tuple[CommandSpec, ...]
    issues: tuple[CatalogIssue, ...] = ()
    commit: str | None = None

    @property
    def errors(self) -> tuple[CatalogIssue, ...]:
        """Only the issues of error severity."""
        return tuple(i for i in self.issues if i.severity is Severity.ERROR)
