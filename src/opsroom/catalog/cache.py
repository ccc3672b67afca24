"""What a catalog reload may reuse: each script's parse, keyed by what it was read from.

A reload walks the whole tree (cheap: directory listings), but parses a script again only
when its fingerprint changed — for a git catalog the blob ids of the script and its sidecar,
for a folder their size, times and inode. Whatever else shapes the result (the folder
defaults in force, the language) is part of the key, so a hit gives exactly what parsing
again would give. A file without a fingerprint (a symlink, a PowerShell module whose
commands come from other files) is always parsed again. With `stored` (catalog/stored.py)
the parses also outlive the process: the next start parses only what changed meanwhile.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from opsroom.catalog.naming import script_suffix
from opsroom.catalog.stored import Kept, StoredParses
from opsroom.model.catalog import CatalogIssue
from opsroom.model.commands import Language

Fingerprint = Callable[[str, Path], Hashable | None]
"""(path relative to the root, path on disk) → what identifies its content, or None."""

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
    # Parses kept on disk for the next process start (catalog/stored.py); None: memory only.
    stored: StoredParses | None = None

    def begin(self) -> None:
        """Start a load: forget which files the previous one parsed."""
        self.parsed = []
        self._texts = {}

    def load(self, loader: _Loader, found: _Found) -> Any:
        """`loader.load(found)`, or the result it gave last time for the same input."""
        key = self._key(found)
        entry = self._entries.get(found.relpath)
        if key is not None and entry is not None and entry.key == key:
            return _reuse(loader, found.relpath, entry)
        stored_key = None
        if key is not None and self.stored is not None:
            kept = self.stored.unchanged(found.relpath, key)
            if kept is None:
                stored_key = self.stored.key(found.relpath, found.path, found.sidecar, key)
                if stored_key is not None:
                    kept = self.stored.get(found.relpath, stored_key)
            if kept is not None:
                self._entries[found.relpath] = _Entry(key, kept.result, kept.issues, kept.read_as)
                return _reuse(loader, found.relpath, kept)
        before = len(loader.issues)
        result = loader.load(found)
        self.parsed.append(found.relpath)
        if key is None:
            self._entries.pop(found.relpath, None)
        else:
            entry = self._entries[found.relpath] = _Entry(
                key,
                result,
                tuple(loader.issues[before:]),
                loader.read_as.get(found.relpath),
            )
            if self.stored is not None and stored_key is not None:
                kept = Kept(stored_key, entry.result, entry.issues, entry.read_as)
                self.stored.put(found.relpath, kept)
        return result

    def retain(self, relpaths: set[str]) -> None:
        """Forget files the last load did not find (deleted scripts)."""
        for gone in set(self._entries) - relpaths:
            del self._entries[gone]
        if self.stored is not None:
            self.stored.retain(relpaths)

    def _key(self, found: _Found) -> Hashable | None:
        # A script (of any language) or a program depends only on its own text, sidecar and
        # folder defaults; what else the walk finds (a module's function) is not reused.
        executable = getattr(found, "language", None) is Language.EXECUTABLE
        if not executable and script_suffix(found.relpath.rsplit("/", 1)[-1]) is None:
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


def _reuse(loader: _Loader, relpath: str, entry: _Entry | Kept) -> Any:
    """A stored result, with the issues and the reading it had when it was parsed."""
    loader.issues.extend(entry.issues)
    if entry.read_as is not None:
        loader.read_as[relpath] = entry.read_as
    return entry.result


# A file system's coarsest time stamps (FAT's modification time) tick every 2 seconds.
SETTLED_NS = 2_000_000_000


def stat_settled(key: Hashable, now_ns: int) -> bool:
    """Whether the files of a folder catalog's key (`stat_fingerprint`s) last changed a tick
    before `now_ns`: any later change gives them another status time, so another key."""
    script, side = cast(tuple[Hashable, Hashable], key)[:2]
    for fingerprint in (script, side):
        if fingerprint is None:
            continue
        _, mtime_ns, ctime_ns, _ = cast(tuple[int, int, int, int], fingerprint)
        if max(mtime_ns, ctime_ns) >= now_ns - SETTLED_NS:
            return False
    return True


def stat_fingerprint(relpath: str, path: Path) -> Hashable | None:
    """A folder catalog's fingerprint: size, modification and change times, inode."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return None  # its target may change without the link changing
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
