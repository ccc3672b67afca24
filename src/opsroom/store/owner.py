"""Which process owns a running job, and whether that process is still alive.

An owner id is "hostname:pid:boot-id:start-time". The boot id and the process start time
(clock ticks since boot, from /proc/<pid>/stat) make it safe against pid reuse and reboots.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

_PROC = Path("/proc")
_UNKNOWN = "-"
_cache: tuple[int, str] | None = None


def boot_id() -> str:
    """This machine's boot id (Linux), or "-" where there is none."""
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip() or _UNKNOWN
    except OSError:
        return _UNKNOWN


def process_start(pid: int) -> str | None:
    """The start time of a live process in clock ticks since boot; None if it is gone.

    A zombie (exited, not yet reaped) counts as gone.
    """
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return _UNKNOWN
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20:
        return _UNKNOWN
    if fields[0] == "Z":
        return None
    return fields[19]  # field 22, starttime


def owner_id() -> str:
    """A stable id of this process: "hostname:pid:boot-id:start-time"."""
    global _cache
    pid = os.getpid()
    if _cache is None or _cache[0] != pid:  # recomputed in a forked child
        start = process_start(pid) if _PROC.is_dir() else None
        _cache = (pid, f"{socket.gethostname()}:{pid}:{boot_id()}:{start or _UNKNOWN}")
    return _cache[1]


def owner_alive(owner: str) -> bool:
    """Whether the process named by `owner` still runs.

    Only a process on this host can be checked; owners elsewhere, and ids in a form this
    version does not know, are assumed alive — a live owner's job must never be touched.
    """
    parts = owner.rsplit(":", 3)
    if len(parts) != 4 or not parts[1].isdigit():
        return True
    host, pid, boot, start = parts
    if host != socket.gethostname():
        return True
    here = boot_id()
    if boot == _UNKNOWN or here == _UNKNOWN or not _PROC.is_dir():
        return True
    if boot != here:
        return False  # the machine rebooted since
    now = process_start(int(pid))
    if now is None:
        return False
    return start in (_UNKNOWN, now) or now == _UNKNOWN
