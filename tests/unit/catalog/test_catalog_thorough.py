"""A syntax error anywhere in a Python script is caught where it matters: `catalog check`.

Loading for serving may parse only what declares the interface (fast); checking — the
pre-commit hook, `opsroom catalog check`, a git commit's check before it goes live — parses
every script whole, so nothing broken goes live unreported.
"""

from __future__ import annotations

from pathlib import Path

from opsroom.catalog.scan import load_catalog
from support import Opsroom

SCRIPT = '''"""Restart a service."""


def main(service: str) -> None:
    """Restart it.

    Args:
        service: The service.
    """
    print(service)


def report(rows):
    return len(rows) +
'''


def _catalog(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    (root / "svc").mkdir(parents=True)
    (root / "svc" / "restart.py").write_text(SCRIPT)
    return root


def test_a_thorough_load_reports_a_syntax_error_in_a_helper(tmp_path: Path) -> None:
    catalog = load_catalog(_catalog(tmp_path), thorough=True)
    errors = [i for i in catalog.issues if i.severity == "error"]
    assert [(i.path, i.line) for i in errors] == [("svc/restart.py", 14)]
    assert not catalog.commands


def test_catalog_check_fails_on_it(opsroom: Opsroom, tmp_path: Path) -> None:
    r = opsroom("catalog", "check", str(_catalog(tmp_path)))
    assert r.code == 1
    assert "svc/restart.py:14:" in r.stdout + r.stderr
