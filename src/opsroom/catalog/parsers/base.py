"""What every language parser returns: the metadata a script declares about itself."""

from __future__ import annotations

from dataclasses import dataclass

from opsroom.model.catalog import Severity
from opsroom.model.commands import (
    CredentialParam,
    ExclusiveGroup,
    ParamSpec,
    PowerShellRequires,
)


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong in one script, at a line (1-based)."""

    line: int
    message: str
    severity: Severity = Severity.ERROR


@dataclass(frozen=True, slots=True)
class SubCommand:
    """One of several commands a script's own parser declares (argparse sub-parsers, click
    and typer groups): each becomes the command `<file's name> <chat words>`."""

    words: tuple[str, ...] = ()  # what the script's parser expects (CommandSpec.cli_words)
    chat_words: tuple[str, ...] = ()  # the same words as they appear in the command name
    aliases: tuple[tuple[str, ...], ...] = ()  # other chat words for it (argparse `aliases=`)
    summary: str = ""
    description: str = ""
    params: tuple[ParamSpec, ...] = ()
    exclusive: tuple[ExclusiveGroup, ...] = ()
    line: int = 1


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
    # The convention the metadata came from (model.catalog.ScriptFile.read_as), for the report.
    read_as: str = ""
    # PowerShell (SPEC §3.10): the function the file is (dot-source it, then call this), its
    # #Requires, and its [pscredential]/[securestring] parameters (not chat parameters).
    entry: str | None = None
    ps_requires: PowerShellRequires | None = None
    credentials: tuple[CredentialParam, ...] = ()
    library: bool = False  # functions only, none of them the command: no command at all
    # Python scripts that parse their own command line (argparse, click, typer; SPEC §3.10):
    # run as `python script.py <argv>` (CommandSpec.cli_words); None for the main() convention.
    cli_words: tuple[str, ...] | None = None
    exclusive: tuple[ExclusiveGroup, ...] = ()
    subcommands: tuple[SubCommand, ...] = ()  # when set: one command each, none for the file
    problems: tuple[Problem, ...] = ()
