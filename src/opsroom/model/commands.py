"""What opsroom derived from one script: the command spec and its parameters."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import ClassVar, TypeAlias


class Language(str):
    """What runs a command: a script language, a program with a sidecar, or a built-in.

    An open set rather than an enum: a script language is added by its LanguageSupport
    record (model/languages.py) alone. Values are interned, so `spec.language is
    Language.SHELL` holds, and `.value` is the name, as it was for the enum.
    """

    __slots__ = ()
    _known: ClassVar[dict[str, Language]] = {}

    POWERSHELL: ClassVar[Language]
    PYTHON: ClassVar[Language]
    SHELL: ClassVar[Language]
    EXECUTABLE: ClassVar[Language]
    BUILTIN: ClassVar[Language]

    def __new__(cls, name: str) -> Language:
        """The one Language called `name` (lower-case letters, digits and `-`)."""
        known = cls._known.get(name)
        if known is not None:
            return known
        if _LANGUAGE_NAME.fullmatch(name) is None:
            raise ValueError(f"not a language name: {name!r} (lower-case letters, digits, '-')")
        return cls._known.setdefault(name, super().__new__(cls, name))

    @property
    def value(self) -> str:
        """The name as shown and stored (`shell`)."""
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"Language({str.__str__(self)!r})"


_LANGUAGE_NAME = re.compile(r"[a-z][a-z0-9-]*")
Language.POWERSHELL = Language("powershell")
Language.PYTHON = Language("python")
Language.SHELL = Language("shell")
Language.EXECUTABLE = Language("executable")
Language.BUILTIN = Language("builtin")


class Builtin(StrEnum):
    """The commands opsroom answers itself (SPEC §4.3): the one list of their names.

    The router gives each its spec and handler, the catalog refuses a script that would
    shadow one, and policy names those open to every role holder — all from this list.
    """

    HELP = "help"
    WHOAMI = "whoami"
    VERSION = "version"
    JOBS = "jobs"
    JOB = "job"
    CANCEL = "cancel"
    APPROVE = "approve"
    DENY = "deny"
    PENDING = "pending"
    RELOAD = "reload"
    SCHEDULE = "schedule"


class ArgvStyle(StrEnum):
    """How a shell script or program takes its parameters on its command line (sidecar `argv`).

    Without one, parameters reach it only as `OPSROOM_ARG_<NAME>` variables.
    """

    GETOPTS = "getopts"  # -x value, -f for a flag, then -- and the positionals
    LONG = "long"  # --name value, --flag for a flag, then the positionals


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


class ArgForm(StrEnum):
    """How one value is written on the command line of a script that parses its own argv
    (argparse, click, typer — SPEC §3.10)."""

    VALUE = "value"  # `--opt=value` (several values: `--opt a b`); a positional: the value
    FLAG = "flag"  # bare `--opt` when true, nothing when false
    PAIR = "pair"  # `--opt` when true, `ArgvSlot.off` (`--no-opt`) when false
    COUNT = "count"  # `--opt` repeated n times
    APPEND = "append"  # `--opt=value` once per value


@dataclass(frozen=True, slots=True)
class ArgvSlot:
    """Where one parameter goes on the command line of a script that parses its own."""

    option: str = ""  # `--count`, `-n`; "" for a positional
    form: ArgForm = ArgForm.VALUE
    off: str = ""  # PAIR: the switch that says false (`--no-color`)
    stage: int = 0  # how many sub-command words come before it (0: the top parser's)
    separate: bool = False  # value as its own word (`-n value`) rather than `-n=value`
    nargs: int = 0  # takes exactly this many values (argparse `nargs=3`); 0: any number


@dataclass(frozen=True, slots=True)
class ExclusiveGroup:
    """Parameters of which at most one may be given; exactly one when `required`."""

    names: tuple[str, ...]
    required: bool = False


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
    argv: ArgvSlot | None = None  # set when the script reads its own command line

    @property
    def type_label(self) -> str:
        """The type as shown to people: `string`, `int[]`, `switch`..."""
        return f"{self.type.value}[]" if self.multiple else self.type.value


class CredentialKind(StrEnum):
    """A PowerShell parameter filled from a secret, never typed in chat (SPEC §3.10)."""

    PSCREDENTIAL = "pscredential"  # [pscredential]: user name and password
    SECURESTRING = "securestring"  # [securestring]: the password alone


@dataclass(frozen=True, slots=True)
class CredentialParam:
    """A `[pscredential]`/`[securestring]` parameter and the secret a sidecar maps to it.

    The secret holds `user:password` or JSON `{"username": ..., "password": ...}`; the
    PowerShell bootstrap builds the object from it. `secret` is None until a sidecar maps one.
    """

    name: str
    kind: CredentialKind
    required: bool = False
    secret: str | None = None
    line: int = 0


@dataclass(frozen=True, slots=True)
class ModuleRequirement:
    """One module of `#Requires -Modules`: a name, or a hashtable with versions."""

    name: str
    minimum: str | None = None  # ModuleVersion
    exact: str | None = None  # RequiredVersion
    maximum: str | None = None  # MaximumVersion

    @property
    def label(self) -> str:
        """`dbatools >= 1.1.0`, `Az.Accounts = 2.12.1`, `ActiveDirectory`."""
        if self.exact:
            return f"{self.name} = {self.exact}"
        bounds = [f">= {self.minimum}"] if self.minimum else []
        bounds += [f"<= {self.maximum}"] if self.maximum else []
        return " ".join((self.name, *bounds))


@dataclass(frozen=True, slots=True)
class PowerShellRequires:
    """What a PowerShell script's `#Requires` lines ask of the host that runs it."""

    modules: tuple[ModuleRequirement, ...] = ()
    version: str | None = None  # -Version: the lowest PowerShell version
    editions: tuple[str, ...] = ()  # -PSEdition: Core, Desktop
    run_as_admin: bool = False

    @property
    def label(self) -> str:
        """One line for help and the catalog page; "" when nothing is required."""
        parts = []
        if self.modules:
            parts.append("modules " + ", ".join(m.label for m in self.modules))
        if self.version:
            parts.append(f"PowerShell {self.version} or later")
        if self.editions:
            parts.append("edition " + " or ".join(self.editions))
        if self.run_as_admin:
            parts.append("run as administrator")
        return "; ".join(parts)


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
    argv_style: ArgvStyle | None = None  # shell/executables: parameters also as argv flags
    # Python: PEP 723 inline metadata, recorded as found.
    requires: tuple[str, ...] = ()
    requires_python: str | None = None
    script_hash: str = ""  # sha256 of the file bytes
    line: int = 1
    # PowerShell (SPEC §3.10): the function to call once `path` is dot-sourced (a .ps1) or
    # imported (a module's .psd1/.psm1); None runs `path` as a script.
    entry: str | None = None
    ps_requires: PowerShellRequires | None = None  # its #Requires lines
    credentials: tuple[CredentialParam, ...] = ()  # mapped to secrets; never chat parameters
    # Python scripts that parse their own command line (argparse, click, typer; SPEC §3.10):
    # run as `python script.py <words> <argv>`, never through main(); None otherwise.
    cli_words: tuple[str, ...] | None = None
    exclusive: tuple[ExclusiveGroup, ...] = ()  # e.g. argparse mutually exclusive groups

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
