"""Loading a whole catalog folder (SPEC §3): names, merging, issues, determinism."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from opsroom.catalog.scan import bundled_catalog_path, catalog_commit, load_catalog
from opsroom.errors import CatalogError
from opsroom.model.catalog import Severity
from opsroom.model.commands import Language

GOOD_PY = '''\
"""Show the status of a store."""
# opsroom: aliases = ["ss"]


def main(store: int, verbose: bool = False) -> None:
    print(store)
'''
GOOD_SH = """\
#!/usr/bin/env bash
# opsroom: timeout = "90s"
# @describe Restart a service.
# @arg service![nginx|php-fpm] Service to restart
echo restart
"""


def _write(root: Path, rel: str, text: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_loads_scripts_with_paths_hashes_and_directives(tmp_path: Path) -> None:
    py = _write(tmp_path, "store/status.py", GOOD_PY)
    _write(tmp_path, "web/restart_service.sh", GOOD_SH)
    _write(tmp_path, "store/_lib/common.py", "def main(): pass\n")
    _write(tmp_path, "store/test_status.py", "def test_x(): pass\n")
    _write(tmp_path, "README.md", "# scripts\n")
    cat = load_catalog(tmp_path, commit="deadbeef")
    assert cat.issues == ()
    assert cat.commit == "deadbeef"
    assert cat.root == str(tmp_path.resolve())
    assert [c.name for c in cat.commands] == ["store status", "web restart-service"]
    status, restart = cat.commands
    assert (status.path, status.language, status.aliases) == (
        "store/status.py", Language.PYTHON, ("ss",),
    )  # fmt: skip
    assert status.script_hash == hashlib.sha256(py.read_bytes()).hexdigest()
    assert (restart.language, restart.timeout, restart.line) == (Language.SHELL, 90.0, 3)
    assert restart.params[0].choices == ("nginx", "php-fpm")


def test_broken_scripts_are_reported_and_never_stop_the_others(tmp_path: Path) -> None:
    _write(tmp_path, "a/broken.py", '"""Broken."""\ndef main(:\n')
    _write(tmp_path, "a/latin1.sh", b"# @describe caf\xe9\n")
    _write(tmp_path, "b/good.py", GOOD_PY)
    _write(tmp_path, "c/restart.sh", GOOD_SH)
    cat = load_catalog(tmp_path)
    # a file that is not UTF-8 is read as Windows-1252 (SPEC §3.10), not refused
    assert [(c.name, c.summary) for c in cat.commands] == [
        ("a latin1", "café"),
        ("b good", "Show the status of a store."),
        ("c restart", "Restart a service."),
    ]
    assert [(i.path, i.line, i.severity) for i in cat.issues] == [
        ("a/broken.py", 2, Severity.ERROR),
    ]


def test_duplicate_names_and_aliases_are_errors_on_the_later_script(tmp_path: Path) -> None:
    _write(tmp_path, "net/get_status.py", '"""A."""\ndef main(): pass\n')
    _write(tmp_path, "net/get-status.sh", "# @describe B.\n")
    _write(tmp_path, "x/first.py", '"""C."""\n# opsroom: aliases = ["go"]\ndef main(): pass\n')
    _write(tmp_path, "y/second.sh", '# opsroom: owner = "me"\n# opsroom: aliases = ["go"]\n')
    _write(tmp_path, "z/alias_to_name.sh", '# opsroom: aliases = ["x first"]\n# @describe D.\n')
    _write(tmp_path, "go.sh", "# @describe Named like an alias.\n")
    cat = load_catalog(tmp_path)
    assert [str(i) for i in cat.errors] == [
        # `-` sorts before `_`, so get-status.sh is read first and keeps the name
        "net/get_status.py:1: duplicate command name 'net get-status' "
        "(already defined by net/get-status.sh)",
        "x/first.py:2: duplicate alias 'go' (already defined by go.sh)",
        "y/second.sh:2: duplicate alias 'go' (already defined by go.sh)",
    ]
    assert [c.name for c in cat.commands] == ["go", "net get-status", "z alias-to-name"]
    # the same tree always gives the same answer
    assert load_catalog(tmp_path) == cat


def test_mandatory_parameter_with_a_default_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path, "a.sh", "# @describe A.\n# @option --region!=emea Region\n")
    _write(
        tmp_path,
        "b.py",
        '"""B."""\ndef main(host: str = "web01"): pass\n',
    )
    _write(tmp_path, "b.py.opsroom.toml", "[params.host]\nrequired = true\n")
    cat = load_catalog(tmp_path)
    assert cat.commands == ()
    assert [str(i) for i in cat.issues] == [
        "a.sh:2: mandatory parameter 'region' has a default",
        "b.py.opsroom.toml:1: mandatory parameter 'host' has a default",
    ]


def test_unknown_type_and_bad_directive_are_errors(tmp_path: Path) -> None:
    _write(tmp_path, "a.py", '"""A."""\nfrom pathlib import Path\ndef main(p: Path): pass\n')
    _write(tmp_path, "b.sh", '# opsroom: colour = "red"\n# @describe B.\n')
    cat = load_catalog(tmp_path)
    assert cat.commands == ()
    assert [(i.path, i.line, i.severity) for i in cat.issues] == [
        ("a.py", 3, Severity.ERROR),
        ("b.sh", 1, Severity.ERROR),
    ]
    assert "unknown type" in cat.issues[0].message
    assert "unknown directive 'colour'" in cat.issues[1].message


def test_choices_from_goes_to_the_first_required_parameter(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "jenkins/build.py",
        '"""Build."""\n# opsroom: choices_from = "jenkins jobs"\n'
        "def main(branch: str = 'main', *, job: str): pass\n",
    )
    _write(
        tmp_path,
        "jenkins/deploy.sh",
        '# opsroom: choices_from = { env = "envs list" }\n# @describe D.\n# @option --env\n',
    )
    _write(tmp_path, "bad.sh", '# opsroom: choices_from = "x"\n# @describe No params.\n')
    cat = load_catalog(tmp_path)
    build = next(c for c in cat.commands if c.name == "jenkins build")
    assert [(p.name, p.choices_from) for p in build.params] == [
        ("branch", None), ("job", "jenkins jobs"),
    ]  # fmt: skip
    deploy = next(c for c in cat.commands if c.name == "jenkins deploy")
    assert deploy.params[0].choices_from == "envs list"
    assert [(i.path, i.line) for i in cat.issues] == [("bad.sh", 1)]


def test_builtin_names_cannot_be_taken(tmp_path: Path) -> None:
    _write(tmp_path, "help.sh", "# @describe Shadow help.\n")
    _write(tmp_path, "help/me.sh", "# @describe Fine.\n")
    cat = load_catalog(tmp_path)
    assert [c.name for c in cat.commands] == ["help me"]
    assert [str(i) for i in cat.issues] == ["help.sh:1: command name 'help' is a built-in"]


def test_case_insensitive_parameter_clash(tmp_path: Path) -> None:
    _write(tmp_path, "a.py", '"""A."""\ndef main(Host: str, host: str): pass\n')
    cat = load_catalog(tmp_path)
    assert cat.commands == ()
    assert "clashes" in cat.issues[0].message


def test_missing_folder_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="not found"):
        load_catalog(tmp_path / "nope")


def test_commit_from_git(tmp_path: Path) -> None:
    git = shutil.which("git")
    assert git is not None
    assert catalog_commit(tmp_path) is None
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        "HOME": str(tmp_path),
        "PATH": os.environ.get("PATH", ""),
    }
    _write(tmp_path, "a.sh", "# @describe A.\n")
    for args in (["init", "-q"], ["add", "a.sh"], ["commit", "-q", "-m", "one"]):
        subprocess.run([git, *args], cwd=tmp_path, check=True, env=env)
    head = subprocess.run(
        [git, "rev-parse", "HEAD"], cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout.strip()
    assert catalog_commit(tmp_path) == head
    assert load_catalog(tmp_path).commit == head


def test_bundled_catalog_loads_cleanly() -> None:
    cat = load_catalog(bundled_catalog_path())
    assert cat.commands
    assert cat.errors == ()


def test_ten_thousand_scripts_all_load(tmp_path: Path) -> None:
    # How fast: bench/bench_catalog.py (10,000 scripts cold, budget 5 s).
    for team in range(50):
        (tmp_path / f"team{team}").mkdir()
    for i in range(5000):
        folder = tmp_path / f"team{i % 50}"
        (folder / f"py_{i}.py").write_text(GOOD_PY.replace('"ss"', f'"ss{i}"'))
        (folder / f"sh_{i}.sh").write_text(GOOD_SH)
    cat = load_catalog(tmp_path, commit="x")
    assert len(cat.commands) == 10_000
    assert cat.issues == ()


def test_powershell_mandatory_default_is_reported_once(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "Get-X.ps1",
        "<#\n.SYNOPSIS\n  X.\n#>\nparam(\n  [Parameter(Mandatory)]\n  [string]$Name = 'x'\n)\n",
    )
    cat = load_catalog(tmp_path)
    assert cat.commands == ()
    assert [(i.path, i.line) for i in cat.issues] == [("Get-X.ps1", 7)]
    assert "mandatory" in cat.issues[0].message
