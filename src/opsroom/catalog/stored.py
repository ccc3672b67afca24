"""Parsed scripts kept on disk, so a process start parses only what changed since the last one.

One file per catalog, in `[catalog] cache` (default `${XDG_CACHE_HOME:-~/.cache}/opsroom/
catalog`). Each script's parse is stored under what it was read from: the SHA-256 of the
script and of its sidecar (a git catalog: their blob ids), its path, language and folder
defaults. The whole file is also tied to the catalog it belongs to and to the code that
parsed it (`code_version`: opsroom's version, the parsers' source files, the parsing
libraries, the Python version), so an upgrade or an edited parser starts afresh.

Hashing every script at every start costs a read of each; so a folder catalog's entry also
records the files' status (size, times, inode) it was hashed with, when the files had last
changed well before that (`settled`): a file changed since changes its status time, which
only a change within the same tick of a coarse clock as the one before could hide. A start
that finds the same status reads nothing; any other status is hashed as before.

The file is data, never trusted blindly: it is read only when this user owns it and nobody
else may write to it or its folder (a forged spec could drop a command's approval); its
payload must match the digest in its header; and it is unpickled with only opsroom's own
model classes allowed. Anything else — a truncated write, a foreign or older file, a
class that is not ours — and the cache is ignored and written again after the next load.
Being a cache, failing to read or write it is never an error: the scripts are parsed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import io
import json
import logging
import os
import pickle
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, cast

import opsroom
from opsroom.model.catalog import CatalogIssue

log = logging.getLogger("opsroom.catalog")

Fingerprint = Callable[[str, Path], Hashable | None]

MAGIC = b"opsroom catalog cache 2\n"  # 2: entries record the status they were hashed with
# Bump when what a parse gives changes without any file below changing (a rule applied
# from data outside the package, say); the parsers' own source is hashed anyway.
PARSER_VERSION = 1
MAX_FILES = 64  # catalog caches kept in one folder; the least recently written go first
# The code whose output is stored: edit any of it and every stored parse is stale.
_CODE = ("catalog", "model")
_LIBRARIES = ("tree_sitter", "tree_sitter_powershell", "re2")
# Classes a stored parse may hold besides opsroom.model's: a script's sub-commands.
_ALSO = frozenset({("opsroom.catalog.scan", "_Family")})


def default_cache_dir() -> Path:
    """`${XDG_CACHE_HOME:-~/.cache}/opsroom/catalog`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "opsroom" / "catalog"


def content_fingerprint(relpath: str, path: Path) -> Hashable | None:
    """SHA-256 of a regular file's bytes; None for a symlink or a file that cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        try:
            return hashlib.sha256(f.read()).hexdigest()
        except OSError:
            return None


@functools.cache
def code_version(package: Path | None = None) -> str:
    """What produced a stored parse: opsroom, its parsing code, the parsing libraries, Python."""
    h = hashlib.sha256(f"{opsroom.__version__}\0{PARSER_VERSION}\0{sys.version}".encode())
    package = package or Path(opsroom.__file__).parent
    for part in _CODE:
        for path in sorted((package / part).rglob("*.py")):
            # Size and modification time: an edited or reinstalled module changes them.
            st = path.stat()
            h.update(f"\0{path.relative_to(package)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    for name in _LIBRARIES:
        try:
            found = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            found = None
        origin = found.origin if found is not None else None
        try:
            lib = os.stat(origin) if origin else None
        except OSError:
            lib = None
        stamp = f"{lib.st_size}\0{lib.st_mtime_ns}" if lib is not None else "-"
        h.update(f"\0{name}\0{stamp}".encode())
    return h.hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Kept:
    """One script's stored parse: what it gave, the issues it raised, how it was read."""

    key: Hashable
    result: Any
    issues: tuple[CatalogIssue, ...]
    read_as: str | None
    # The in-memory key (the files' status) whose files hashed to `key`, when they had
    # settled by then: a start that finds that status again uses `key` without reading.
    seen: Hashable = None


class _Unpickler(pickle.Unpickler):
    """Refuses every class but opsroom's model types: a cache file can hold only data."""

    def find_class(self, module: str, name: str) -> Any:
        """The class `module.name` when it is one of ours, else UnpicklingError."""
        if module.startswith("opsroom.model.") or (module, name) in _ALSO:
            loaded = sys.modules.get(module)
            if loaded is None and module.startswith("opsroom.model."):
                with contextlib.suppress(ImportError):
                    loaded = importlib.import_module(module)
            found = getattr(loaded, name, None)
            if isinstance(found, type) and found.__module__ == module:
                return found
        raise pickle.UnpicklingError(f"not allowed in a catalog cache: {module}.{name}")


class _Pickler(pickle.Pickler):
    """Writes opsroom's plain model records as a call of their class with their values.

    Read back, that runs the class's own `__init__` (some 3 ms for 500 scripts) instead of
    the generic `__setstate__` of a slotted dataclass (some 8 ms); `_Unpickler` allows the
    same classes either way. A class with a `__post_init__` or a field outside `__init__`
    is written the generic way.
    """

    def reducer_override(self, obj: Any) -> Any:
        """`(class, values)` for a plain model record, else the usual reduction."""
        cls = type(obj)
        if cls not in _INIT_FIELDS:
            _INIT_FIELDS[cls] = _init_fields(cls)
        names = _INIT_FIELDS[cls]
        if names is None:
            return NotImplemented
        return (cls, tuple(getattr(obj, name) for name in names))


_INIT_FIELDS: dict[type, tuple[str, ...] | None] = {}


def _init_fields(cls: type) -> tuple[str, ...] | None:
    """The fields `cls(*values)` takes, when that rebuilds an equal record; else None."""
    if not (cls.__module__.startswith("opsroom.model.") and is_dataclass(cls)):
        return None
    if hasattr(cls, "__post_init__") or not all(f.init for f in fields(cls)):
        return None
    return tuple(f.name for f in fields(cls))


@dataclass(slots=True)
class StoredParses:
    """The stored parses of one catalog: read once, written back after a load changed them."""

    folder: Path  # the cache folder
    catalog: str  # what the file belongs to: "folder:/real/path", "git:/work/dir"
    content: Fingerprint | None = content_fingerprint  # None: the cache's keys are content
    version: str = field(default_factory=lambda: code_version())
    # Whether an in-memory key's files had last changed well before a time (ns since the
    # epoch); None: a status is never taken for the content (the git catalog's keys are
    # content already).
    settled: Callable[[Hashable, int], bool] | None = None
    clock: Callable[[], int] = time.time_ns
    _kept: dict[str, Kept] | None = None
    _dirty: bool = False
    # relpath -> (in-memory key, stored key) hashed by this load from settled files
    _hashed: dict[str, tuple[Hashable, Hashable]] = field(default_factory=dict)

    @property
    def file(self) -> Path:
        """This catalog's cache file."""
        name = hashlib.sha256(self.catalog.encode()).hexdigest()[:32]
        return self.folder / f"{name}.cache"

    def unchanged(self, relpath: str, key: Hashable) -> Kept | None:
        """The stored parse of `relpath` when its files show the status they were hashed with."""
        if self.settled is None:
            return None
        kept = self._entries().get(relpath)
        return kept if kept is not None and kept.seen is not None and kept.seen == key else None

    def key(self, relpath: str, path: Path, sidecar: Path | None, key: Hashable) -> Hashable:
        """The stored key of a script whose in-memory key is `key`; None when unreadable."""
        script, side, rest, salt = cast(tuple[Hashable, Hashable, Hashable, Hashable], key)
        if self.content is not None:
            # Taken before reading: a file whose status time is older than this by more
            # than a clock tick cannot change after the read without its status changing.
            now = self.clock()
            script = self.content(relpath, path)
            side = None
            if sidecar is not None:
                side = self.content(relpath + sidecar.name[len(path.name) :], sidecar)
                if side is None:
                    return None
            if script is None:
                return None
            stored = (script, side, rest, repr(salt))
            if self.settled is not None and self.settled(key, now):
                self._hashed[relpath] = (key, stored)
            return stored
        return (script, side, rest, repr(salt))

    def get(self, relpath: str, key: Hashable) -> Kept | None:
        """The stored parse of `relpath` when it was stored under `key`."""
        kept = self._entries().get(relpath)
        if kept is None or kept.key != key:
            return None
        return self._note_seen(relpath, kept)

    def put(self, relpath: str, kept: Kept) -> None:
        """Store a fresh parse (written by `save`)."""
        self._entries()[relpath] = kept
        self._dirty = True
        self._note_seen(relpath, kept)

    def _entries(self) -> dict[str, Kept]:
        if self._kept is None:
            self._kept = self._read()
        return self._kept

    def _note_seen(self, relpath: str, kept: Kept) -> Kept:
        """`kept`, recording the status its files had when this load hashed them settled."""
        hashed = self._hashed.pop(relpath, None)
        if hashed is None or hashed[1] != kept.key or kept.seen == hashed[0]:
            return kept
        kept = replace(kept, seen=hashed[0])
        self._entries()[relpath] = kept
        self._dirty = True  # written once; the next start reads none of these files
        return kept

    def retain(self, relpaths: Iterable[str]) -> None:
        """Forget scripts the last load did not find."""
        if self._kept is None:
            return
        gone = set(self._kept) - set(relpaths)
        for relpath in gone:
            del self._kept[relpath]
        self._dirty = self._dirty or bool(gone)

    def save(self) -> None:
        """Write the file when a load changed it; a failure is logged, never raised."""
        if not self._dirty or self._kept is None:
            return
        self._dirty = False
        try:
            self._write(self._kept)
        except (OSError, pickle.PicklingError, TypeError, AttributeError) as e:
            log.warning("catalog cache %s not written: %s", self.folder, e)

    # -- the file ------------------------------------------------------------------------

    def _header(self) -> bytes:
        return json.dumps({"catalog": self.catalog, "version": self.version}).encode() + b"\n"

    def _read(self) -> dict[str, Kept]:
        """The stored parses, or none when the file is missing, foreign, stale or damaged."""
        try:
            data = self._read_trusted()
        except OSError:
            return {}
        if data is None:
            return {}
        header = MAGIC + self._header()
        if not data.startswith(header):
            return {}  # another catalog's, another version's, or not a cache at all
        digest, _, payload = data[len(header) :].partition(b"\n")
        if hashlib.sha256(payload).hexdigest().encode() != digest:
            log.info("catalog cache %s is damaged: parsing the catalog again", self.file)
            return {}
        try:
            entries = _Unpickler(io.BytesIO(payload)).load()
        except Exception as e:  # whatever a damaged or forged payload raises: not used
            log.warning("catalog cache %s refused (%s): parsing the catalog again", self.file, e)
            return {}
        return _checked(entries)

    def _read_trusted(self) -> bytes | None:
        if not _private(self.folder):
            return None
        fd = os.open(self.file, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
                log.warning("catalog cache %s is not this user's alone: not used", self.file)
                return None
            return f.read()

    def _write(self, kept: dict[str, Kept]) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(self.folder):
            log.warning("catalog cache folder %s is not this user's alone: not used", self.folder)
            return
        entries = {p: (k.key, k.result, k.issues, k.read_as, k.seen) for p, k in kept.items()}
        buffer = io.BytesIO()
        _Pickler(buffer, protocol=5).dump(entries)
        payload = buffer.getvalue()
        digest = hashlib.sha256(payload).hexdigest().encode()
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(MAGIC + self._header() + digest + b"\n" + payload)
            os.replace(tmp, self.file)  # readers see the old file or the new one, whole
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _prune(self.folder, keep=self.file)


def _private(folder: Path) -> bool:
    """Whether `folder` is this user's and nobody else may write to it."""
    try:
        st = os.stat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _checked(entries: object) -> dict[str, Kept]:
    """The unpickled entries when they have the stored shape; else none."""
    if not isinstance(entries, dict):
        return {}
    out: dict[str, Kept] = {}
    for relpath, entry in entries.items():
        if not (isinstance(relpath, str) and isinstance(entry, tuple) and len(entry) == 5):
            return {}
        key, result, issues, read_as, seen = entry
        if not (
            isinstance(key, tuple)
            and isinstance(result, tuple)
            and len(result) == 2
            and isinstance(issues, tuple)
            and all(isinstance(i, CatalogIssue) for i in issues)
            and (read_as is None or isinstance(read_as, str))
            and (seen is None or isinstance(seen, tuple))
        ):
            return {}
        out[relpath] = Kept(key, result, issues, read_as, seen)
    return out


def _prune(folder: Path, *, keep: Path) -> None:
    """Remove the least recently written cache files beyond MAX_FILES (catalogs long gone)."""
    try:
        files = [e for e in os.scandir(folder) if e.name.endswith(".cache") and e.is_file()]
    except OSError:
        return
    if len(files) <= MAX_FILES:
        return
    files.sort(key=lambda e: e.stat().st_mtime_ns, reverse=True)
    for entry in files[MAX_FILES:]:
        if entry.path != str(keep):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
