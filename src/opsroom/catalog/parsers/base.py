"""What every language parser returns: the metadata a script declares about itself."""

from __future__ import annotations

from dataclasses import dataclass

from opsroom.model.catalog import Severity
from opsroom.model.commands import ParamSpec


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong in one script, at a line (1-based)."""

    line: int
    message: str
    severity: Severity = Severity.ERROR


@dataclass(frozen=True, slots=True)
class ParsedScript:
    """Metadata read statically from one script (never by running it).

    A parser never raises on bad input: it returns what it could read plus `problems`.
    A problem of ERROR severity means the script is not loaded as a command.
    """

    summary: str = ""
    description: str = ""
    params: tuple[ParamSpec, ...] = ()
    examples: tuple[str, ...] = ()
    notes: str = ""
    links: tuple[str, ...] = ()
    should_process: bool = False  # PowerShell [CmdletBinding(SupportsShouldProcess)]
    requires: tuple[str, ...] = ()  # PEP 723 dependencies
    requires_python: str | None = None
    summary_line: int = 1  # where the help starts, for "missing summary" warnings
    problems: tuple[Problem, ...] = ()
