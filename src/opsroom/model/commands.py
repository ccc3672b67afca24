"""What opsroom derived from one script: the command spec and its parameters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import TypeAlias


class Language(StrEnum):
    """How a command is run."""

    POWERSHELL = "powershell"
    PYTHON = "python"
    SHELL = "shell"
    EXECUTABLE = "executable"
    BUILTIN = "builtin"


class ParamType(StrEnum):
    """The value type of one parameter (SPEC §3.3), independent of the script language."""

    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    SWITCH = "switch"  # a flag: present = true, never takes a value
    DATETIME = "datetime"


# A converted parameter value, as the runner passes it on. Datetimes travel as ISO text.
Scalar: TypeAlias = str | int | float | bool
ParamValue: TypeAlias = Scalar | tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One parameter of a command (SPEC §3.4)."""

    name: str
    type: ParamType = ParamType.STRING
    multiple: bool = False
    required: bool = False
    default: ParamValue | None = None
    # Source text of a default the script computes itself (e.g. `(Get-Date)`); never evaluated.
    default_text: str | None = None
    choices: tuple[str, ...] = ()
    range: tuple[float | None, float | None] | None = None
    pattern: str | None = None
    length: tuple[int | None, int | None] | None = None
    help: str = ""
    aliases: tuple[str, ...] = ()
    position: int | None = None
    choices_from: str | None = None
    line: int = 0

    @property
    def type_label(self) -> str:
        """The type as shown to people: `string`, `int[]`, `switch`..."""
        return f"{self.type.value}[]" if self.multiple else self.type.value


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """Everything derived from one script. Immutable; every other part reads it."""

    name: str
    path: str  # relative to the catalog root, POSIX separators; "" for built-ins
    language: Language
    summary: str = ""
    description: str = ""
    params: tuple[ParamSpec, ...] = ()
    examples: tuple[str, ...] = ()
    notes: str = ""
    links: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    # Directives (SPEC §3.5)
    timeout: float | None = None  # seconds
    approval: str | None = None  # the role whose members approve a run (SPEC §6.3)
    approvals: int = 1  # how many of them must approve
    approval_ttl: float | None = None  # seconds before a pending request expires
    concurrency: int | None = None
    secrets: tuple[str, ...] = ()
    runs_on: str | None = None
    rooms: tuple[str, ...] = ()
    background: bool = False
    dry_run: bool = False  # supports --dry-run (directive, or SupportsShouldProcess)
    should_process: bool = False  # PowerShell [CmdletBinding(SupportsShouldProcess)]
    hidden: bool = False
    owner: str | None = None
    # Python: PEP 723 inline metadata, recorded as found.
    requires: tuple[str, ...] = ()
    requires_python: str | None = None
    script_hash: str = ""  # sha256 of the file bytes
    line: int = 1

    def param(self, name: str) -> ParamSpec | None:
        """The parameter called `name` (exact match), or None."""
        for p in self.params:
            if p.name == name:
                return p
        return None


@dataclass(frozen=True, slots=True)
class Invocation:
    """A parsed and validated request to run one command."""

    command: str
    params: Mapping[str, ParamValue] = field(default_factory=lambda: MappingProxyType({}))
    dry_run: bool = False
    text: str = ""


def parse_iso_datetime(text: str) -> datetime:
    """Parse an ISO 8601 date or date-time, accepting a trailing `Z`."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    return datetime.fromisoformat(value)
