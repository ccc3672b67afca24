"""`opsroom catalog report`: counts per language, grouped reasons, the share adopted (§3.10)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from opsroom.catalog.report import (
    build_report,
    closing_line,
    reason_of,
    render_report,
    report_to_dict,
)
from opsroom.catalog.scan import load_catalog
from opsroom.model.catalog import Catalog, CatalogIssue, ScriptFile, Severity
from opsroom.model.commands import CommandSpec, Language, ParamSpec

ADOPT = Path(__file__).parents[2] / "fixtures" / "adopt"
W = Severity.WARNING


def _write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A small repository as teams have them: some scripts fit, some fall back, some fail."""
    _write(tmp_path, "ps/Get-Good.ps1", "<#\n.SYNOPSIS\nGood.\n#>\nparam([string]$Name)\n")
    _write(tmp_path, "ps/NoHelp.ps1", "param([string]$Name)\n")  # adopted, only no summary
    _write(
        tmp_path,
        "ps/Bad.ps1",
        '<#\n.SYNOPSIS\nB.\n#>\nparam([Parameter(Mandatory)][string]$Name = "x")\n',
    )
    _write(tmp_path, "py/good.py", '"""Good."""\ndef main(n: int = 1): pass\n')
    _write(tmp_path, "py/plain.py", '"""Plain."""\ndef main(): pass\n')
    _write(tmp_path, "py/broken.py", '"""B."""\ndef main(:\n')
    _write(tmp_path, "py/broken2.py", '"""B."""\ndef main(:\n')
    _write(tmp_path, "sh/tags.sh", "# @describe T.\n# @option --x X\n")
    for name in ("deploy.sh", "backup.sh"):
        shutil.copy(ADOPT / name, tmp_path / "sh" / name)
    tool = _write(tmp_path, "tools/sync", "#!/bin/sh\necho hi\n")
    tool.chmod(0o700)
    _write(tmp_path, "tools/sync.opsroom.toml", 'summary = "Sync."\n')
    _write(tmp_path, "sh/gone.sh.opsroom.toml", "x = 1\n")  # a sidecar with no script
    return tmp_path


def test_counts_per_language(repo: Path) -> None:
    report = build_report(load_catalog(repo))
    counts = {
        r.language: (
            r.files,
            r.commands,
            r.with_params,
            r.adopted,
            r.library,
            r.fell_back,
            r.failed,
        )
        for r in report.languages
    }
    assert counts == {
        "powershell": (3, 2, 2, 2, 0, 0, 1),
        "python": (4, 2, 1, 2, 0, 0, 2),
        "shell": (3, 3, 1, 3, 0, 2, 0),
        "other": (1, 1, 0, 1, 0, 0, 0),
    }
    assert [r.without_summary for r in report.languages] == [1, 0, 2, 0]
    assert report.total.files == 11
    assert report.share == pytest.approx(8 / 11)


def test_reasons_are_grouped_with_counts_and_examples(repo: Path) -> None:
    report = build_report(load_catalog(repo))
    python = report.languages[1]
    (failed,) = python.failed_reasons
    assert (failed.count, failed.examples) == (2, ("py/broken.py", "py/broken2.py"))
    shell = report.languages[2]
    (fell,) = shell.fell_back_reasons
    assert fell.count == 2
    assert fell.examples == ("sh/backup.sh", "sh/deploy.sh")
    assert "opsroom catalog adopt" in fell.reason
    (ps_failed,) = report.languages[0].failed_reasons
    assert ps_failed.examples == ("ps/Bad.ps1",)
    # a missing summary is not a fallback: the command has its parameters
    assert report.languages[0].fell_back == 0
    assert [r.reason for r in report.other_issues] == [
        "warning: sidecar without a script beside it"
    ]


def test_adopting_moves_a_file_out_of_fell_back(repo: Path) -> None:
    from opsroom.catalog.adopt import infer_shell, sidecar_text

    source = (repo / "sh" / "deploy.sh").read_text(encoding="utf-8")
    _write(repo, "sh/deploy.sh.opsroom.toml", sidecar_text(infer_shell(source), "deploy.sh"))
    shell = build_report(load_catalog(repo)).languages[2]
    assert (shell.fell_back, shell.with_params) == (1, 2)
    assert shell.fell_back_reasons[0].examples == ("sh/backup.sh",)


def test_text_output(repo: Path) -> None:
    text = render_report(build_report(load_catalog(repo)))
    table = text.split("\n\n")[0]
    assert table == (
        "language    files  commands  with params  library  fell back  failed\n"
        "PowerShell      3         2            2        0          0       1\n"
        "Python          4         2            1        0          0       2\n"
        "shell           3         3            1        0          2       0\n"
        "other           1         1            0        0          0       0\n"
        "total          11         8            4        0          2       3"
    )
    assert "  Python: 2 × syntax error: invalid syntax — py/broken.py, py/broken2.py" in text
    assert text.endswith("\n8 of 11 script files became commands (72%)")


def test_json_is_stable(repo: Path) -> None:
    doc = report_to_dict(build_report(load_catalog(repo)))
    assert list(doc) == ["root", "languages", "total", "other_issues"]
    assert [lang["language"] for lang in doc["languages"]] == [
        "powershell",
        "python",
        "shell",
        "other",
    ]
    assert list(doc["languages"][2]) == [
        "language",
        "files",
        "commands",
        "with_params",
        "without_summary",
        "adopted",
        "library",
        "fell_back",
        "failed",
        "read_as",
        "fell_back_reasons",
        "failed_reasons",
    ]
    assert doc["languages"][2]["read_as"] == {"getopts": 2, "tags": 1}
    assert doc["languages"][3]["read_as"] == {"sidecar": 1}
    assert doc["total"] == {
        "files": 11,
        "commands": 8,
        "with_params": 4,
        "without_summary": 3,
        "adopted": 8,
        "library": 0,
        "fell_back": 2,
        "failed": 3,
        "share": 0.7273,
    }
    assert doc["other_issues"] == [
        {
            "reason": "warning: sidecar without a script beside it",
            "count": 1,
            "examples": ["sh/gone.sh.opsroom.toml"],
        }
    ]


def _spec(path: str, language: Language, *, params: int = 0, name: str = "") -> CommandSpec:
    return CommandSpec(
        name=name or path.replace("/", " ").rsplit(".", 1)[0].lower(),
        path=path,
        language=language,
        summary="S.",
        params=tuple(ParamSpec(f"p{i}") for i in range(params)),
    )


def test_library_files_and_modules_from_any_parser() -> None:
    # what the PowerShell function/module readers report, modelled directly
    ps = Language.POWERSHELL
    cat = Catalog(
        root="/r",
        commands=(
            _spec("Tools/Tools.psd1", ps, params=2, name="tools get-a"),
            _spec("Tools/Tools.psd1", ps, params=0, name="tools get-b"),
            _spec("Get-X.ps1", ps, params=1),
        ),
        issues=(
            CatalogIssue("lib/Helpers.ps1", 1, "library file, no command", W),
            CatalogIssue("Tools/Tools.psm1", 40, "parameter $Cred: no sidecar mapping", W),
            CatalogIssue("Tools/Private/Util.ps1", 1, "library file, no command", W),
        ),
        files=(
            ScriptFile("Get-X.ps1", ps, "function", ("get-x",)),
            # a module's commands name its manifest as their path, not these files
            ScriptFile("Tools/Public/Get-A.ps1", ps, "module", ("tools get-a",)),
            ScriptFile("Tools/Tools.psm1", ps, "module", ("tools get-b",)),
            ScriptFile("lib/Helpers.ps1", ps, "library"),
        ),
    )
    report = build_report(cat)
    ps_row = report.languages[0]
    assert (ps_row.files, ps_row.commands, ps_row.with_params) == (5, 3, 2)
    assert (ps_row.adopted, ps_row.library, ps_row.fell_back, ps_row.failed) == (3, 2, 1, 0)
    assert ps_row.read_as == (("module", 2), ("function", 1), ("library", 1))
    assert ps_row.fell_back_reasons[0].reason == "parameter $…: no sidecar mapping"
    assert closing_line(report) == (
        "3 of 3 script files became commands (100%); 2 library files not counted"
    )


def test_without_recorded_files_commands_are_matched_by_path() -> None:
    sh = Language.SHELL
    cat = Catalog(
        root="/r",
        commands=(_spec("a.sh", sh, params=1),),
        files=(ScriptFile("a.sh", sh), ScriptFile("b.sh", sh)),
        issues=(CatalogIssue("b.sh", 2, "bad @option"),),
    )
    shell = build_report(cat).languages[2]
    assert (shell.files, shell.adopted, shell.failed) == (2, 1, 1)


def test_a_file_refused_before_it_was_read_still_counts_as_failed() -> None:
    cat = Catalog(
        root="/r",
        commands=(),
        issues=(
            CatalogIssue("evil.sh", 1, "symlink to a file outside the catalog folder: refused"),
        ),
    )
    shell = build_report(cat).languages[2]
    assert (shell.files, shell.failed) == (1, 1)


def test_empty_catalog() -> None:
    report = build_report(Catalog(root="/r", commands=()))
    assert report.share is None
    assert closing_line(report) == "no script files that could be commands were found"
    assert report_to_dict(report)["total"]["share"] is None


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            "duplicate command name 'net status' (already defined by net/status.ps1)",
            "duplicate command name '…' (already defined by …)",
        ),
        ('unknown type "Foo"', 'unknown type "…"'),
        ("argparse parser built in a loop at line 12", "argparse parser built in a loop at line N"),
    ],
)
def test_reason_of(message: str, reason: str) -> None:
    assert reason_of(message) == reason
