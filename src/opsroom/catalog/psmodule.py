"""PowerShell module folders → one command per exported function (SPEC §3.10).

A folder is a module when it holds a `.psm1` named like the folder (`AdTools/AdTools.psm1`,
or `AdTools/1.2.0/AdTools.psm1`), or a `.psd1` named like it whose RootModule is a `.psm1`
there. A helper `.psm1` in a folder of scripts (`scripts/Common.psm1`) is not a module: the
scripts beside it stay commands. The `.ps1` files of a module are its own, never commands.

Exported, in SPEC order: the manifest's FunctionsToExport; else the module's literal
`Export-ModuleMember -Function`; else the functions of a `Public/` folder it dot-sources; else
every function it defines (those of its .ps1 files only when it dot-sources files). Each one is
the command `<module path> <function>`; the runner imports the module by path and calls it.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from pathlib import Path

from opsroom.catalog.encoding import decode_script
from opsroom.catalog.naming import SIDECAR_SUFFIX, command_name
from opsroom.catalog.parsers.base import ParsedScript, Problem
from opsroom.catalog.parsers.powershell import PsFile, PsFunction, read_file
from opsroom.catalog.parsers.psmodule import Manifest, read_manifest, read_module_script
from opsroom.model.catalog import Severity
from opsroom.model.commands import ModuleRequirement, PowerShellRequires

_VERSION_FOLDER = re.compile(r"^\d+(?:\.\d+){1,3}$")


@dataclass(frozen=True, slots=True)
class ModuleCommand:
    """One exported function, ready for the catalog loader."""

    name: str  # `<module path> <function>`
    relpath: str  # the file defining it: where its problems are reported
    import_path: str  # the .psd1 (or .psm1) the runner imports
    parsed: ParsedScript
    directives_source: str  # text whose `# opsroom:` lines apply: its own file, else the .psm1
    sidecar_rel: str  # where its sidecar is, or would be
    sidecar: Path | None  # the sidecar, when there is one
    data: bytes  # every file of the module: its script_hash covers them all


@dataclass(frozen=True, slots=True)
class Module:
    """A module folder as read: its commands, and problems that belong to no one function."""

    commands: tuple[ModuleCommand, ...]
    problems: tuple[tuple[str, Problem], ...]  # (relpath, problem)


def _stem(name: str) -> str:
    return name[: name.rfind(".")] if "." in name else name


def _module_stems(folder: Path) -> set[str]:
    """The names a module's files may have: the folder's, or `Name` of `Name/1.2.0/`."""
    wanted = {folder.name.lower()}
    if _VERSION_FOLDER.match(folder.name):
        wanted.add(folder.parent.name.lower())
    return wanted


def module_file(folder: Path, names: Collection[str]) -> str | None:
    """The `.psm1` that makes `folder` a module, or None when it is no module."""
    wanted = _module_stems(folder)
    by_lower = {n.lower(): n for n in names}
    for stem in wanted:
        if f"{stem}.psm1" in by_lower:
            return by_lower[f"{stem}.psm1"]
        manifest = by_lower.get(f"{stem}.psd1")
        if manifest is not None:
            try:
                text = decode_script((folder / manifest).read_bytes())
            except OSError:
                continue
            root = read_manifest(text).root_module
            if root and root.lower().endswith(".psm1") and root.lower() in by_lower:
                return by_lower[root.lower()]
    return None


def _module_name(folder_rel: str) -> str:
    parts = folder_rel.strip("/").split("/")
    if len(parts) > 1 and _VERSION_FOLDER.match(parts[-1]):
        parts = parts[:-1]
    return "/".join(parts)


def _ps1_files(folder: Path) -> list[Path]:
    """The module's .ps1 files, sorted; Pester tests and hidden folders left out."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            lower = name.lower()
            if lower.endswith(".ps1") and not lower.endswith(".tests.ps1"):
                out.append(Path(dirpath) / name)
    return out


def _merge(*parts: PowerShellRequires | None) -> PowerShellRequires | None:
    found = [p for p in parts if p is not None]
    if not found:
        return None
    modules: dict[str, ModuleRequirement] = {}
    for p in found:
        for m in p.modules:
            modules.setdefault(m.name.lower(), m)
    versions = [p.version for p in found if p.version]
    return PowerShellRequires(
        tuple(modules.values()),
        max(versions, key=_version_key) if versions else None,
        tuple(dict.fromkeys(e for p in found for e in p.editions)),
        any(p.run_as_admin for p in found),
    )


def _version(text: str) -> str:
    return text if "." in text else f"{text}.0"


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(n) if n.isdigit() else 0 for n in text.split("."))


def _matches(patterns: tuple[str, ...], name: str) -> bool:
    return any(fnmatch.fnmatchcase(name.lower(), p.lower()) for p in patterns)


@dataclass(slots=True)
class _Defined:
    function: PsFunction
    file: PsFile
    relpath: str
    own_file: bool  # the file defines this function alone (Public/Get-X.ps1)
    source: str


def read_module_folder(
    root: Path, folder_rel: str, names: Collection[str], *, escapes: Callable[[Path], bool]
) -> Module | None:
    """The module in `folder_rel` (relative to `root`, holding `names`); None: it is no module.

    The PowerShell record's `modules.reader` (model/languages.py): the catalog's walk asks
    it of a folder holding a `.psm1`.
    """
    psm1 = module_file(root / folder_rel, names)
    if psm1 is None:
        return None
    return read_module(root, folder_rel, psm1, escapes=escapes)


def read_module(
    root: Path, folder_rel: str, psm1: str, *, escapes: Callable[[Path], bool]
) -> Module:
    """Read the module whose folder is `folder_rel` (relative to `root`) and root is `psm1`.

    `escapes` tells a file that, its symlinks followed, lies outside the catalog: refused.
    """
    folder = root / folder_rel
    prefix = folder_rel.rstrip("/") + "/" if folder_rel.strip("/") else ""
    problems: list[tuple[str, Problem]] = []
    chunks: list[bytes] = []

    def read(path: Path) -> str | None:
        rel = prefix + path.relative_to(folder).as_posix()
        if escapes(path):
            problems.append(
                (rel, Problem(1, "symlink to a file outside the catalog folder: refused"))
            )
            return None
        try:
            data = path.read_bytes()
        except OSError as e:
            problems.append((rel, Problem(1, f"cannot read: {e.strerror or e}")))
            return None
        chunks.append(data)
        return decode_script(data)

    psm1_source = read(folder / psm1)
    if psm1_source is None:
        return Module((), tuple(problems))
    script = read_module_script(psm1_source)
    # The manifest is named like the .psm1, or like the module when its RootModule names it.
    stems = {_stem(psm1).lower(), *_module_stems(folder)}
    manifest_name: str | None = None
    manifest = Manifest()
    for name in sorted(os.listdir(folder)):
        if not name.lower().endswith(".psd1") or _stem(name).lower() not in stems:
            continue
        manifest_source = read(folder / name)
        if manifest_source is None:
            continue
        found = read_manifest(manifest_source)
        if (
            _stem(name).lower() == _stem(psm1).lower()
            or (found.root_module or "").lower() == psm1.lower()
        ):
            manifest_name, manifest = name, found
            problems += [(prefix + name, p) for p in found.problems]
            break
    import_path = prefix + (manifest_name or psm1)

    defined = [
        _Defined(f, script.file, prefix + psm1, False, psm1_source) for f in script.file.functions
    ]
    public: set[str] = set()
    if script.dot_sources:
        for path in _ps1_files(folder):
            source = read(path)
            if source is None:
                continue
            rel = prefix + path.relative_to(folder).as_posix()
            file = read_file(source)
            own = len(file.functions) == 1
            for f in file.functions:
                defined.append(
                    _Defined(
                        f, file, rel, own and f.name.lower() == _stem(path.name).lower(), source
                    )
                )
                if "public" in (part.lower() for part in path.relative_to(folder).parts[:-1]):
                    public.add(f.name.lower())

    exported = _exported(
        defined, manifest, script.exports, public if script.mentions_public else set()
    )
    known = {d.function.name.lower() for d in defined}
    if manifest.functions is not None:
        for pattern in manifest.functions:
            if not any(fnmatch.fnmatchcase(n, pattern.lower()) for n in known):
                message = f"FunctionsToExport names {pattern}, which the module does not define"
                problems.append(
                    (
                        prefix + (manifest_name or ""),
                        Problem(manifest.functions_line, message, Severity.WARNING),
                    )
                )

    data = b"".join(chunks)
    from_manifest = None
    if manifest.required_modules or manifest.powershell_version:
        version = manifest.powershell_version
        from_manifest = PowerShellRequires(
            manifest.required_modules, _version(version) if version else None
        )
    module_requires = _merge(script.file.requires, from_manifest)
    module_path = _module_name(folder_rel)
    commands: list[ModuleCommand] = []
    seen: set[str] = set()
    for d in exported:
        key = d.function.name.lower()
        if key in seen:
            continue  # defined twice: PowerShell keeps the last, the catalog the first
        seen.add(key)
        before = [g for g in d.file.comment_groups if g[-1].end_point.row < d.function.start_row]
        parsed = d.function.read(before, d.file.comment_groups if d.own_file else [])
        requires = _merge(module_requires, d.file.requires if d.file is not script.file else None)
        parsed = replace(
            parsed,
            entry=d.function.name,
            ps_requires=requires,
            read_as="module",
            problems=tuple(sorted((*d.file.problems, *parsed.problems), key=lambda p: p.line))
            if d.file is not script.file
            else parsed.problems,
        )
        # Beside its own file (Public/Get-X.ps1.opsroom.toml), else named for it in the folder.
        if d.own_file:
            sidecar_rel = d.relpath + SIDECAR_SUFFIX
        else:
            sidecar_rel = prefix + d.function.name + SIDECAR_SUFFIX
        sidecar = root / sidecar_rel
        commands.append(
            ModuleCommand(
                name=command_name(f"{module_path}/{d.function.name}"),
                relpath=d.relpath,
                import_path=import_path,
                parsed=parsed,
                directives_source=d.source,
                sidecar_rel=sidecar_rel,
                sidecar=sidecar if sidecar.is_file() else None,
                data=data,
            )
        )
    if not commands:
        problems.append(
            (prefix + psm1, Problem(1, "module exports no function: no command", Severity.WARNING))
        )
    problems += [(prefix + psm1, p) for p in script.file.problems]
    return Module(tuple(commands), tuple(problems))


def _exported(
    defined: list[_Defined],
    manifest: Manifest,
    exports: tuple[str, ...] | None,
    public: set[str],
) -> list[_Defined]:
    if manifest.functions is not None:
        return [d for d in defined if _matches(manifest.functions, d.function.name)]
    if exports is not None:
        return [d for d in defined if _matches(exports, d.function.name)]
    if public:
        return [d for d in defined if d.function.name.lower() in public]
    return defined
