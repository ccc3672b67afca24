"""What a catalog reload may reuse: each script's parse, keyed by what it was read from.

A reload walks the whole tree (cheap: directory listings), but parses a script again only
when its fingerprint changed — for a git catalog the blob ids of the script and its sidecar,
for a folder their size, times and inode. Whatever else shapes the result (the folder
defaults in force, the language) is part of the key, so a hit gives exactly what parsing
again would give. A file without a fingerprint (a symlink, a PowerShell module whose
commands come from other files) is always parsed again.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from opsroom.model.catalog import CatalogIssue
from opsroom.model.commands import Language

Fingerprint = Callable[[str, Path], Hashable | None]
"""(path relative to the root, path on disk) → what identifies its content, or None."""

# Scripts whose result depends only on their own text (and sidecar and folder defaults).
_SELF_CONTAINED = (".ps1", ".py", ".sh")
_KNOWN = frozenset({"relpath", "path", "language", "sidecar", "defaults"})


class _Found(Protocol):
    @property
    def relpath(self) -> str: ...
    @property
    def path(self) -> Path: ...
    @property
    def sidecar(self) -> Path | None: ...


class _Loader(Protocol):
    issues: list[CatalogIssue]
    read_as: dict[str, str]

    def load(self, found: Any) -> Any:
        """Parse one found script."""
        ...


@dataclass(frozen=True, slots=True)
class _Entry:
    key: Hashable
    result: Any
    issues: tuple[CatalogIssue, ...]
    read_as: str | None


@dataclass(slots=True)
class ParseCache:
    """Parsed scripts of the previous load, and which ones the last load had to parse."""

    fingerprint: Fingerprint
    salt: Hashable = None  # changes every key at once (e.g. the repository's .gitattributes)
    _entries: dict[str, _Entry] = field(default_factory=dict)
    parsed: list[str] = field(default_factory=list)  # relpaths parsed by the last load
    _fields: dict[type, tuple[str, ...]] = field(default_factory=dict)
    _texts: dict[int, tuple[object, str]] = field(default_factory=dict)

    def begin(self) -> None:
        """Start a load: forget which files the previous one parsed."""
        self.parsed = []
        self._texts = {}

    def load(self, loader: _Loader, found: _Found) -> Any:
        """`loader.load(found)`, or the result it gave last time for the same input."""
        key = self._key(found)
        entry = self._entries.get(found.relpath)
        if key is not None and entry is not None and entry.key == key:
            loader.issues.extend(entry.issues)
            if entry.read_as is not None:
                loader.read_as[found.relpath] = entry.read_as
            return entry.result
        before = len(loader.issues)
        result = loader.load(found)
        self.parsed.append(found.relpath)
        if key is None:
            self._entries.pop(found.relpath, None)
        else:
            self._entries[found.relpath] = _Entry(
                key,
                result,
                tuple(loader.issues[before:]),
                loader.read_as.get(found.relpath),
            )
        return result

    def retain(self, relpaths: set[str]) -> None:
        """Forget files the last load did not find (deleted scripts)."""
        for gone in set(self._entries) - relpaths:
            del self._entries[gone]

    def _key(self, found: _Found) -> Hashable | None:
        executable = getattr(found, "language", None) is Language.EXECUTABLE
        if not executable and not found.relpath.lower().endswith(_SELF_CONTAINED):
            return None
        script = self.fingerprint(found.relpath, found.path)
        if script is None:
            return None
        side: Hashable | None = None
        if found.sidecar is not None:
            suffix = found.sidecar.name[len(found.path.name) :]
            side = self.fingerprint(found.relpath + suffix, found.sidecar)
            if side is None:
                return None
        # What else the walk found (language, folder defaults): the paths on disk differ
        # between work trees, the rest must be equal. A part this cache does not know (a
        # module's function, read with its module's other files) is never reused.
        names = self._fields.get(type(found))
        if names is None:
            names = tuple(f.name for f in dataclasses.fields(found))  # type: ignore[arg-type]
            self._fields[type(found)] = names
        rest: list[Hashable] = []
        for name in names:
            value = getattr(found, name)
            if name in ("path", "sidecar"):
                continue
            if name not in _KNOWN:
                if value is not None:
                    return None
            elif name == "defaults":
                rest.append(self._as_text(value))
            else:
                rest.append(value)
        return (script, side, tuple(rest), self.salt)

    def _as_text(self, value: object) -> str:
        """`repr(value)`, once per object per load (folder defaults are shared by a folder)."""
        memo = self._texts.get(id(value))
        if memo is None:
            memo = self._texts[id(value)] = (value, repr(value))  # holds it: ids stay unique
        return memo[1]


def stat_fingerprint(relpath: str, path: Path) -> Hashable | None:
    """A folder catalog's fingerprint: size, modification and change times, inode."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return None  # its target may change without the link changing
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
