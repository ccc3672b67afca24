"""PowerShell on a Windows worker: `pwsh` or `powershell.exe`, whichever the host has (SPEC §8).

The Windows record is selected on Linux; the programs are real files on a PATH of the
test's own, found by the same PATH search the product does.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType

import pytest

from opsroom.config import RunnerSettings
from opsroom.errors import RefusedError
from opsroom.model.commands import CommandSpec, Invocation, Language, ParamSpec
from opsroom.runner.argv import POWERSHELL_BOOTSTRAP, Launch, build_launch, missing_runtime
from opsroom.runner.platform import LINUX, WINDOWS, Platform

SCRIPT = "ad/Get-Locked.ps1"
CATALOG = Path("/srv/catalog")
FLAGS = ("-NoLogo", "-NoProfile", "-NonInteractive", "-File")
TAIL = (str(POWERSHELL_BOOTSTRAP), str(CATALOG / SCRIPT))
VALUE = '"; Remove-Item C:\\ -Recurse; $(whoami) `n'
BOT_ENV = {
    "PATH": "C:\\Windows\\system32;C:\\Program Files\\PowerShell\\7",
    "SYSTEMROOT": "C:\\Windows",
    "USERPROFILE": "C:\\Users\\svc-opsroom",
    "SLACK_BOT_TOKEN": "xoxb-not-for-scripts",
    "HOME": "/home/bot",
}


def programs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *names: str) -> dict[str, str]:
    """Executables with these names, and a PATH that holds only them."""
    folder = tmp_path / "bin"
    folder.mkdir()
    found = {}
    for name in names:
        exe = folder / name
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(0o755)
        found[name] = str(exe)
    monkeypatch.setenv("PATH", str(folder))
    return found


def launch(
    platform: Platform, settings: RunnerSettings | None = None, *, work: Path = Path("/w")
) -> Launch:
    spec = CommandSpec(
        name="ad locked",
        path=SCRIPT,
        language=Language.POWERSHELL,
        params=(ParamSpec("identity"),),
    )
    return build_launch(
        spec,
        Invocation(spec.name, MappingProxyType({"identity": VALUE})),
        catalog_root=CATALOG,
        job_id=9,
        requester="teams:29:1",
        room="teams:19:ops",
        settings=settings or RunnerSettings(),
        base_env=BOT_ENV,
        workdir=work,
        platform=platform,
    )


def test_windows_prefers_pwsh_and_lets_it_run_the_bootstrap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exe = programs(tmp_path, monkeypatch, "pwsh", "powershell")
    got = launch(WINDOWS)
    assert got.argv == (exe["pwsh"], "-ExecutionPolicy", "Bypass", *FLAGS, *TAIL)
    # The value never reaches the command line, only the JSON.
    assert VALUE not in " ".join(got.argv)
    assert json.loads(got.env["OPSROOM_PARAMS"]) == {"identity": VALUE}


def test_windows_powershell_runs_it_where_pwsh_is_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exe = programs(tmp_path, monkeypatch, "powershell")
    assert missing_runtime(Language.POWERSHELL, RunnerSettings(), WINDOWS) is None
    got = launch(WINDOWS)
    assert got.argv == (exe["powershell"], "-ExecutionPolicy", "Bypass", *FLAGS, *TAIL)


def test_posix_runs_pwsh_only_and_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exe = programs(tmp_path, monkeypatch, "pwsh", "powershell")
    assert launch(LINUX).argv == (exe["pwsh"], *FLAGS, *TAIL)


def test_posix_does_not_take_windows_powershell_for_pwsh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    programs(tmp_path, monkeypatch, "powershell")
    assert missing_runtime(Language.POWERSHELL, RunnerSettings(), LINUX) == (
        "PowerShell runtime (pwsh)"
    )
    with pytest.raises(RefusedError, match=r"no PowerShell runtime \(pwsh\) on this host"):
        launch(LINUX)


def test_windows_without_either_names_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    programs(tmp_path, monkeypatch)
    assert missing_runtime(Language.POWERSHELL, RunnerSettings(), WINDOWS) == (
        "PowerShell runtime (pwsh or powershell)"
    )
    with pytest.raises(RefusedError, match=r"\(pwsh or powershell\) on this host"):
        launch(WINDOWS)


def test_a_configured_pwsh_is_the_only_one_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exe = programs(tmp_path, monkeypatch, "pwsh7", "powershell")
    settings = RunnerSettings(pwsh="pwsh7")
    assert launch(WINDOWS, settings).argv == (
        exe["pwsh7"],
        "-ExecutionPolicy",
        "Bypass",
        *FLAGS,
        *TAIL,
    )
    with pytest.raises(RefusedError, match=r"\(pwsh-preview\) on this host"):
        launch(WINDOWS, RunnerSettings(pwsh="pwsh-preview"))


def test_a_windows_job_keeps_the_windows_environment_and_its_own_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    programs(tmp_path, monkeypatch, "pwsh")
    env = launch(WINDOWS, work=tmp_path / "job").env
    assert env["PATH"] == BOT_ENV["PATH"]  # Windows' own, not the POSIX safe PATH
    assert env["SYSTEMROOT"] == "C:\\Windows"
    assert env["USERPROFILE"] == "C:\\Users\\svc-opsroom"
    assert env["TEMP"] == env["TMP"] == str(tmp_path / "job")
    assert "SLACK_BOT_TOKEN" not in env
    assert "HOME" not in env
