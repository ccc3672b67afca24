"""Which files are commands (SPEC §3.1) and what they are called (SPEC §3.2)."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

from opsroom.model.languages import for_suffix

SIDECAR_SUFFIX = ".opsroom.toml"
FOLDER_DEFAULTS = "defaults.opsroom.toml"

_WORD = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")


def is_hidden_name(name: str) -> bool:
    """A file or folder name that §3.1 always skips (leading `_` or `.`)."""
    return name.startswith(("_", "."))


def _suffix(filename: str) -> str:
    dot = filename.rfind(".")
    return filename[dot:].lower() if dot > 0 else ""


def script_suffix(filename: str) -> str | None:
    """The suffix of `filename` when a script language owns it (`.sh`), else None."""
    suffix = _suffix(filename)
    return suffix if for_suffix(suffix) is not None else None


def is_candidate(relpath: str, *, has_sidecar: bool = False, executable: bool = False) -> bool:
    """Whether the file at `relpath` (relative, POSIX) is a command under §3.1.

    Scripts qualify by the suffix of their language (model/languages.py), tests beside them
    excepted; any other file only when it is executable and a `<file>.opsroom.toml` sidecar
    sits beside it.
    """
    parts = [p for p in relpath.split("/") if p]
    if not parts or any(is_hidden_name(p) for p in parts):
        return False
    filename = parts[-1]
    lower = filename.lower()
    if lower.endswith(SIDECAR_SUFFIX) or lower == FOLDER_DEFAULTS:
        return False
    language = for_suffix(_suffix(filename))
    if language is not None:  # a script, unless it is one of the tests beside the scripts
        return not any(fnmatchcase(lower, pattern) for pattern in language.test_files)
    return has_sidecar and executable


def _words(relpath: str) -> list[str]:
    parts = [p for p in relpath.replace("\\", "/").split("/") if p]
    if not parts:
        raise ValueError("empty path")
    last = parts[-1]
    if script_suffix(last) is not None:
        last = last[: last.rfind(".")]
    return [" ".join(w.lower().replace("_", "-").split()) for w in [*parts[:-1], last]]


def named_like_folder(relpath: str) -> bool:
    """Whether the file is named like its folder (`Get-Disk/Get-Disk.ps1`, `x-deploy/deploy.sh`).

    Such a file takes the folder's name alone (SPEC §3.10): collections that keep each
    script in a folder of its own would otherwise say every name twice.
    """
    words = _words(relpath)
    if len(words) < 2:
        return False
    folder, file = words[-2], words[-1]
    return folder == file or folder.endswith("-" + file)


def command_name(relpath: str) -> str:
    """`storage/migrate_volume.py` → `storage migrate-volume` (§3.2); `Get-Disk/Get-Disk.ps1`
    → `get-disk` (§3.10)."""
    words = _words(relpath)
    return " ".join(words[:-1] if named_like_folder(relpath) else words)


def is_valid_name(name: str) -> bool:
    """A command name or alias: lower-case words of letters, digits, `-`, `.`, `+`."""
    words = name.split(" ")
    return bool(words) and all(_WORD.match(w) for w in words)


def normalize_name(name: str) -> str:
    """Lower-case a name and collapse its whitespace, as names are compared."""
    return " ".join(name.lower().split())
