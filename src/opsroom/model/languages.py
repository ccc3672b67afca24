"""One `LanguageSupport` record per script language: all opsroom knows about the language.

The record is data, so every room may read it and none needs another room to: the catalog
finds scripts by `suffixes`, reads their `# opsroom:` lines with `comments` and their help
and parameters with `parser`, and writes new ones from `scaffold`; the runner starts them
as `launch` says; the router matches patterns in the language's dialect. `parser` and
`scaffold` name the catalog's code as `module:attribute`, the way an entry point does, so
this module imports nothing of the catalog; the catalog resolves them on first use (the
PowerShell grammar is loaded only for a catalog holding PowerShell).

Adding a language is adding one record to `_BUILT_IN` (or `register()` for one kept
outside opsroom); docs/contributing.md walks through it with shell as the example.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from opsroom.model.commands import CommandSpec, Language


class Passing(StrEnum):
    """How parameter values reach a script (every script also gets `OPSROOM_PARAMS`)."""

    # A bootstrap (runner/bootstrap/) reads the values as JSON from OPSROOM_PARAMS and calls
    # the script with them, typed (Python's main(), PowerShell's param()).
    BOOTSTRAP = "bootstrap"
    # One OPSROOM_ARG_<NAME> variable per parameter, defaults filled in; with a sidecar
    # `argv` also as command-line options (docs/adopting.md).
    ENV = "env"


@dataclass(frozen=True, slots=True)
class CommentSyntax:
    """Where a script's header comments are, for its `# opsroom:` directives (SPEC §3.5)."""

    line: str = "#"  # what starts a comment line; a directive is `<line> opsroom: key = value`
    block: tuple[str, str] | None = None  # a block comment stepped over (`<#`, `#>`)
    docstring: bool = False  # a Python module docstring is stepped over


@dataclass(frozen=True, slots=True)
class Interpreter:
    """The program that runs a language's scripts, and how it is found on this host."""

    setting: str | None = None  # the [runner] key that names it: `bash`, `python`, `pwsh`
    # The program when no key names it (`awk`); with neither: the Python running opsroom.
    program: str | None = None
    flags: tuple[str, ...] = ()  # between the program and the file it runs
    # Refuse a run before it starts when the program is not on this host, and say so in
    # help: PowerShell scripts often sit in catalogs served from hosts without pwsh. A
    # missing interpreter that is not `required` fails the job when it starts.
    required: bool = False


@dataclass(frozen=True, slots=True)
class LaunchRecipe:
    """How the runner starts a script of the language: data it interprets, never code.

    argv = interpreter program, its flags, then the bootstrap and the script (`BOOTSTRAP`)
    or the script and any sidecar options (`ENV`). A script whose parser found it reads its
    own command line (argparse, click, typer: `CommandSpec.cli_words`) gets the values as
    argv after the script instead, whatever the recipe says.
    """

    interpreter: Interpreter | None  # None: the file is a program and runs itself
    passing: Passing
    bootstrap: str | None = None  # file name in runner/bootstrap/, for `Passing.BOOTSTRAP`
    env: tuple[tuple[str, str], ...] = ()  # set for every run, e.g. PYTHONUNBUFFERED=1
    # The interpreter is a Python taking no flags: a warm fork server may start the job
    # instead of a fresh interpreter (runner/pool.py, `[runner] python_pool`).
    warm: bool = False
    # A script may name its own dependencies (PEP 723's `# /// script` block, read by the
    # parser into `CommandSpec.requires`): it runs with the interpreter of a cached
    # environment holding them, built when the catalog is deployed (runner/pep723.py).
    own_environment: bool = False

    def __post_init__(self) -> None:
        if (self.bootstrap is None) == (self.passing is Passing.BOOTSTRAP):
            raise ValueError("a bootstrap is named exactly when values pass through one")


@dataclass(frozen=True, slots=True)
class ModuleFolders:
    """A folder that is one module of the language, whose functions are the commands.

    `marks` are file suffixes (lower-case) that make a folder a candidate; `reader` names
    the catalog's `module:function` that decides whether it is one and reads it, called as
    `f(root, folder_rel, names, escapes=...)` and returning a catalog Module, or None for a
    folder that is no module. The language's own script files in a module folder are the
    module's, never commands of their own.
    """

    marks: tuple[str, ...]
    reader: str


@dataclass(frozen=True, slots=True)
class LanguageSupport:
    """Everything opsroom needs to find, read, scaffold and run one script language."""

    language: Language
    label: str  # as people write it: "PowerShell", "Python", "shell"
    kind: str  # in errors: "a shell script"
    suffixes: tuple[str, ...]  # lower-case, with the dot: (".sh",)
    launch: LaunchRecipe
    comments: CommentSyntax = CommentSyntax()
    # `module:function` of the catalog reading help and parameters statically, called as
    # `f(source, stem=<file name without suffix>, thorough=<catalog check>)` and returning a
    # catalog ParsedScript; None: a sidecar says it all (programs).
    parser: str | None = None
    scaffold: str | None = None  # `module:attribute` of a catalog Scaffold for `opsroom new`
    # Files never taken for commands though they have a suffix above (fnmatch, lower-case):
    # the tests that sit beside scripts.
    test_files: tuple[str, ...] = ()
    coding_declaration: bool = False  # honours a PEP 263 `# coding:` line when decoding
    # Patterns are a case-insensitive search (PowerShell's -match), not a whole-value match.
    pattern_search: bool = False
    modules: ModuleFolders | None = None  # folders read as one module (PowerShell's .psm1)


SHELL = LanguageSupport(
    language=Language.SHELL,
    label="shell",
    kind="a shell script",
    suffixes=(".sh",),
    parser="opsroom.catalog.languages:read_shell",
    scaffold="opsroom.catalog.scaffold:SHELL",
    # the scaffold's `_test_<name>.sh` is skipped already: a leading `_` hides a file
    launch=LaunchRecipe(Interpreter(setting="bash"), Passing.ENV),
)
PYTHON = LanguageSupport(
    language=Language.PYTHON,
    label="Python",
    kind="a Python script",
    suffixes=(".py",),
    comments=CommentSyntax(docstring=True),
    parser="opsroom.catalog.languages:read_python",
    scaffold="opsroom.catalog.scaffold:PYTHON",
    test_files=("test_*.py",),
    coding_declaration=True,
    launch=LaunchRecipe(
        Interpreter(setting="python"),
        Passing.BOOTSTRAP,
        bootstrap="python_bootstrap.py",
        env=(("PYTHONUNBUFFERED", "1"), ("PYTHONDONTWRITEBYTECODE", "1")),
        warm=True,
        own_environment=True,
    ),
)
POWERSHELL = LanguageSupport(
    language=Language.POWERSHELL,
    label="PowerShell",
    kind="a PowerShell script",
    suffixes=(".ps1",),
    comments=CommentSyntax(block=("<#", "#>")),
    parser="opsroom.catalog.languages:read_powershell",
    scaffold="opsroom.catalog.scaffold:POWERSHELL",
    test_files=("*.tests.ps1",),
    pattern_search=True,
    modules=ModuleFolders(marks=(".psm1",), reader="opsroom.catalog.psmodule:read_module_folder"),
    launch=LaunchRecipe(
        Interpreter(
            setting="pwsh",
            flags=("-NoLogo", "-NoProfile", "-NonInteractive", "-File"),
            required=True,
        ),
        Passing.BOOTSTRAP,
        bootstrap="bootstrap.ps1",
    ),
)
# Any other executable file with a sidecar beside it (SPEC §3.1): no suffix, no parser.
PROGRAM = LanguageSupport(
    language=Language.EXECUTABLE,
    label="program",
    kind="a program",
    suffixes=(),
    launch=LaunchRecipe(None, Passing.ENV),
)

# The one list. Its order is the report's (`opsroom catalog report`).
_BUILT_IN: tuple[LanguageSupport, ...] = (POWERSHELL, PYTHON, SHELL, PROGRAM)


@dataclass(frozen=True, slots=True)
class _Registry:
    records: tuple[LanguageSupport, ...]
    by_language: dict[str, LanguageSupport]
    by_suffix: dict[str, LanguageSupport]

    @classmethod
    def of(cls, records: tuple[LanguageSupport, ...]) -> _Registry:
        by_suffix = {s: r for r in records for s in r.suffixes}
        return cls(records, {r.language: r for r in records}, by_suffix)


# Replaced whole on register(), never changed in place: a reader sees one state or the other.
_registry = _Registry.of(_BUILT_IN)


def languages() -> tuple[LanguageSupport, ...]:
    """Every record: the built-in ones in order, then those registered."""
    return _registry.records


def language_support(language: str) -> LanguageSupport | None:
    """The record of `language`; None for a built-in command (nothing to run)."""
    return _registry.by_language.get(language)


def for_suffix(suffix: str) -> LanguageSupport | None:
    """The record of the language whose scripts end in `suffix` (`.sh`), any case."""
    return _registry.by_suffix.get(suffix.lower())


def own_environment(spec: CommandSpec) -> bool:
    """Does `spec` run in an environment built from the dependencies it names (PEP 723)?"""
    support = language_support(spec.language)
    return support is not None and support.launch.own_environment and bool(spec.requires)


def register(support: LanguageSupport) -> None:
    """Add a language; ValueError when its name or a suffix is taken or malformed."""
    global _registry
    taken = _registry.by_language.get(support.language)
    if taken is not None or support.language is Language.BUILTIN:
        raise ValueError(f"language {support.language.value!r} is already defined")
    for suffix in support.suffixes:
        if not suffix.startswith(".") or suffix != suffix.lower() or len(suffix) < 2:
            raise ValueError(f"{suffix!r}: a suffix is lower-case and starts with '.'")
        owner = _registry.by_suffix.get(suffix)
        if owner is not None:
            raise ValueError(f"{suffix} already belongs to {owner.label}")
    _registry = _Registry.of((*_registry.records, support))


def unregister(language: str) -> None:
    """Remove a registered language (a built-in one stays)."""
    global _registry
    records = tuple(r for r in _registry.records if r.language != language or r in _BUILT_IN)
    _registry = _Registry.of(records)
