"""Load a catalog folder: every script → one immutable CommandSpec (SPEC §3).

A broken script is reported as an issue and skipped; it never stops the others loading.
The walk is sorted, so the same tree always gives the same catalog and the same issues
(a duplicate is always reported on the later path, naming the earlier one).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
from collections.abc import Generator, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsroom.catalog.languages import module_reader_of, reader_of
from opsroom.catalog.naming import (
    FOLDER_DEFAULTS,
    SIDECAR_SUFFIX,
    command_name,
    is_candidate,
    is_hidden_name,
    named_like_folder,
    script_suffix,
)
from opsroom.errors import CatalogError
from opsroom.model.catalog import Catalog, CatalogIssue, ScriptFile, Severity
from opsroom.model.commands import (
    ArgvStyle,
    Builtin,
    CommandSpec,
    Language,
    ParamSpec,
    ParamType,
)
from opsroom.model.languages import (
    PROGRAM,
    LanguageSupport,
    Passing,
    for_suffix,
    language_support,
    languages,
)
from opsroom.model.patterns import PatternError, check_pattern

if TYPE_CHECKING:
    # What reading a script needs is imported when a script is read: a restart whose
    # scripts are all in the parse cache reads none (catalog/cache.py).
    from opsroom.catalog.cache import ParseCache
    from opsroom.catalog.parsers.base import Problem, SubCommand
    from opsroom.catalog.psmodule import ModuleCommand
    from opsroom.catalog.sidecar import ParamOverride

# Single-word names the router answers itself (SPEC §4.3); a script may not shadow them.
BUILTIN_NAMES = frozenset(b.value for b in Builtin)
# Marks folder defaults that were refused: the scripts beneath are not loaded without them
# (they may carry an approval), rather than loaded as if the folder had none.
_REFUSED_DEFAULTS = "\0refused"


def bundled_catalog_path() -> Path:
    """The example catalog shipped inside the package."""
    return Path(__file__).resolve().parent.parent / "examples"


def catalog_commit(root: Path) -> str | None:
    """HEAD of `root` when it is itself the top of a git work tree, else None.

    A folder inside some other repository (the bundled examples inside opsroom's own
    clone, say) records no commit: that commit says nothing about these scripts.
    """
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--show-toplevel", "--verify", "-q", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.splitlines()
    if done.returncode != 0 or len(lines) != 2 or not lines[1].strip():
        return None
    if os.path.realpath(lines[0]) != os.path.realpath(root):
        return None
    return lines[1].strip()


# Set by load_catalog for the parsers it calls (see its `thorough`).
_THOROUGH: ContextVar[bool] = ContextVar("opsroom_thorough_parse", default=False)


@dataclass(frozen=True, slots=True)
class _Found:
    relpath: str
    path: Path
    language: Language
    sidecar: Path | None
    defaults: Mapping[str, tuple[Any, str, int]]  # key -> (value, file, line)
    unit: ModuleCommand | None = None  # a PowerShell module's function (read with its module)


class _Loader:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.real_root = os.path.realpath(root)
        self.issues: list[CatalogIssue] = []
        self.read_as: dict[str, str] = {}  # relpath -> how its metadata was read

    def escapes(self, path: str | Path) -> bool:
        """Whether `path`, with every symlink followed, lies outside the catalog folder.

        A catalog is what its repository holds and its reviewers read: a symlink out of it
        would run (or configure a command from) a file nobody reviewed as part of it.
        """
        real = os.path.realpath(path)
        return os.path.commonpath([self.real_root, real]) != self.real_root

    def issue(self, path: str, problem: Problem) -> None:
        self.issues.append(CatalogIssue(path, problem.line, problem.message, problem.severity))

    def issue_on_file(self, path: str, message: str, severity: Severity = Severity.ERROR) -> None:
        """An issue with a file as a whole (line 1), found without reading a script."""
        self.issues.append(CatalogIssue(path, 1, message, severity))

    def walk(
        self,
        folder: Path,
        prefix: str,
        defaults: Mapping[str, tuple[Any, str, int]],
        in_module: LanguageSupport | None = None,
    ) -> Iterator[_Found]:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            self.issues.append(CatalogIssue(prefix.rstrip("/") or ".", 1, f"cannot read: {e}"))
            return
        names = {e.name for e in entries}
        if FOLDER_DEFAULTS in names:
            defaults = self._folder_defaults(folder / FOLDER_DEFAULTS, prefix, defaults)
        if in_module is None:
            in_module = yield from self._modules(prefix, names, defaults)
        for entry in entries:
            name = entry.name
            if is_hidden_name(name):
                continue
            relpath = prefix + name
            if entry.is_dir(follow_symlinks=False):
                yield from self.walk(Path(entry.path), relpath + "/", defaults, in_module)
                continue
            if entry.is_symlink() and entry.is_dir():
                # Symlinked folders are never walked (their scripts would load twice, or
                # loop); one that points outside the catalog is said to be refused.
                if self.escapes(entry.path):
                    self.issue_on_file(relpath, _outside("folder"))
                continue
            if name.endswith(SIDECAR_SUFFIX):
                if (
                    name != FOLDER_DEFAULTS
                    and not in_module  # a module function's sidecar is named for the function
                    and name[: -len(SIDECAR_SUFFIX)] not in names
                ):
                    self.issue_on_file(
                        relpath, "sidecar without a script beside it", Severity.WARNING
                    )
                continue
            suffix = script_suffix(name)
            if in_module is not None and suffix in in_module.suffixes:
                continue  # the module's own script files are the module's, not commands
            has_sidecar = name + SIDECAR_SUFFIX in names
            if suffix is None and not has_sidecar:
                continue
            executable = suffix is None and entry.is_file() and os.access(entry.path, os.X_OK)
            if not is_candidate(relpath, has_sidecar=has_sidecar, executable=executable):
                if suffix is None:
                    self.issue_on_file(
                        relpath + SIDECAR_SUFFIX,
                        f"sidecar for '{name}', which is not an executable file",
                        Severity.WARNING,
                    )
                continue
            if entry.is_symlink() and self.escapes(entry.path):
                self.issue_on_file(relpath, _outside("file"))
                continue
            language = (for_suffix(suffix or "") or PROGRAM).language
            sidecar = Path(entry.path + SIDECAR_SUFFIX) if has_sidecar else None
            yield _Found(relpath, Path(entry.path), language, sidecar, defaults)

    def _modules(
        self, prefix: str, names: set[str], defaults: Mapping[str, tuple[Any, str, int]]
    ) -> Generator[_Found, None, LanguageSupport | None]:
        """One `_Found` per exported function when the folder is a module of some language.

        Returns that language's record (None: the folder is no module), as each record's
        `modules` says: its marks make the folder a candidate, its reader decides.
        """
        lower = [n.lower() for n in names]
        for support in languages():
            if support.modules is None:
                continue
            if not any(n.endswith(support.modules.marks) for n in lower):
                continue
            reader = module_reader_of(support)
            assert reader is not None  # the record has `modules`
            module = reader(self.root, prefix, names, escapes=self.escapes)
            if module is None:
                continue
            for rel, problem in module.problems:
                self.issue(rel, problem)
            for u in module.commands:
                yield _Found(
                    u.relpath, self.root / u.relpath, support.language, u.sidecar, defaults, u
                )
            return support
        return None

    def _folder_defaults(
        self, path: Path, prefix: str, inherited: Mapping[str, tuple[Any, str, int]]
    ) -> Mapping[str, tuple[Any, str, int]]:
        from opsroom.catalog.sidecar import read_folder_defaults

        rel = prefix + FOLDER_DEFAULTS
        if self.escapes(path):
            self.issue_on_file(rel, _outside("file"))
            return {**inherited, _REFUSED_DEFAULTS: (None, rel, 1)}
        try:
            parsed = read_folder_defaults(path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError) as e:
            self.issue_on_file(rel, f"cannot read: {e}")
            return inherited
        for p in parsed.problems:
            self.issue(rel, p)
        merged = dict(inherited)
        for key, value in parsed.values.items():
            merged[key] = (value, rel, parsed.lines.get(key, 1))
        return merged

    def load(
        self, found: _Found
    ) -> tuple[CommandSpec | _Family | None, list[tuple[str, int, str]]]:
        """One command (None when it has errors) and the names it claims: (word, line, kind)."""
        from opsroom.catalog.directives import Directives, read_directives
        from opsroom.catalog.encoding import decode_script
        from opsroom.catalog.parsers.base import ParsedScript, Problem
        from opsroom.catalog.sidecar import Sidecar, apply_params, map_credentials, read_sidecar

        rel = found.relpath
        refused = found.defaults.get(_REFUSED_DEFAULTS)
        if refused is not None:
            why = f"not loaded: its folder defaults {refused[1]} were refused"
            self.issue(rel, Problem(1, why))
            return None, []
        problems: list[Problem] = []
        sidecar_problems: list[Problem] = []
        support = language_support(found.language) or PROGRAM
        unit = found.unit
        try:
            data = unit.data if unit is not None else found.path.read_bytes()
        except OSError as e:
            self.issue(rel, Problem(1, f"cannot read: {e.strerror or e}"))
            return None, []
        parsed = ParsedScript()
        directives = Directives()
        if unit is not None:  # read with its module
            parsed = unit.parsed
            problems += parsed.problems
            directives = read_directives(unit.directives_source, support.comments)
            problems += directives.problems
        elif (read := reader_of(support)) is not None:
            source = decode_script(data, python=support.coding_declaration)
            stem = found.path.name.rsplit(".", 1)[0]
            parsed = read(source, stem=stem, thorough=_THOROUGH.get())
            problems += parsed.problems
            directives = read_directives(source, support.comments)
            problems += directives.problems
        if parsed.library:  # PowerShell functions only, none of them the command: a warning
            self.read_as[rel] = parsed.read_as
            for problem in problems:
                self.issue(rel, problem)
            return None, []
        sidecar = Sidecar()
        sidecar_rel = unit.sidecar_rel if unit is not None else rel + SIDECAR_SUFFIX
        if found.sidecar is not None and self.escapes(found.sidecar):
            # Never run without the overrides (an approval, say) it was meant to have.
            sidecar_problems.append(Problem(1, _outside("file")))
        elif found.sidecar is not None:
            try:
                sidecar = read_sidecar(found.sidecar.read_text(encoding="utf-8-sig"))
            except (OSError, UnicodeDecodeError) as e:
                sidecar_problems.append(Problem(1, f"cannot read: {e}"))
            sidecar_problems += sidecar.problems
            if parsed.read_as == "getopts" and (sidecar.params or "argv" in sidecar.fields):
                # adopted (`opsroom catalog adopt`): the sidecar says what getopts reads
                problems = [p for p in problems if "catalog adopt" not in p.message]
            if "summary" in sidecar.fields:
                # the sidecar supplies what the script lacks
                problems = [
                    p
                    for p in problems
                    if p.severity is Severity.ERROR or "missing" not in p.message.lower()
                ]
        if support.parser is None and not sidecar.fields.get("summary"):
            sidecar_problems.append(
                Problem(1, "missing summary (set `summary` in the sidecar)", Severity.WARNING)
            )

        values: dict[str, Any] = {k: v[0] for k, v in found.defaults.items()}
        values.update(directives.values)
        values.update(sidecar.directives.values)

        if ("approvals" in values or "approval_ttl" in values) and "approval" not in values:
            key = "approvals" if "approvals" in values else "approval_ttl"
            line = sidecar.directives.lines.get(key) or directives.lines.get(key, 1)
            problems.append(Problem(line, f"{key} is set but approval (the role) is not"))

        params = parsed.params
        choices_from = values.get("choices_from")
        if choices_from is not None:
            params, cf_problem = _apply_choices_from(params, choices_from)
            if cf_problem:
                line = sidecar.directives.lines.get("choices_from") or directives.lines.get(
                    "choices_from", 1
                )
                in_sidecar = "choices_from" in sidecar.directives.values
                (sidecar_problems if in_sidecar else problems).append(Problem(line, cf_problem))
        # [pscredential]/[securestring] parameters are filled from the secrets a sidecar maps.
        credentials = map_credentials(
            parsed.credentials, sidecar.params, sidecar_rel.rsplit("/", 1)[-1]
        )
        problems += credentials.problems
        sidecar_problems += credentials.sidecar_problems
        params = apply_params(params, credentials.overrides)
        from_sidecar = {o.name: o.line for o in sidecar.params}
        for p in params:
            if p.name in from_sidecar:
                sidecar_problems += _param_problems(
                    dataclasses.replace(p, line=from_sidecar[p.name])
                )
            else:
                # a parser may report this itself (the PowerShell one does); say it once
                reported = {q.line for q in parsed.problems if "mandatory" in q.message}
                problems += [q for q in _param_problems(p) if q.line not in reported]
        problems += _duplicate_params(params)
        # Parsers report a pattern they cannot use at its own line, and a sidecar's pattern
        # was checked when it was read; this catches one that neither reported.
        sidecar_patterns = {o.name for o in sidecar.params if "pattern" in o.fields}
        said = " ".join(q.message for q in parsed.problems)
        problems += [
            problem
            for p in params
            if p.name not in sidecar_patterns and f"pattern {p.pattern!r}" not in said
            for problem in _pattern_problems(p, support)
        ]

        argv_style = sidecar.fields.get("argv")
        if argv_style is not None:
            sidecar_problems += _argv_problems(argv_style, params, support, from_sidecar)
        self.read_as[rel] = parsed.read_as or ("sidecar" if support.parser is None else "")
        for problem in problems:
            self.issue(rel, problem)
        for problem in sidecar_problems:
            self.issue(sidecar_rel, problem)
        if any(p.severity is Severity.ERROR for p in (*problems, *sidecar_problems)):
            return None, []

        fields = sidecar.fields
        name = fields.get("name") or (unit.name if unit is not None else command_name(rel))
        aliases = tuple(values.get("aliases", ()))
        mapped = tuple(c.secret for c in credentials.credentials if c.secret)
        spec = CommandSpec(
            name=name,
            path=unit.import_path if unit is not None else rel,
            language=found.language,
            summary=fields.get("summary", parsed.summary),
            description=fields.get("description", parsed.description),
            params=params,
            examples=tuple(fields.get("examples", parsed.examples)),
            notes=fields.get("notes", parsed.notes),
            links=tuple(fields.get("links", parsed.links)),
            aliases=aliases,
            timeout=values.get("timeout"),
            approval=values.get("approval"),
            approvals=values.get("approvals", 1),
            approval_ttl=values.get("approval_ttl"),
            concurrency=values.get("concurrency"),
            secrets=tuple(dict.fromkeys((*values.get("secrets", ()), *mapped))),
            runs_on=values.get("runs_on"),
            rooms=tuple(values.get("rooms", ())),
            background=bool(values.get("background", False)),
            dry_run=bool(values.get("dry_run", False)) or parsed.should_process,
            should_process=parsed.should_process,
            hidden=bool(values.get("hidden", False)),
            owner=values.get("owner"),
            argv_style=argv_style,
            requires=parsed.requires,
            requires_python=parsed.requires_python,
            script_hash=hashlib.sha256(data).hexdigest(),
            line=parsed.summary_line,
            entry=parsed.entry,
            ps_requires=parsed.ps_requires,
            credentials=credentials.credentials,
            cli_words=parsed.cli_words,
            exclusive=parsed.exclusive,
        )
        alias_line = sidecar.directives.lines.get("aliases") or directives.lines.get("aliases", 1)
        claims = [(name, 1, "command name")]
        claims += [(a, alias_line, "alias") for a in aliases if a != name]
        if parsed.subcommands:
            subs = (
                _subcommand(spec, sub, alias_line, credentials.overrides)
                for sub in parsed.subcommands
            )
            return _Family(tuple(subs)), []
        return spec, claims


@dataclass(frozen=True, slots=True)
class _Family:
    """The commands of a script with sub-commands (SPEC §3.10), one per sub-command."""

    members: tuple[tuple[CommandSpec, list[tuple[str, int, str]]], ...]


def _subcommand(
    spec: CommandSpec, sub: SubCommand, alias_line: int, overrides: tuple[ParamOverride, ...]
) -> tuple[CommandSpec, list[tuple[str, int, str]]]:
    """`<file's name> <sub-command>`: the file's directives, the sub-command's own help and
    parameters; a file alias gives `<alias> <sub-command>`."""
    from opsroom.catalog.sidecar import apply_params

    words = " ".join(sub.chat_words)
    name = f"{spec.name} {words}"
    aliases = [f"{a} {words}" for a in spec.aliases]
    aliases += [f"{spec.name} {' '.join(w)}" for w in sub.aliases]
    aliases = [a for a in dict.fromkeys(aliases) if a != name]
    member = dataclasses.replace(
        spec,
        name=name,
        summary=sub.summary or spec.summary,
        description=sub.description,
        params=apply_params(sub.params, overrides),
        aliases=tuple(aliases),
        examples=(),
        cli_words=sub.words,
        exclusive=sub.exclusive,
        line=sub.line,
    )
    claims = [(name, sub.line, "command name")]
    claims += [(a, alias_line, "alias") for a in aliases]
    return member, claims


def _each_command(
    loader: _Loader, cache: ParseCache | None, root: Path
) -> Iterator[tuple[_Found, CommandSpec | None, list[tuple[str, int, str]]]]:
    """Each script found with its command, or with each of its sub-commands' in turn."""
    for found in loader.walk(root, "", {}):
        spec, claims = loader.load(found) if cache is None else cache.load(loader, found)
        if isinstance(spec, _Family):
            for member, member_claims in spec.members:
                yield found, member, member_claims
        else:
            yield found, spec, claims


def _apply_choices_from(
    params: tuple[ParamSpec, ...], value: str | Mapping[str, str]
) -> tuple[tuple[ParamSpec, ...], str | None]:
    if isinstance(value, str):
        for i, p in enumerate(params):
            if p.required:
                updated = dataclasses.replace(p, choices_from=value)
                return (*params[:i], updated, *params[i + 1 :]), None
        return params, "choices_from names no parameter and the script has no required one"
    result = list(params)
    for param_name, command in value.items():
        for i, p in enumerate(result):
            if p.name.lower() == param_name.lower():
                result[i] = dataclasses.replace(p, choices_from=command)
                break
        else:
            return params, f"choices_from: no parameter '{param_name}'"
    return tuple(result), None


def _argv_problems(
    style: ArgvStyle,
    params: tuple[ParamSpec, ...],
    support: LanguageSupport,
    sidecar_lines: Mapping[str, int],
) -> list[Problem]:
    """What stops the runner building this argv (sidecar `argv`, docs/adopting.md)."""
    from opsroom.catalog.parsers.base import Problem

    if support.launch.passing is not Passing.ENV:  # the values go to a bootstrap instead
        return [Problem(1, "argv applies to shell scripts and other executables only")]
    out = []
    positional = sorted(
        (p for p in params if p.position is not None), key=lambda p: p.position or 0
    )
    for p in positional[:-1]:
        if p.multiple:
            msg = f"argv: only the last positional parameter may take several values ('{p.name}')"
            out.append(Problem(sidecar_lines.get(p.name, 1), msg))
    if style is ArgvStyle.GETOPTS:
        for p in params:
            if p.position is None and _option_letter(p) is None:
                msg = (
                    f"argv = \"getopts\": parameter '{p.name}' needs a one-letter name or alias "
                    "(its getopts letter), or a position"
                )
                out.append(Problem(sidecar_lines.get(p.name, 1), msg))
    for p in params:
        if p.multiple and p.type in (ParamType.SWITCH, ParamType.BOOL) and p.position is None:
            msg = f"argv: flag '{p.name}' cannot take several values"
            out.append(Problem(sidecar_lines.get(p.name, 1), msg))
    return out


def _option_letter(p: ParamSpec) -> str | None:
    return next((w for w in (p.name, *p.aliases) if len(w) == 1 and w.isalnum()), None)


def _outside(kind: str) -> str:
    return f"symlink to a {kind} outside the catalog folder: refused"


def _pattern_problems(p: ParamSpec, support: LanguageSupport) -> list[Problem]:
    """A pattern chat values could not be matched against in linear time (model.patterns)."""
    from opsroom.catalog.parsers.base import Problem

    if p.pattern is None:
        return []
    try:
        check_pattern(p.pattern, ignore_case=support.pattern_search)
    except PatternError as e:
        return [Problem(p.line or 1, f"parameter '{p.name}': {e}")]
    return []


def _param_problems(p: ParamSpec) -> list[Problem]:
    from opsroom.catalog.parsers.base import Problem

    out = []
    if p.required and (p.default is not None or p.default_text is not None):
        out.append(Problem(p.line or 1, f"mandatory parameter '{p.name}' has a default"))
    if p.choices and p.default is not None:
        defaults = p.default if isinstance(p.default, tuple) else (p.default,)
        bad = [str(d) for d in defaults if str(d) not in p.choices]
        if bad:
            out.append(
                Problem(
                    p.line or 1,
                    f"default of '{p.name}' ({', '.join(bad)}) is not one of its choices",
                )
            )
    return out


def _duplicate_params(params: tuple[ParamSpec, ...]) -> list[Problem]:
    from opsroom.catalog.parsers.base import Problem

    # Chat matches parameter names case-insensitively (SPEC §4.2), so `Name` and `name` clash.
    seen: dict[str, str] = {}
    out = []
    for p in params:
        for word in (p.name, *p.aliases):
            key = word.lower()
            if key in seen and seen[key] != p.name:
                out.append(
                    Problem(
                        p.line or 1,
                        f"parameter name '{word}' clashes with "
                        f"'{seen[key]}' (names match case-insensitively)",
                    )
                )
            seen.setdefault(key, p.name)
    return out


def load_catalog(
    root: Path,
    *,
    commit: str | None = None,
    cache: ParseCache | None = None,
    thorough: bool = False,
) -> Catalog:
    """Read every command of the catalog at `root`; problems become issues, never raise.

    With a `cache` (a reload, catalog/cache.py) only scripts that changed are parsed again.
    `thorough` parses every Python script whole, so a syntax error anywhere in it is an
    issue (`catalog check`, a commit's check before it goes live); otherwise only what can
    declare the interface is parsed, and such an error shows when the script runs.
    """
    token = _THOROUGH.set(thorough)
    try:
        return _load_catalog(root, commit=commit, cache=cache)
    finally:
        _THOROUGH.reset(token)


def _load_catalog(root: Path, *, commit: str | None, cache: ParseCache | None) -> Catalog:
    root = Path(root)
    if not root.is_dir():
        raise CatalogError(f"{root}: catalog folder not found (or not a folder)")
    loader = _Loader(root)
    claimed: dict[str, str] = {}
    commands: list[CommandSpec] = []
    # relpath -> (language, names of the commands it gave); a module file may give several
    files: dict[str, tuple[Language, list[str]]] = {}
    for found, spec, claims in _each_command(loader, cache, root):
        gave = files.setdefault(found.relpath, (found.language, []))[1]
        if spec is None:
            continue
        clash = None
        for word, line, kind in claims:
            if kind == "command name" and word in BUILTIN_NAMES:
                clash = CatalogIssue(found.relpath, line, f"command name '{word}' is a built-in")
            elif word in claimed:
                why = ""
                if kind == "command name" and (
                    named_like_folder(found.relpath) or named_like_folder(claimed[word])
                ):
                    why = "; a file named like its folder takes the folder's name"
                clash = CatalogIssue(
                    found.relpath,
                    line,
                    f"duplicate {kind} '{word}' (already defined by {claimed[word]}{why})",
                )
            if clash:
                break
        if clash:
            loader.issues.append(clash)
            continue
        for word, _line, _kind in claims:
            claimed[word] = found.relpath
        commands.append(spec)
        gave.append(spec.name)
    commands.sort(key=lambda c: c.name)
    if cache is not None:
        cache.retain(set(files))
    return Catalog(
        root=str(root.resolve()),
        commands=tuple(commands),
        issues=tuple(loader.issues),
        commit=commit if commit is not None else catalog_commit(root),
        files=tuple(
            ScriptFile(p, lang, loader.read_as.get(p, ""), tuple(gave))
            for p, (lang, gave) in files.items()
        ),
    )
