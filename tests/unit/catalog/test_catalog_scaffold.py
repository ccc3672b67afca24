"""`opsroom new`: scaffolds that load cleanly and whose tests pass (SPEC §3.9)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from opsroom.catalog.scaffold import scaffold
from opsroom.catalog.scan import load_catalog


@pytest.mark.parametrize(
    ("language", "name", "files", "command"),
    [
        ("python", "storage migrate-volume",
         ["storage/migrate_volume.py", "storage/test_migrate_volume.py"],
         "storage migrate-volume"),
        ("shell", "web/restart-nginx",
         ["web/restart_nginx.sh", "web/_test_restart_nginx.sh"], "web restart-nginx"),
        ("powershell", "network get-status",
         ["network/Get-Status.ps1", "network/Get-Status.Tests.ps1"], "network get-status"),
        ("python", "cleanup", ["cleanup.py", "test_cleanup.py"], "cleanup"),
    ],
)  # fmt: skip
def test_scaffold_loads_without_any_issue(
    tmp_path: Path, language: str, name: str, files: list[str], command: str
) -> None:
    paths = scaffold(language, name, tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == files
    cat = load_catalog(tmp_path, commit=None)
    assert cat.issues == ()  # not even a warning: passes --strict
    (spec,) = cat.commands
    assert spec.name == command
    assert spec.summary
    assert len(spec.params) == 1
    assert spec.params[0].required
    assert spec.params[0].help
    assert spec.examples


def _pytest(test: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """pytest run on one file as a team runs it: the installed plugin, no conftest."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("name", ["storage migrate-volume", "cleanup"])
def test_python_scaffold_test_passes_through_the_bot_fixture(tmp_path: Path, name: str) -> None:
    catalog = tmp_path / "scripts"
    script, test = scaffold("python", name, catalog)
    command = name
    done = _pytest(test, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert "def test_names_its_target(bot: SyncBot)" in test.read_text()
    # It asks opsroom, not the script's main(): a command kept to another room is refused
    # there, and the test says what the chat answered.
    source = script.read_text()
    script.write_text('# opsroom: rooms = ["slack:C0NOC"]\n' + source)
    refused = _pytest(test, tmp_path)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"denied: {command} may run only in slack:C0NOC" in refused.stdout


def test_shell_scaffold_test_passes(tmp_path: Path) -> None:
    bash = shutil.which("bash")
    assert bash is not None
    _, test = scaffold("shell", "web restart-nginx", tmp_path)
    done = subprocess.run([bash, str(test)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "ok" in done.stdout


@pytest.mark.pwsh
@pytest.mark.skipif(shutil.which("pwsh") is None, reason="needs pwsh")
def test_powershell_scaffold_runs(tmp_path: Path) -> None:
    pwsh = shutil.which("pwsh")
    assert pwsh is not None
    script, _ = scaffold("powershell", "network get-status", tmp_path)
    done = subprocess.run(
        [pwsh, "-NoLogo", "-NoProfile", "-NonInteractive", "-File", str(script), "-Target", "x1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "x1" in done.stdout


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    script, _ = scaffold("python", "a b", tmp_path)
    script.write_text("# my work\n")
    with pytest.raises(FileExistsError, match="already exists"):
        scaffold("python", "a b", tmp_path)
    assert script.read_text() == "# my work\n"


@pytest.mark.parametrize("name", ["", "  ", "bad name!", "_hidden", "a/.git"])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="name"):
        scaffold("python", name, tmp_path)
    assert list(tmp_path.iterdir()) == []
