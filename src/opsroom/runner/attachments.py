"""Files a job offers to the room: only regular files inside its own working folder (§5.3).

The script controls its folder, so a path is resolved with symlinks followed and refused when
it leaves the folder, is missing, is not a regular file or is too big. The script keeps
running after the check and could swap the file for a symlink, so `read_attachment` opens it
again without following any symlink and re-checks it: readers should use it rather than
opening the path themselves.
"""

from __future__ import annotations

import mimetypes
import os
import re
import stat
from pathlib import Path

from opsroom.errors import RefusedError
from opsroom.model.jobs import AttachmentEvent
from opsroom.runner.platform import ON_WINDOWS

MAX_ATTACHMENT = 20 * 1024 * 1024
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*(;.{0,200})?$")
_DEFAULT_TYPE = "application/octet-stream"


class AttachmentRefused(RefusedError):
    """An attachment that may not leave the job; the message says why, for the user."""


def resolve_attachment(
    path: str,
    *,
    root: str,
    name: str | None = None,
    content_type: str | None = None,
    limit: int = MAX_ATTACHMENT,
) -> AttachmentEvent:
    """The checked attachment for a path the script gave; AttachmentRefused says why not."""
    base = os.path.realpath(root)
    target = os.path.realpath(os.path.join(base, path))
    if os.path.commonpath([base, target]) != base or target == base:
        raise AttachmentRefused("it is outside the job's working folder")
    try:
        info = os.stat(target)
    except FileNotFoundError:
        raise AttachmentRefused("no such file") from None
    except OSError as e:
        raise AttachmentRefused(e.strerror or str(e)) from None
    if not stat.S_ISREG(info.st_mode):
        raise AttachmentRefused("it is not a regular file")
    if info.st_size > limit:
        raise AttachmentRefused(f"it is {_size(info.st_size)}, more than the {_size(limit)} limit")
    shown = _display_name(name) or os.path.basename(target)
    return AttachmentEvent(
        name=shown,
        path=target,
        size=info.st_size,
        content_type=_content_type(content_type, shown),
    )


def read_attachment(
    event: AttachmentEvent, *, root: str | None = None, limit: int = MAX_ATTACHMENT
) -> bytes:
    """The attachment's bytes, opened again without following any symlink (AttachmentRefused).

    `event.path` is already free of symlinks, so every folder on the way is opened with
    O_NOFOLLOW: a file or folder swapped for a symlink after the check is refused, never read.
    """
    if root is not None:
        base = os.path.realpath(root)
        if os.path.commonpath([base, event.path]) != base:
            raise AttachmentRefused("it is outside the job's working folder")
    parts = Path(event.path).parts
    if len(parts) < 2 or not os.path.isabs(event.path) or os.pardir in parts:
        raise AttachmentRefused("it is not a checked attachment path")
    if ON_WINDOWS:
        return _read_windows(event.path, parts, limit)
    nofollow = os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(parts[0], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[1:-1]:
            try:
                sub = os.open(part, os.O_RDONLY | os.O_DIRECTORY | nofollow, dir_fd=fd)
            except OSError:
                raise AttachmentRefused("its folder changed after it was offered") from None
            os.close(fd)
            fd = sub
        try:
            # O_NONBLOCK: a FIFO put in its place must not block us.
            file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NONBLOCK | nofollow, dir_fd=fd)
        except OSError:
            raise AttachmentRefused("it changed after it was offered") from None
    finally:
        os.close(fd)
    with os.fdopen(file_fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise AttachmentRefused("it changed after it was offered")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise AttachmentRefused(f"it grew beyond the {_size(limit)} limit")
    return data


def _read_windows(path: str, parts: tuple[str, ...], limit: int) -> bytes:
    """`read_attachment` on Windows, which opens no file relative to a folder handle.

    No folder on the way and not the file may be a link (a symlink or a junction); the file
    opened must be the one looked at (same file id). An open file cannot be renamed or
    deleted on Windows, so what is read is what was checked.
    """
    if not ON_WINDOWS:  # what follows is Windows code (and type-checked as such)
        raise AttachmentRefused("not a Windows host")
    link = stat.FILE_ATTRIBUTE_REPARSE_POINT
    step = parts[0]
    for part in parts[1:]:
        step = os.path.join(step, part)
        try:
            seen = os.lstat(step)
        except OSError:
            raise AttachmentRefused("it changed after it was offered") from None
        if stat.S_ISLNK(seen.st_mode) or seen.st_file_attributes & link:
            raise AttachmentRefused("it changed after it was offered")
    if not stat.S_ISREG(seen.st_mode):
        raise AttachmentRefused("it changed after it was offered")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_BINARY | os.O_NOINHERIT)
    except OSError:
        raise AttachmentRefused("it changed after it was offered") from None
    with os.fdopen(fd, "rb") as f:
        opened = os.fstat(f.fileno())
        if (opened.st_dev, opened.st_ino) != (seen.st_dev, seen.st_ino):
            raise AttachmentRefused("it changed after it was offered")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise AttachmentRefused(f"it grew beyond the {_size(limit)} limit")
    return data


def _display_name(name: str | None) -> str:
    if not name:
        return ""
    # A display name, not a path: keep the last component only, whatever the separator.
    last = re.split(r"[\\/]", name)[-1].strip()
    return "" if last in ("", ".", "..") else last[:255]


def _content_type(given: str | None, name: str) -> str:
    if given and _CONTENT_TYPE.match(given.strip()):
        return given.strip()
    guessed, _ = mimetypes.guess_type(name)
    return guessed or _DEFAULT_TYPE


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n} bytes"
