"""Isolated, cached Python environments for PEP 723 dependencies (SPEC §5.1).

One virtual environment per distinct dependency set (sorted requirements + requires-python),
built with `uv` when available, else `python -m venv` + pip — never opsroom's own environment.
A lock file keeps two jobs from building the same environment at once; a marker written last
tells a finished environment from a half-built one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

from opsroom.config import RunnerSettings
from opsroom.errors import RefusedError
from opsroom.runner.platform import ON_WINDOWS

_READY = ".opsroom-ready"
_LOCK_POLL = 0.1
# The build tools (and a dependency's setup.py) see only these, never the bot's tokens.
_BUILD_ENV_KEEP = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "SYSTEMROOT",
    "COMSPEC",
    "PATHEXT",
    "USERPROFILE",
    "LOCALAPPDATA",
    "APPDATA",
    "XDG_CACHE_HOME",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
)
_BUILD_ENV_PREFIXES = ("PIP_", "UV_")


def environments_dir(settings: RunnerSettings) -> Path:
    """Where PEP 723 environments are cached: `[runner] env_cache` or ~/.cache/opsroom/envs."""
    if settings.env_cache:
        return Path(settings.env_cache)
    return Path.home() / ".cache" / "opsroom" / "envs"


def environment_key(requires: Sequence[str], requires_python: str | None) -> str:
    """The cache key of a dependency set: sha256 of the sorted requirements + requires-python."""
    data = json.dumps({"requires": sorted(requires), "requires_python": requires_python or ""})
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def venv_python(env_dir: Path) -> Path:
    """The interpreter inside a virtual environment."""
    if ON_WINDOWS:
        return env_dir / "Scripts" / "python.exe"
    return env_dir / "bin" / "python"


def find_uv() -> str | None:
    """`uv` on PATH, or installed beside the running interpreter."""
    found = shutil.which("uv")
    if found:
        return found
    beside = Path(sys.executable).parent / ("uv.exe" if ON_WINDOWS else "uv")
    return str(beside) if beside.is_file() else None


async def ensure_environment(
    requires: Sequence[str],
    requires_python: str | None,
    *,
    cache_dir: Path,
    python: str | None = None,
    use_uv: bool = True,
    timeout: float = 900.0,
) -> Path:
    """The python of a cached environment holding `requires`, built first if needed.

    `python` is the base interpreter (default: the one running opsroom). RefusedError when
    the dependencies cannot be installed or the interpreter does not satisfy requires-python.
    """
    for req in requires:
        # A requirement is PEP 508 text; anything option-like would steer the installer.
        if not req.strip() or req.lstrip().startswith("-") or "\n" in req or "\r" in req:
            raise RefusedError(f"invalid dependency in the script metadata: {req!r}")
    base = python or sys.executable
    key = environment_key(requires, requires_python)[:32]
    env_dir = cache_dir / f"py-{key}"
    interpreter = venv_python(env_dir)
    if (env_dir / _READY).is_file():
        return interpreter
    cache_dir.mkdir(parents=True, exist_ok=True)
    async with _file_lock(cache_dir / f"py-{key}.lock"):
        if (env_dir / _READY).is_file():
            return interpreter  # another job built it while we waited
        _check_requires_python(requires_python, base)
        shutil.rmtree(env_dir, ignore_errors=True)  # a half-built leftover
        uv = find_uv() if use_uv else None
        env = _build_env(os.environ)
        if uv:
            await _call(
                [uv, "venv", "--no-config", "--quiet", "--python", base, str(env_dir)], env, timeout
            )
            if requires:
                await _call(
                    [
                        uv,
                        "pip",
                        "install",
                        "--no-config",
                        "--quiet",
                        "--python",
                        str(interpreter),
                        *requires,
                    ],
                    env,
                    timeout,
                )
        else:
            await _call([base, "-m", "venv", str(env_dir)], env, timeout)
            if requires:
                await _call(
                    [
                        str(interpreter),
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--no-input",
                        "--disable-pip-version-check",
                        *requires,
                    ],
                    env,
                    timeout,
                )
        (env_dir / _READY).write_text(
            json.dumps({"requires": sorted(requires), "requires_python": requires_python}),
            encoding="utf-8",
        )
    return interpreter


def _check_requires_python(requires_python: str | None, base: str) -> None:
    if not requires_python:
        return
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        spec = SpecifierSet(requires_python)
    except InvalidSpecifier:
        raise RefusedError(f"invalid requires-python: {requires_python!r}") from None
    if base == sys.executable:
        version = ".".join(str(n) for n in sys.version_info[:3])
    else:
        return  # another interpreter: let the venv tool judge it
    if version not in spec:
        raise RefusedError(f"the script needs Python {requires_python}; this host has {version}")


def _build_env(environ: Mapping[str, str]) -> dict[str, str]:
    return {
        k: v
        for k, v in environ.items()
        if k in _BUILD_ENV_KEEP or k.startswith(_BUILD_ENV_PREFIXES)
    }


async def _call(argv: list[str], env: Mapping[str, str], timeout: float) -> None:
    if ON_WINDOWS:
        # The selector event loop psycopg needs on Windows starts no processes: a thread
        # waits for this one instead.
        await asyncio.to_thread(_call_in_thread, argv, env, timeout)
        return
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env),
        )
    except OSError as e:
        raise RefusedError(f"could not start {argv[0]}: {e.strerror or e}") from None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RefusedError(f"installing the script's dependencies took over {timeout:g}s") from None
    _check_installed(proc.returncode, out)


def _call_in_thread(argv: list[str], env: Mapping[str, str], timeout: float) -> None:
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env),
            timeout=timeout,
            check=False,
        )
    except OSError as e:
        raise RefusedError(f"could not start {argv[0]}: {e.strerror or e}") from None
    except subprocess.TimeoutExpired:
        raise RefusedError(f"installing the script's dependencies took over {timeout:g}s") from None
    _check_installed(done.returncode, done.stdout)


def _check_installed(returncode: int | None, out: bytes) -> None:
    if returncode != 0:
        tail = "\n".join(out.decode("utf-8", "replace").strip().splitlines()[-15:])
        raise RefusedError(f"could not install the script's dependencies:\n{tail}")


@contextlib.asynccontextmanager
async def _file_lock(path: Path) -> AsyncIterator[None]:
    """An exclusive lock across processes, waited for without blocking the event loop."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while not _try_lock(fd):
            await asyncio.sleep(_LOCK_POLL)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {time.time():.0f}\n".encode())
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


def _try_lock(fd: int) -> bool:
    if ON_WINDOWS:
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    if ON_WINDOWS:
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)
