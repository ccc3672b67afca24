"""Spec + invocation → the exact argv, environment and folder of one child process.

Pure apart from looking interpreters up on PATH: nothing here starts a process. Values never
travel through a shell or a code string — they go as JSON (`OPSROOM_PARAMS`) or as one
environment variable per parameter (`OPSROOM_ARG_<NAME>`), so `$(…)`, backticks and a value
that starts with `-` reach the script exactly as typed (SPEC §5.1).

The event channel's fd number (`OPSROOM_EVENTS_FD`) is only known when the pipe exists, so
`run_local` adds it; a `Launch` never carries it.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from opsroom.config import RunnerSettings
from opsroom.errors import RefusedError
from opsroom.model.commands import (
    ArgvStyle,
    CommandSpec,
    Invocation,
    ParamSpec,
    ParamType,
    ParamValue,
    Scalar,
)
from opsroom.model.languages import Interpreter, LanguageSupport, Passing, language_support
from opsroom.runner.cli_argv import cli_argv
from opsroom.runner.limits import NO_LIMITS, Limits
from opsroom.runner.platform import Platform, current

BOOTSTRAP_DIR = Path(__file__).resolve().parent / "bootstrap"
PYTHON_BOOTSTRAP = BOOTSTRAP_DIR / "python_bootstrap.py"
POWERSHELL_BOOTSTRAP = BOOTSTRAP_DIR / "bootstrap.ps1"

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"

# Copied from the bot's environment when present: harmless, and things break without them.
_POSIX_KEEP = ("HOME", "USER", "LOGNAME", "TZ")
_WINDOWS_KEEP = (
    "SYSTEMROOT",
    "SYSTEMDRIVE",
    "WINDIR",
    "COMSPEC",
    "PATHEXT",
    "PATH",
    "USERPROFILE",
    "USERNAME",
    "APPDATA",
    "LOCALAPPDATA",
    "PROGRAMDATA",
    "PROGRAMFILES",
    "PROGRAMFILES(X86)",
    "HOMEDRIVE",
    "HOMEPATH",
    "TZ",
)
# cmd.exe re-parses the arguments of a batch file: no safe way to pass chat text (BatBadBut).
_BATCH_SUFFIXES = (".bat", ".cmd")
_ENV_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True, slots=True)
class Launch:
    """Everything needed to start one script: argv (never a shell string), env, folder, and
    what the job may use (`[runner] max_*`; none when not given, but still a cgroup)."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str
    limits: Limits = NO_LIMITS
    warm: bool = False  # `argv` is a Python and what it runs: runner/pool.py may fork it


def interpreter_name(interpreter: Interpreter, settings: RunnerSettings) -> str:
    """The program as configured: its [runner] key, else the record's, else this Python."""
    configured = getattr(settings, interpreter.setting) if interpreter.setting else None
    if configured is not None and not isinstance(configured, str):
        raise TypeError(f"[runner] {interpreter.setting} does not name a program")
    return configured or interpreter.program or sys.executable


def interpreter_choices(
    interpreter: Interpreter, name: str, platform: Platform | None = None
) -> tuple[str, ...]:
    """The programs looked for on PATH, in order, to run a language whose program is `name`:
    `name` alone, but for `[runner] pwsh` left at "pwsh" the OS's PowerShells (on Windows
    PowerShell 7 first, then the Windows PowerShell every Windows has)."""
    if interpreter.setting == "pwsh" and name == "pwsh":
        return (platform or current()).powershell
    return (name,)


def find_interpreter(
    interpreter: Interpreter, name: str, platform: Platform | None = None
) -> tuple[str, ...] | None:
    """The program found on PATH and the flags it runs a script with, this OS's first
    (PowerShell's execution policy on Windows); None when no choice is on this host."""
    where = platform or current()
    for choice in interpreter_choices(interpreter, name, where):
        found = _which(choice)
        if found is not None:
            extra = where.powershell_flags if interpreter.setting == "pwsh" else ()
            return (found, *extra, *interpreter.flags)
    return None


_FOUND: dict[tuple[str, str | None], str] = {}


def _which(program: str) -> str | None:
    """`shutil.which`, remembered per PATH as a shell's hash table does: each job looks
    it up anew only when the file found before is no longer a program (two system calls,
    not a walk of PATH). Not finding it is never remembered."""
    key = (program, os.environ.get("PATH"))
    found = _FOUND.get(key)
    if found is not None and os.access(found, os.X_OK) and os.path.isfile(found):
        return found
    found = shutil.which(program)
    if found is None:
        _FOUND.pop(key, None)
    else:
        _FOUND[key] = found
    return found


def missing_runtime(
    language: str, settings: RunnerSettings, platform: Platform | None = None
) -> str | None:
    """`PowerShell runtime (pwsh)` when the language's interpreter is not on this host's
    PATH; None when it is, or when the language needs none."""
    support = language_support(language)
    if support is None or support.launch.interpreter is None:
        return None
    name = interpreter_name(support.launch.interpreter, settings)
    if find_interpreter(support.launch.interpreter, name, platform) is not None:
        return None
    choices = " or ".join(interpreter_choices(support.launch.interpreter, name, platform))
    return f"{support.label} runtime ({choices})"


def arg_env_name(name: str) -> str:
    """`OPSROOM_ARG_<NAME>` for a parameter: upper-case, anything but [A-Z0-9_] → `_`."""
    return "OPSROOM_ARG_" + _ENV_NAME_UNSAFE.sub("_", name).upper()


def build_launch(
    spec: CommandSpec,
    invocation: Invocation,
    *,
    catalog_root: Path,
    job_id: int,
    requester: str,
    room: str,
    settings: RunnerSettings,
    secrets: Mapping[str, str] = MappingProxyType({}),
    base_env: Mapping[str, str] | None = None,
    workdir: Path,
    python: str | None = None,
    token: str | None = None,
    platform: Platform | None = None,
) -> Launch:
    """The launch for one job; RefusedError when it cannot run here or not like that.

    How it starts is the language's record (model/languages.py) alone. `python` overrides
    the interpreter (a PEP 723 environment's Python); `token` (OPSROOM_JOB_TOKEN) marks
    every process of the job so all of them can be found later. `platform` is the OS the
    job runs on (runner/platform.py; this host's when not given).
    """
    support = language_support(spec.language)
    if support is None:
        raise ValueError(f"{spec.name} is a built-in command, not a script")
    # `runs_on` (SPEC §8) is the engine's to route: only a worker of that queue gets here.
    _check_dry_run(spec, invocation)
    _check_params(spec, invocation)
    script = _script_path(spec, catalog_root)
    base = os.environ if base_env is None else base_env
    where = platform or current()
    env = _base_env(base, settings, workdir, where)

    argv = _argv(spec, invocation, support, script, settings, python, where)
    env.update(support.launch.env)
    if support.launch.passing is Passing.ENV and spec.cli_words is None:
        env.update(_arg_env(spec, invocation))

    # A [pscredential] parameter's secret reaches the bootstrap like any declared secret:
    # through the environment only, never the command line.
    for name in (*spec.secrets, *(c.secret for c in spec.credentials if c.secret)):
        if name in secrets:
            env[name] = secrets[name]
    # Set last so a declared secret can never shadow them.
    env["OPSROOM_JOB_ID"] = str(job_id)
    env["OPSROOM_REQUESTER"] = requester
    env["OPSROOM_ROOM"] = room
    env["OPSROOM_DRY_RUN"] = "1" if invocation.dry_run else "0"
    if token is not None:
        env["OPSROOM_JOB_TOKEN"] = token
    env["OPSROOM_PARAMS"] = json.dumps(_json_params(invocation.params), sort_keys=True)
    env["OPSROOM_PARAM_TYPES"] = json.dumps(
        {p.name: p.type_label for p in spec.params}, sort_keys=True
    )
    for name in [n for n in env if n.startswith("OPSROOM_PS_")]:
        del env[name]  # what the bootstrap reads comes from the spec alone, never a secret
    if support.launch.bootstrap is not None:
        env.update(powershell_env(spec))
    return Launch(
        argv=argv,
        env=MappingProxyType(env),
        cwd=str(workdir),
        limits=Limits.from_settings(settings),
        warm=support.launch.warm,
    )


def _argv(
    spec: CommandSpec,
    invocation: Invocation,
    support: LanguageSupport,
    script: str,
    settings: RunnerSettings,
    python: str | None,
    where: Platform,
) -> tuple[str, ...]:
    """Interpreter and its flags; then the script's own argv (SPEC §3.10: argparse, click,
    typer read it), or the bootstrap and the script, or the script and its sidecar options."""
    recipe = support.launch
    head: tuple[str, ...] = ()
    if recipe.interpreter is not None:
        name = python or interpreter_name(recipe.interpreter, settings)
        found = find_interpreter(recipe.interpreter, name, where)
        if found is None and recipe.interpreter.required:
            choices = " or ".join(interpreter_choices(recipe.interpreter, name, where))
            raise RefusedError(
                f"no {support.label} runtime ({choices}) on this host: {spec.name} cannot run here"
            )
        head = found or (name, *recipe.interpreter.flags)
    elif script.lower().endswith(_BATCH_SUFFIXES):
        raise RefusedError(f"{spec.name}: batch files cannot take chat arguments safely")
    if spec.cli_words is not None:
        return (*head, script, *cli_argv(spec, invocation))
    if recipe.bootstrap is not None:
        return (*head, str(BOOTSTRAP_DIR / recipe.bootstrap), script)
    return (*head, script, *_option_argv(spec, invocation))


def powershell_env(spec: CommandSpec) -> dict[str, str]:
    """What the PowerShell bootstrap needs beyond the values (SPEC §3.10): the function to
    call (`OPSROOM_PS_FUNCTION`), the #Requires to check first (`OPSROOM_PS_REQUIRES`) and
    which secret fills which credential parameter (`OPSROOM_PS_CREDENTIALS`, names only)."""
    out: dict[str, str] = {}
    if spec.entry:
        out["OPSROOM_PS_FUNCTION"] = spec.entry
    requires = spec.ps_requires
    if requires is not None and requires.label:
        modules = [
            {
                "name": m.name,
                "minimum": m.minimum,
                "exact": m.exact,
                "maximum": m.maximum,
                "label": m.label,
            }
            for m in requires.modules
        ]
        out["OPSROOM_PS_REQUIRES"] = json.dumps(
            {
                "modules": modules,
                "version": requires.version,
                "editions": list(requires.editions),
                "admin": requires.run_as_admin,
            },
            sort_keys=True,
        )
    mapped = {c.name: {"secret": c.secret, "type": c.kind.value} for c in spec.credentials}
    if mapped:
        out["OPSROOM_PS_CREDENTIALS"] = json.dumps(mapped, sort_keys=True)
    return out


def _check_dry_run(spec: CommandSpec, invocation: Invocation) -> None:
    if not invocation.dry_run:
        return
    if spec.dry_run or spec.should_process:  # only PowerShell's reader finds should_process
        return
    raise RefusedError(f"{spec.name} does not support --dry-run; nothing was run")


def _check_params(spec: CommandSpec, invocation: Invocation) -> None:
    # The router validates already; this is the last line against splatting unknown names.
    for name, value in invocation.params.items():
        if spec.param(name) is None:
            raise RefusedError(f"{spec.name} has no parameter {name!r}")
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, str):
                if "\x00" in item:
                    raise RefusedError(f"{name}: a value may not contain a NUL character")
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    raise RefusedError(f"{name}: the value is not valid text") from None


def _script_path(spec: CommandSpec, catalog_root: Path) -> str:
    rel = posixpath.normpath(spec.path)
    if not spec.path or rel.startswith(("../", "/")) or rel == "..":
        raise RefusedError(f"{spec.name}: script path {spec.path!r} is outside the catalog")
    # Checked again as it is now: the file may have become a symlink out since it was read.
    base = os.path.realpath(catalog_root)
    if os.path.commonpath([base, os.path.realpath(catalog_root / rel)]) != base:
        raise RefusedError(f"{spec.name}: its script now leads outside the catalog; not run")
    return str(catalog_root / rel)


def _base_env(
    base: Mapping[str, str], settings: RunnerSettings, workdir: Path, where: Platform
) -> dict[str, str]:
    env: dict[str, str] = {}
    if where.windows:
        for name in _WINDOWS_KEEP:
            if name in base:
                env[name] = base[name]
        env["TEMP"] = env["TMP"] = str(workdir)
    else:
        env["PATH"] = SAFE_PATH
        for name in _POSIX_KEEP:
            if name in base:
                env[name] = base[name]
    env["LANG"] = base.get("LANG") or "C.UTF-8"
    if base.get("LC_ALL"):
        env["LC_ALL"] = base["LC_ALL"]
    env["TMPDIR"] = str(workdir)
    for name in settings.env_passthrough:
        if name in base:
            env[name] = base[name]
    return env


def _arg_env(spec: CommandSpec, invocation: Invocation) -> dict[str, str]:
    """One variable per parameter; defaults filled in, since a shell header cannot apply them."""
    out: dict[str, str] = {}
    for p in spec.params:
        value: ParamValue | None = invocation.params.get(p.name, p.default)
        if value is None and p.type in (ParamType.SWITCH, ParamType.BOOL) and not p.multiple:
            value = False
        if value is None:
            continue
        items = value if isinstance(value, tuple) else (value,)
        out[arg_env_name(p.name)] = "\n".join(_env_text(v) for v in items)
    return out


def _option_argv(spec: CommandSpec, invocation: Invocation) -> tuple[str, ...]:
    """The parameters as command-line options for a script adopted with a sidecar `argv`.

    getopts: `-f value`, a flag as `-v`; long: `--name value`, a flag as `--name`. Options
    first, in declaration order, one per value of a list; then the positionals in order.
    An option's value is one argv item of its own, so one starting with `-` stays a value.
    A positional starting with `-` is refused: the script's own parser would read it as an
    option, and not every hand-written loop knows `--`.
    """
    style = spec.argv_style
    if style is None:
        return ()
    options: list[str] = []
    positional: list[tuple[int, ParamSpec, tuple[Scalar, ...]]] = []
    for p in spec.params:
        value: ParamValue | None = invocation.params.get(p.name, p.default)
        if value is None:
            continue
        items = value if isinstance(value, tuple) else (value,)
        if p.position is not None:
            positional.append((p.position, p, items))
            continue
        if style is ArgvStyle.GETOPTS:
            letter = next((w for w in (p.name, *p.aliases) if len(w) == 1), None)
            if letter is None:  # the catalog refuses this; a hand-built spec may not
                raise RefusedError(f"{spec.name}: parameter {p.name!r} has no getopts letter")
            option = f"-{letter}"
        else:
            option = f"--{p.name}"
        if p.type in (ParamType.SWITCH, ParamType.BOOL) and not p.multiple:
            if items[0] is True:
                options.append(option)
            continue
        for item in items:
            options += [option, _env_text(item)]
    tail: list[str] = []
    for _position, p, items in sorted(positional, key=lambda x: x[0]):
        for item in items:
            text = _env_text(item)
            if text.startswith("-"):
                raise RefusedError(
                    f"{p.name}: a value for this script may not start with '-' "
                    "(it would read it as an option); nothing was run"
                )
            tail.append(text)
    return (*options, *tail)


def _env_text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _json_params(params: Mapping[str, ParamValue]) -> dict[str, object]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
