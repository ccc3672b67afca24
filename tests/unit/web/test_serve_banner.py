"""How the start banner names the opsroom command: only `opsroom` when that is on PATH."""

from __future__ import annotations

from pathlib import Path

from opsroom.config import RoleSettings, Settings
from opsroom.web.accounts import demo_settings, has_demo_roles
from opsroom.web.server import opsroom_command


def _exe(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_on_path_it_is_just_opsroom(tmp_path: Path) -> None:
    exe = _exe(tmp_path / "venv" / "bin" / "opsroom")
    assert opsroom_command(str(exe), cwd=tmp_path, path=str(exe.parent)) == "opsroom"


def test_a_checkouts_venv_started_by_scripts_start_names_the_script(tmp_path: Path) -> None:
    exe = _exe(tmp_path / ".venv" / "bin" / "opsroom")
    _exe(tmp_path / "scripts" / "start")
    assert opsroom_command(str(exe), cwd=tmp_path, path="/nonexistent") == "./scripts/start"


def test_off_path_it_is_the_real_path(tmp_path: Path) -> None:
    exe = _exe(tmp_path / ".venv" / "bin" / "opsroom")
    # In the folder: relative, as typed there.
    assert opsroom_command(str(exe), cwd=tmp_path, path="/nonexistent") == ".venv/bin/opsroom"
    # Elsewhere: the absolute path.
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert opsroom_command(str(exe), cwd=other, path="/nonexistent") == str(exe)
    # Another `opsroom` on PATH is not the one running: still the real path.
    _exe(tmp_path / "other-bin" / "opsroom")
    assert opsroom_command(str(exe), cwd=other, path=str(tmp_path / "other-bin")) == str(exe)


def test_demo_roles_only_on_embedded_defaults_without_roles() -> None:
    demo = demo_settings(Settings())
    assert has_demo_roles(demo)
    assert [r.name for r in demo.roles] == ["everyone", "storage-leads"]
    assert demo_settings(Settings(source="file")).roles == ()
    own = Settings(roles=(RoleSettings(name="ops", members=("web:*",), allow=("*",)),))
    assert demo_settings(own) == own
    assert not has_demo_roles(own)
