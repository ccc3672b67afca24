"""Spec + invocation → argv and environment, never a shell string (SPEC §5.1, §5.4, §6.4)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from types import MappingProxyType

import pytest

from opsroom.config import RunnerSettings
from opsroom.errors import RefusedError
from opsroom.model.commands import CommandSpec, Invocation, Language, ParamSpec, ParamType
from opsroom.runner import argv
from opsroom.runner.argv import (
    POWERSHELL_BOOTSTRAP,
    PYTHON_BOOTSTRAP,
    Launch,
    arg_env_name,
    build_launch,
    missing_runtime,
)

ROOT = Path("/srv/catalog")
WORK = Path("/var/lib/opsroom/jobs/7")
BOT_ENV = {
    "PATH": "/opt/bot/bin:/usr/bin",
    "HOME": "/home/opsroom",
    "USER": "opsroom",
    "TZ": "Europe/Paris",
    "SLACK_BOT_TOKEN": "xoxb-secret",
    "SLACK_APP_TOKEN": "xapp-secret",
    "OPSROOM_CONFIG": "/etc/opsroom.toml",
    "OPSROOM_STORE_URL": "postgresql://ops:pw@db/ops",
    "DATABASE_URL": "postgresql://ops:pw@db/ops",
    "NETAPP_PASSWORD": "from-the-bot-env",
    "AWS_SECRET_ACCESS_KEY": "nope",
    "PYTHONPATH": "/opt/bot/lib",
}
PARAMS = (
    ParamSpec("target-host"),
    ParamSpec("count", ParamType.INT),
    ParamSpec("hosts", multiple=True),
    ParamSpec("force", ParamType.SWITCH),
    ParamSpec("when", ParamType.DATETIME),
    ParamSpec("region", default="emea"),
)


def spec(language: Language, path: str, **kw: object) -> CommandSpec:
    return CommandSpec(name="storage migrate", path=path, language=language, params=PARAMS, **kw)  # type: ignore[arg-type]


def launch(
    s: CommandSpec,
    params: dict[str, object] | None = None,
    *,
    dry_run: bool = False,
    settings: RunnerSettings | None = None,
    secrets: dict[str, str] | None = None,
    python: str | None = None,
) -> Launch:
    inv = Invocation(s.name, MappingProxyType(params or {}), dry_run=dry_run)  # type: ignore[arg-type]
    return build_launch(
        s,
        inv,
        catalog_root=ROOT,
        job_id=7,
        requester="slack:U024BE7LH",
        room="slack:C0NOC1",
        settings=settings or RunnerSettings(bash="/bin/bash", python="/usr/bin/python3"),
        secrets=secrets or {},
        base_env=BOT_ENV,
        workdir=WORK,
        python=python,
    )


TRICKY = "$(touch x); $HOME | && id `id` --force"


def test_python_argv_and_params_as_json() -> None:
    got = launch(spec(Language.PYTHON, "storage/migrate.py"), {"target-host": TRICKY, "count": 3})
    assert got.argv == (
        "/usr/bin/python3",
        str(PYTHON_BOOTSTRAP),
        "/srv/catalog/storage/migrate.py",
    )
    assert json.loads(got.env["OPSROOM_PARAMS"]) == {"target-host": TRICKY, "count": 3}
    assert json.loads(got.env["OPSROOM_PARAM_TYPES"])["when"] == "datetime"
    assert json.loads(got.env["OPSROOM_PARAM_TYPES"])["hosts"] == "string[]"
    assert got.env["PYTHONUNBUFFERED"] == "1"
    assert got.env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert got.cwd == str(WORK)
    # Python gets no per-parameter variables: main(**params) is its interface.
    assert not [k for k in got.env if k.startswith("OPSROOM_ARG_")]


def test_python_interpreter_defaults_to_the_running_one_and_can_be_overridden() -> None:
    s = spec(Language.PYTHON, "a.py")
    assert launch(s, settings=RunnerSettings()).argv[0] == sys.executable
    assert launch(s, python="/cache/py-abc/bin/python").argv[0] == "/cache/py-abc/bin/python"


def test_shell_argv_and_one_variable_per_parameter() -> None:
    got = launch(
        spec(Language.SHELL, "storage/migrate.sh"),
        {"target-host": TRICKY, "count": 3, "hosts": ("web1", "web 2"), "force": True},
    )
    assert got.argv == ("/bin/bash", "/srv/catalog/storage/migrate.sh")
    assert got.env["OPSROOM_ARG_TARGET_HOST"] == TRICKY
    assert got.env["OPSROOM_ARG_COUNT"] == "3"
    assert got.env["OPSROOM_ARG_HOSTS"] == "web1\nweb 2"
    assert got.env["OPSROOM_ARG_FORCE"] == "1"
    assert got.env["OPSROOM_ARG_REGION"] == "emea"  # the header's default, filled in
    assert "OPSROOM_ARG_WHEN" not in got.env  # not given, no default
    assert json.loads(got.env["OPSROOM_PARAMS"])["hosts"] == ["web1", "web 2"]


def test_shell_flag_not_given_is_zero() -> None:
    got = launch(spec(Language.SHELL, "a.sh"))
    assert got.env["OPSROOM_ARG_FORCE"] == "0"


def test_executable_argv_is_the_script_itself() -> None:
    got = launch(spec(Language.EXECUTABLE, "tools/netbox-sync"), {"count": 2})
    assert got.argv == ("/srv/catalog/tools/netbox-sync",)
    assert got.env["OPSROOM_ARG_COUNT"] == "2"


def test_batch_files_are_refused() -> None:
    with pytest.raises(RefusedError, match="batch"):
        launch(spec(Language.EXECUTABLE, "tools/run.cmd"), {"count": 2})


@pytest.mark.parametrize(
    ("name", "env"),
    [
        ("target-host", "OPSROOM_ARG_TARGET_HOST"),
        ("Hosts", "OPSROOM_ARG_HOSTS"),
        ("dry.run", "OPSROOM_ARG_DRY_RUN"),
        ("already_snake", "OPSROOM_ARG_ALREADY_SNAKE"),
    ],
)
def test_arg_env_name(name: str, env: str) -> None:
    assert arg_env_name(name) == env


@pytest.mark.parametrize("language", [Language.PYTHON, Language.SHELL, Language.EXECUTABLE])
def test_environment_is_minimal_and_has_none_of_the_bots_secrets(language: Language) -> None:
    got = launch(spec(language, "x"), secrets={"NETAPP_PASSWORD": "s3cret", "OTHER": "no"})
    env = dict(got.env)
    for leaked in (
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
        "OPSROOM_CONFIG",
        "OPSROOM_STORE_URL",
        "DATABASE_URL",
        "NETAPP_PASSWORD",
        "AWS_SECRET_ACCESS_KEY",
        "PYTHONPATH",
        "OTHER",
    ):
        assert leaked not in env
    assert "xoxb-secret" not in env.values()
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert env["HOME"] == "/home/opsroom"
    assert env["TZ"] == "Europe/Paris"
    assert env["LANG"] == "C.UTF-8"
    assert env["TMPDIR"] == str(WORK)
    assert env["OPSROOM_JOB_ID"] == "7"
    assert env["OPSROOM_REQUESTER"] == "slack:U024BE7LH"
    assert env["OPSROOM_ROOM"] == "slack:C0NOC1"
    assert env["OPSROOM_DRY_RUN"] == "0"
    allowed = {
        "PATH",
        "HOME",
        "USER",
        "TZ",
        "LANG",
        "TMPDIR",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
    }
    extra = {k for k in env if k not in allowed and not k.startswith("OPSROOM_")}
    assert extra == set()


def test_only_declared_secrets_reach_the_script() -> None:
    s = spec(Language.SHELL, "a.sh", secrets=("NETAPP_PASSWORD", "MISSING"))
    got = launch(s, secrets={"NETAPP_PASSWORD": "s3cret", "VCENTER_PASSWORD": "other"})
    assert got.env["NETAPP_PASSWORD"] == "s3cret"
    assert "VCENTER_PASSWORD" not in got.env
    assert "MISSING" not in got.env


def test_a_secret_cannot_shadow_opsroom_variables() -> None:
    s = spec(Language.SHELL, "a.sh", secrets=("OPSROOM_REQUESTER",))
    got = launch(s, secrets={"OPSROOM_REQUESTER": "slack:UADMIN"})
    assert got.env["OPSROOM_REQUESTER"] == "slack:U024BE7LH"


def test_passthrough_names_are_copied_from_the_bot_env() -> None:
    settings = RunnerSettings(bash="/bin/bash", env_passthrough=("PATH", "NO_SUCH_VAR"))
    got = launch(spec(Language.SHELL, "a.sh"), settings=settings)
    assert got.env["PATH"] == "/opt/bot/bin:/usr/bin"
    assert "NO_SUCH_VAR" not in got.env


def test_launch_is_frozen_and_its_env_read_only() -> None:
    got = launch(spec(Language.SHELL, "a.sh"))
    with pytest.raises(TypeError):
        got.env["X"] = "1"  # type: ignore[index]


@pytest.mark.parametrize(
    ("language", "directive", "should_process"),
    [
        (Language.SHELL, True, False),
        (Language.PYTHON, True, False),
        (Language.EXECUTABLE, True, False),
    ],
)
def test_dry_run_with_the_directive_sets_opsroom_dry_run(
    language: Language, directive: bool, should_process: bool
) -> None:
    s = spec(language, "a", dry_run=directive, should_process=should_process)
    assert launch(s, dry_run=True).env["OPSROOM_DRY_RUN"] == "1"
    assert launch(s, dry_run=False).env["OPSROOM_DRY_RUN"] == "0"


@pytest.mark.parametrize("language", [Language.SHELL, Language.PYTHON, Language.POWERSHELL])
def test_dry_run_without_support_is_refused(language: Language) -> None:
    with pytest.raises(RefusedError) as err:
        launch(spec(language, "a"), dry_run=True)
    assert str(err.value) == "storage migrate does not support --dry-run; nothing was run"


def test_unknown_parameter_is_refused() -> None:
    with pytest.raises(RefusedError, match="ErrorAction"):
        launch(spec(Language.SHELL, "a.sh"), {"ErrorAction": "SilentlyContinue"})


def test_nul_in_a_value_is_refused() -> None:
    with pytest.raises(RefusedError, match="target-host"):
        launch(spec(Language.SHELL, "a.sh"), {"target-host": "a\x00b"})


def test_a_path_outside_the_catalog_is_refused() -> None:
    with pytest.raises(RefusedError, match="outside"):
        launch(spec(Language.SHELL, "../../etc/evil.sh"))


def test_powershell_without_pwsh_is_refused_naming_the_runtime() -> None:
    settings = RunnerSettings(pwsh="pwsh-not-installed-here")
    assert missing_runtime(Language.POWERSHELL, settings) == (
        "PowerShell runtime (pwsh-not-installed-here)"
    )
    with pytest.raises(RefusedError) as err:
        launch(spec(Language.POWERSHELL, "network/Get-Status.ps1"), settings=settings)
    assert str(err.value) == (
        "no PowerShell runtime (pwsh-not-installed-here) on this host: "
        "storage migrate cannot run here"
    )


@pytest.fixture
def fake_pwsh(tmp_path: Path) -> str:
    """A stand-in runtime on disk, so the argv can be checked where pwsh is absent."""
    exe = tmp_path / "pwsh"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    return str(exe)


def test_powershell_argv_is_exact(fake_pwsh: str) -> None:
    settings = RunnerSettings(pwsh=fake_pwsh)
    assert missing_runtime(Language.POWERSHELL, settings) is None
    got = launch(
        spec(Language.POWERSHELL, "network/Get-Status.ps1"),
        {"target-host": TRICKY, "hosts": ("a", "b"), "force": True},
        settings=settings,
    )
    assert got.argv == (
        fake_pwsh,
        "-NoLogo",
        "-NoProfile",
        "-NonInteractive",
        "-File",
        str(POWERSHELL_BOOTSTRAP),
        "/srv/catalog/network/Get-Status.ps1",
    )
    # Values only in the JSON, never on the command line.
    assert TRICKY not in " ".join(got.argv)
    assert json.loads(got.env["OPSROOM_PARAMS"]) == {
        "target-host": TRICKY,
        "hosts": ["a", "b"],
        "force": True,
    }
    assert json.loads(got.env["OPSROOM_PARAM_TYPES"])["force"] == "switch"


def test_powershell_dry_run_with_should_process(fake_pwsh: str) -> None:
    s = spec(Language.POWERSHELL, "a.ps1", should_process=True)
    got = launch(s, dry_run=True, settings=RunnerSettings(pwsh=fake_pwsh))
    assert got.env["OPSROOM_DRY_RUN"] == "1"


def test_bash_is_resolved_on_path() -> None:
    got = launch(spec(Language.SHELL, "a.sh"), settings=RunnerSettings())
    assert got.argv[0] == shutil.which("bash")


def test_job_token_is_in_the_environment_and_cannot_be_shadowed() -> None:
    s = spec(Language.SHELL, "storage/migrate.sh", secrets=("OPSROOM_JOB_TOKEN",))
    got = build_launch(
        s,
        Invocation(s.name, MappingProxyType({})),
        catalog_root=ROOT,
        job_id=7,
        requester="slack:U024BE7LH",
        room="slack:C0NOC1",
        settings=RunnerSettings(bash="/bin/bash"),
        secrets={"OPSROOM_JOB_TOKEN": "forged"},
        base_env={**BOT_ENV, "OPSROOM_JOB_TOKEN": "inherited"},
        workdir=WORK,
        token="a1b2",
    )
    assert got.env["OPSROOM_JOB_TOKEN"] == "a1b2"
    assert "OPSROOM_JOB_TOKEN" not in launch(spec(Language.SHELL, "storage/migrate.sh")).env


def _program(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_programs_on_path_are_remembered_until_they_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"opsroom-which-{tmp_path.name}"
    first, second = tmp_path / "first", tmp_path / "second"
    monkeypatch.setenv("PATH", f"{first}{os.pathsep}{second}")
    # Not found is not remembered: installed later, it is found.
    assert argv._which(name) is None
    later = _program(second, name)
    assert argv._which(name) == str(later)
    # Found once, it stays found there while it is a program: a shell's hash table.
    _program(first, name)
    assert argv._which(name) == str(later)
    # Gone (or no longer runnable), PATH is walked again.
    later.chmod(0o644)
    assert argv._which(name) == str(first / name)
    # Another PATH is another lookup.
    monkeypatch.setenv("PATH", str(second))
    assert argv._which(name) is None
