"""`opsroom catalog check|list|show|export` and `opsroom new`, run as the real console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest


def _opsroom_exe() -> str:
    beside = Path(sys.executable).parent / "opsroom"
    if beside.exists():
        return str(beside)
    found = shutil.which("opsroom")
    assert found is not None, "the opsroom console script is not installed"
    return found


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str


def opsroom(*args: str, cwd: Path) -> Result:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}
    done = subprocess.run(
        [_opsroom_exe(), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


CLEAN = {
    "storage/migrate_volume.py": '''\
"""Migrate a volume to another aggregate.

Moves the volume online.

Examples:
    storage migrate-volume vol_web aggr2
"""
# opsroom: timeout = "2h"
# opsroom: approval = "storage-leads"
# opsroom: aliases = ["migrate"]


def main(volume: str, target: str = "aggr1", *, force: bool = False) -> None:
    """Migrate.

    Args:
        volume: The volume to move.
        target: Destination aggregate.
        force: Skip the space check.
    """
''',
    "web/restart.sh": """\
#!/usr/bin/env bash
# @describe Restart a web service.
# @arg service![nginx|php-fpm] Service to restart
# @flag --force Restart even when healthy
echo restarting
""",
}


@pytest.fixture
def clean(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    for rel, text in CLEAN.items():
        _write(root, rel, text)
    return root


def test_check_clean_catalog_exits_0(clean: Path) -> None:
    r = opsroom("catalog", "check", str(clean), cwd=clean)
    assert r.code == 0, r.stdout + r.stderr
    assert r.stdout == ""
    assert "2 commands, 0 errors" in r.stderr


def test_check_reports_each_error_gnu_style_and_exits_1(clean: Path) -> None:
    # a second script claiming an alias already taken
    _write(clean, "storage/move.sh", '# opsroom: aliases = ["migrate"]\n# @describe Move.\n')
    _write(clean, "x/unknown_directive.sh", '# @describe X.\n# opsroom: colour = "red"\n')
    _write(clean, "y/mandatory.sh", "# @describe Y.\n\n# @option --region!=emea Region\n")
    _write(clean, "z/broken.py", '"""Broken."""\n\ndef main(:\n')
    r = opsroom("catalog", "check", str(clean), cwd=clean)
    assert r.code == 1
    lines = r.stdout.splitlines()
    assert lines == [
        "storage/move.sh:1: duplicate alias 'migrate' (already defined by "
        "storage/migrate_volume.py)",
        lines[1],
        "y/mandatory.sh:3: mandatory parameter 'region' has a default",
        "z/broken.py:3: syntax error: invalid syntax",
    ]
    assert lines[1].startswith("x/unknown_directive.sh:2: unknown directive 'colour'")
    # the good scripts still loaded
    listed = opsroom("catalog", "list", str(clean), cwd=clean)
    assert [ln.split("  ")[0] for ln in listed.stdout.splitlines()] == [
        "storage migrate-volume",
        "web restart",
    ]


def test_warnings_fail_only_under_strict(clean: Path) -> None:
    _write(clean, "quiet.sh", "echo no description\n")
    r = opsroom("catalog", "check", str(clean), cwd=clean)
    assert r.code == 0
    assert r.stdout == "quiet.sh:1: warning: missing `# @describe` (the command summary)\n"
    strict = opsroom("catalog", "check", "--strict", str(clean), cwd=clean)
    assert strict.code == 1
    assert strict.stdout == r.stdout


def test_check_json(clean: Path) -> None:
    _write(clean, "z/broken.py", "def main(:\n")
    r = opsroom("catalog", "check", "--format", "json", str(clean), cwd=clean)
    assert r.code == 1
    doc = json.loads(r.stdout)
    assert doc["ok"] is False
    assert doc["commands"] == 2
    assert doc["issues"] == [
        {"path": "z/broken.py", "line": 1, "message": "syntax error: invalid syntax",
         "severity": "error"},
    ]  # fmt: skip


def test_list_aligns_names_and_summaries(clean: Path) -> None:
    r = opsroom("catalog", "list", str(clean), cwd=clean)
    assert r.code == 0
    assert r.stdout == (
        "storage migrate-volume  Migrate a volume to another aggregate.\n"
        "web restart             Restart a web service.\n"
    )


def test_show_text_and_json(clean: Path) -> None:
    r = opsroom("catalog", "show", "storage migrate-volume", str(clean), cwd=clean)
    assert r.code == 0, r.stderr
    out = r.stdout
    assert "usage: storage migrate-volume <volume> [<target>] [--force]" in out
    assert "volume (string; required)" in out
    assert "target (string; optional; default aggr1)" in out
    assert "storage migrate-volume vol_web aggr2" in out
    assert "timeout = 7200s" in out
    assert "approval = storage-leads" in out
    by_alias = opsroom("catalog", "show", "migrate", "--format", "json", str(clean), cwd=clean)
    doc = json.loads(by_alias.stdout)
    assert doc["name"] == "storage migrate-volume"
    assert doc["params"][0] == {
        "name": "volume", "type": "string", "required": True, "default": None,
        "default_text": None, "choices": [], "range": None, "pattern": None, "length": None,
        "help": "The volume to move.", "aliases": [], "position": 0, "choices_from": None,
    }  # fmt: skip
    web = json.loads(opsroom("catalog", "show", "web restart", "--format", "json", str(clean),
                             cwd=clean).stdout)  # fmt: skip
    assert [(p["name"], p["type"], p["choices"]) for p in web["params"]] == [
        ("service", "string", ["nginx", "php-fpm"]), ("force", "switch", []),
    ]  # fmt: skip


def test_show_unknown_name_exits_2(clean: Path) -> None:
    r = opsroom("catalog", "show", "storage nope", str(clean), cwd=clean)
    assert r.code == 2
    assert "unknown command: storage nope" in r.stderr


def test_export_writes_one_json_document(clean: Path, tmp_path: Path) -> None:
    out = tmp_path / "catalog.json"
    r = opsroom("catalog", "export", str(clean), "-o", str(out), cwd=clean)
    assert r.code == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["root"] == str(clean.resolve())
    assert doc["commit"] is None
    assert [c["name"] for c in doc["commands"]] == ["storage migrate-volume", "web restart"]
    assert doc["issues"] == []
    printed = opsroom("catalog", "export", str(clean), cwd=clean)
    assert json.loads(printed.stdout) == doc


@pytest.mark.parametrize("language", ["python", "shell", "powershell"])
def test_new_scaffold_passes_strict_check_unchanged(tmp_path: Path, language: str) -> None:
    root = tmp_path / "scripts"
    root.mkdir()
    r = opsroom("new", language, "storage migrate-volume", str(root), cwd=tmp_path)
    assert r.code == 0, r.stderr
    assert r.stdout.count("created ") == 2
    check = opsroom("catalog", "check", "--strict", str(root), cwd=tmp_path)
    assert check.code == 0, check.stdout
    assert check.stdout == ""
    listed = opsroom("catalog", "list", str(root), cwd=tmp_path)
    assert listed.stdout.startswith("storage migrate-volume  ")
    again = opsroom("new", language, "storage migrate-volume", str(root), cwd=tmp_path)
    assert again.code == 1
    assert "already exists" in again.stderr


def test_new_rejects_unknown_language(tmp_path: Path) -> None:
    r = opsroom("new", "perl", "x", str(tmp_path), cwd=tmp_path)
    assert r.code == 2
    assert "perl" in r.stderr


def test_default_dir_comes_from_config_or_bundled_examples(clean: Path, tmp_path: Path) -> None:
    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    (cfg_dir / "opsroom.toml").write_text('[catalog]\npath = "../catalog"\n')
    r = opsroom("catalog", "list", cwd=cfg_dir)
    assert r.code == 0, r.stderr
    assert "storage migrate-volume" in r.stdout
    bundled = opsroom("catalog", "check", cwd=tmp_path)
    assert bundled.code == 0, bundled.stdout
    (cfg_dir / "opsroom.toml").write_text("[catalog]\npaht = 1\n")
    bad = opsroom("catalog", "list", cwd=cfg_dir)
    assert bad.code == 2
    assert "catalog.paht" in bad.stderr


ADOPT = Path(__file__).parents[1] / "fixtures" / "adopt"


def test_adopt_writes_a_sidecar_that_checks_and_runs_with_argv(tmp_path: Path) -> None:
    root = tmp_path / "catalog"
    root.mkdir()
    shutil.copy(ADOPT / "deploy.sh", root / "deploy.sh")
    before = opsroom("catalog", "check", str(root), cwd=tmp_path)
    assert "deploy.sh:7: warning: reads its own options" in before.stdout
    r = opsroom("catalog", "adopt", str(root / "deploy.sh"), cwd=tmp_path)
    assert r.code == 0, r.stderr
    assert r.stdout.splitlines()[:4] == [
        'read deploy.sh: getopts ":hvnf:t:" (line 22), usage() (line 7), '
        "the header comment (line 2)",
        "summary: Deploy the web site to one host",
        'argv = "getopts"',
        "  -v          verbose      flag      Verbose output",
    ]
    assert "left out -h: shows the usage text" in r.stdout
    sidecar = root / "deploy.sh.opsroom.toml"
    written = sidecar.read_text(encoding="utf-8")
    assert "TODO" in written
    check = opsroom("catalog", "check", str(root), cwd=tmp_path)
    assert check.code == 0, check.stdout
    assert check.stdout == ""  # the adopt warning is gone
    shown = opsroom("catalog", "show", "deploy", str(root), cwd=tmp_path)
    assert "argv: getopts (the values also as command-line options)" in shown.stdout
    assert "  config_file (string; optional; alias f)" in shown.stdout
    as_json = opsroom("catalog", "show", "deploy", str(root), "--format", "json", cwd=tmp_path)
    assert json.loads(as_json.stdout)["argv"] == "getopts"
    # the runner passes the values as getopts reads them: real bash, real argv
    run = opsroom(
        "run",
        "--catalog",
        str(root),
        '!deploy web01 more1 more2 --config_file "my conf" -t a -t b --verbose',
        cwd=tmp_path,
    )
    assert run.code == 0, run.stdout + run.stderr
    assert "host=web01 config=my conf verbose=1 dry=0 tags=a b rest=more1 more2" in run.stdout
    # never overwrites: a person's edits are kept
    sidecar.write_text(written + "# edited\n", encoding="utf-8")
    again = opsroom("catalog", "adopt", str(root / "deploy.sh"), cwd=tmp_path)
    assert again.code == 1
    assert "already exists; not overwritten" in again.stderr
    assert sidecar.read_text(encoding="utf-8").endswith("# edited\n")


def test_adopt_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    _write(tmp_path, "a.py", '"""A."""\ndef main(): pass\n')
    _write(tmp_path, "b.sh", "# @describe B.\n# @option --x X\n")
    py = opsroom("catalog", "adopt", "a.py", cwd=tmp_path)
    assert py.code == 2
    assert "not a shell script" in py.stderr
    tagged = opsroom("catalog", "adopt", "b.sh", cwd=tmp_path)
    assert tagged.code == 1
    assert "declares its parameters with tags already" in tagged.stderr
    missing = opsroom("catalog", "adopt", "nope.sh", cwd=tmp_path)
    assert missing.code == 2
    assert "cannot read" in missing.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.py", "b.sh"]


def test_report_text_and_json(tmp_path: Path) -> None:
    _write(tmp_path, "ps/Get-Good.ps1", "<#\n.SYNOPSIS\nGood.\n#>\nparam([string]$Name)\n")
    _write(tmp_path, "py/good.py", '"""Good."""\ndef main(n: int = 1): pass\n')
    _write(tmp_path, "py/broken.py", '"""B."""\ndef main(:\n')
    shutil.copy(ADOPT / "backup.sh", tmp_path / "backup.sh")
    r = opsroom("catalog", "report", str(tmp_path), cwd=tmp_path)
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:6] == [
        "language    files  commands  with params  library  fell back  failed",
        "PowerShell      1         1            1        0          0       0",
        "Python          2         1            1        0          0       1",
        "shell           1         1            0        0          1       0",
        "other           0         0            0        0          0       0",
        "total           4         3            2        0          1       1",
    ]
    assert "  Python: 1 × syntax error: invalid syntax — py/broken.py" in lines
    assert lines[-1] == "3 of 4 script files became commands (75%)"
    doc = json.loads(
        opsroom("catalog", "report", "--format", "json", str(tmp_path), cwd=tmp_path).stdout
    )
    assert doc["total"]["share"] == 0.75
    assert doc["languages"][2]["fell_back_reasons"][0]["examples"] == ["backup.sh"]
