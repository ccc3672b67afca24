"""A loaded catalog: the command specs and the problems found while reading the scripts."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from opsroom.model.commands import CommandSpec, Language


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
class ScriptFile:
    """One script file the catalog read, and how: what `opsroom catalog report` counts.

    `read_as` names the convention its metadata came from (docs/adopting.md lists them:
    `script`, `function`, `module`, `library`, `main`, `argparse`, `click`, `typer`, `tags`,
    `getopts`, `plain`, `sidecar`); "" when the parser did not say.
    """

    path: str
    language: Language
    read_as: str = ""
    commands: tuple[str, ...] = ()  # the names of the commands it gave


@dataclass(frozen=True, slots=True)
class Catalog:
    """All commands of one catalog folder, plus what was wrong with the rest."""

    root: str
    commands: tuple[CommandSpec, ...]
    issues: tuple[CatalogIssue, ...] = ()
    commit: str | None = None
    # Every script file found, loaded or not (a library file or a broken one has no command).
    files: tuple[ScriptFile, ...] = ()

    @property
    def errors(self) -> tuple[CatalogIssue, ...]:
        """Only the issues of error severity."""
        return tuple(i for i in self.issues if i.severity is Severity.ERROR)
