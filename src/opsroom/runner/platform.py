"""Which operating system the runner is on: the one place that asks (SPEC §8).

Every other module of the runner asks this one — `ON_WINDOWS`, `ON_LINUX`, or the `Platform`
record — and never reads `sys.platform` or `os.name` itself
(tests/unit/runner/test_windows_path.py checks it). Two things follow:
- a test selects the Windows code path on Linux by passing `WINDOWS` where a `Platform` is
  taken, with a fake `kernel32` in it (runner/winjob.py is the only code that calls it);
- the type checker checks each path against its own OS: `mypy` is told `ON_WINDOWS` is
  false (pyproject), and `mypy --platform win32 --always-true ON_WINDOWS` checks the
  Windows path (tests/unit/runner/test_windows_typing.py). So a branch on `ON_WINDOWS` is
  read by mypy exactly like a `sys.platform` check; a branch on `Platform.windows` is
  checked on both.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import asyncio

ON_WINDOWS: Final[bool] = sys.platform == "win32"
ON_LINUX: Final[bool] = sys.platform.startswith("linux")


def _real_kernel32() -> Any:
    """Windows' kernel32 through ctypes with every prototype set, the thread's last error
    kept (winjob.bind)."""
    if sys.platform == "win32":
        import ctypes

        from opsroom.runner.winjob import bind

        return bind(ctypes.WinDLL("kernel32", use_last_error=True))
    raise OSError("kernel32 is a Windows library: select the Windows path with a kernel32")


def last_error() -> int:
    """The last Windows error of this thread's last ctypes call (0 off Windows)."""
    if sys.platform == "win32":
        import ctypes

        return ctypes.get_last_error()
    return 0


@dataclass(frozen=True, slots=True)
class Platform:
    """What the runner does differently on one operating system."""

    name: str  # "windows", "linux", "posix"
    # A job's processes are one Job Object, ended with Ctrl+Break and TerminateJobObject;
    # else a session and process group (and a cgroup where the host gives one).
    windows: bool
    # The warm Python fork server (runner/pool.py) may run: it needs fork and pidfds.
    fork_server: bool
    # PowerShell when `[runner] pwsh` is left at "pwsh": the programs looked for, in order.
    # Every Windows has Windows PowerShell 5.1 (`powershell.exe`); PowerShell 7 (`pwsh`)
    # only where it was installed.
    powershell: tuple[str, ...]
    # Before PowerShell's own flags. A host's default execution policy (Restricted on
    # Windows clients) would refuse the bootstrap; the catalog's review is the gate here,
    # and a policy set by Group Policy still wins over the command line.
    powershell_flags: tuple[str, ...]
    # Loads the Windows API the Windows path calls (runner/winjob.py); tests give a fake.
    kernel32: Callable[[], Any] = field(default=_real_kernel32, compare=False, repr=False)


WINDOWS = Platform(
    name="windows",
    windows=True,
    fork_server=False,
    powershell=("pwsh", "powershell"),
    powershell_flags=("-ExecutionPolicy", "Bypass"),
)
LINUX = Platform(
    name="linux", windows=False, fork_server=True, powershell=("pwsh",), powershell_flags=()
)
POSIX = Platform(
    name="posix", windows=False, fork_server=False, powershell=("pwsh",), powershell_flags=()
)


def current() -> Platform:
    """The record of the operating system this process runs on."""
    if ON_WINDOWS:
        return WINDOWS
    return LINUX if ON_LINUX else POSIX


def event_loop_policy(platform: Platform | None = None) -> asyncio.AbstractEventLoopPolicy | None:
    """The event loop policy the CLI installs before it starts a loop; None: the default.

    psycopg's async connections (the PostgreSQL store, the workers' queue) need a selector
    loop, and Windows' default is the proactor. The runner's Windows path uses threads, not
    asyncio's pipes and subprocesses, so it runs on either.
    """
    if not (platform or current()).windows:
        return None
    import asyncio

    if sys.platform == "win32":
        return asyncio.WindowsSelectorEventLoopPolicy()
    # The Windows path selected elsewhere (a test): this OS's default is a selector loop.
    return asyncio.DefaultEventLoopPolicy()
