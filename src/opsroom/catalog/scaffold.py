"""`opsroom new`: a script with help, one parameter and a test beside it (SPEC §3.9).

Every scaffold passes `opsroom catalog check --strict` unchanged; the test file is named so
that §3.1 never takes it for a command (`*.Tests.ps1`, `test_*.py`, `_test_*.sh`).
"""

from __future__ import annotations

import re
from pathlib import Path

from opsroom.catalog.naming import command_name

LANGUAGES = ("powershell", "python", "shell")
_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

_PYTHON = '''\
"""One line saying what `{name}` does (this line is the command's summary).

A longer description for `help {name}`: what it changes, what it needs, whom to ask.

Examples:
    {name} web01
"""

from __future__ import annotations


def main(target: str) -> None:
    """Run `{name}` against one target.

    Args:
        target: The host or object to act on.
    """
    print(f"{name}: would act on {{target}}")
'''

_PYTHON_TEST = '''\
"""Tests for `{name}`: run them with `pytest {test_file}`."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).with_name("{script_file}")


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("{module}", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_main_names_its_target(capsys: pytest.CaptureFixture[str]) -> None:
    load_script().main(target="web01")
    assert "web01" in capsys.readouterr().out
'''

_SHELL = """\
#!/usr/bin/env bash
# @describe One line saying what `{name}` does (this line is the command's summary).
# @arg target! The host or object to act on
# @example {name} web01
set -euo pipefail

# opsroom passes each parameter as OPSROOM_ARG_<NAME>.
target="${{OPSROOM_ARG_TARGET:?target is required}}"
echo "{name}: would act on ${{target}}"
"""

_SHELL_TEST = """\
#!/usr/bin/env bash
# Test for `{name}`: run it with `bash {test_file}` (exit 0 = pass).
set -euo pipefail
here="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"

out="$(OPSROOM_ARG_TARGET=web01 bash "$here/{script_file}")"
case "$out" in
  *web01*) echo "ok: {name} names its target" ;;
  *) echo "FAIL: expected the output to mention web01, got: $out" >&2; exit 1 ;;
esac
"""

_POWERSHELL = """\
<#
.SYNOPSIS
    One line saying what `{name}` does (this line is the command's summary).

.DESCRIPTION
    A longer description for `help {name}`: what it changes, what it needs, whom to ask.

.PARAMETER Target
    The host or object to act on.

.EXAMPLE
    {name} -Target web01
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory, HelpMessage = 'The host or object to act on.')]
    [ValidateNotNullOrEmpty()]
    [string]$Target
)

Write-Output "{name}: would act on $Target"
"""

_PESTER = """\
# Pester tests for `{name}`: run them with `Invoke-Pester {test_file}`.
BeforeAll {{
    $script = Join-Path $PSScriptRoot '{script_file}'
}}

Describe '{name}' {{
    It 'names its target' {{
        $out = & $script -Target 'web01'
        $out | Should -Match 'web01'
    }}
}}
"""


def _words(name: str) -> list[str]:
    words = [w for w in re.split(r"[\s/]+", name.strip()) if w]
    if not words:
        raise ValueError("a command name is needed, e.g. 'storage migrate-volume'")
    for w in words:
        if not _WORD.match(w):
            raise ValueError(
                f"{w!r} cannot be part of a command name: use letters, digits, '-' and '_', "
                "starting with a letter or digit"
            )
    return words


def _stem(word: str, language: str) -> str:
    if language == "powershell":
        # PowerShell's Verb-Noun convention: Get-Status.ps1
        return "-".join(part[:1].upper() + part[1:] for part in word.replace("_", "-").split("-"))
    return word.lower().replace("-", "_")


def scaffold(language: str, name: str, directory: Path) -> list[Path]:
    """Write a new script and its test under `directory`; return both paths.

    Raises ValueError for an unknown language or a bad name, FileExistsError rather than
    overwrite anything.
    """
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r} (one of: {', '.join(LANGUAGES)})")
    words = _words(name)
    folder = Path(directory).joinpath(*(w.lower() for w in words[:-1]))
    stem = _stem(words[-1], language)
    if language == "python":
        script, test, body, test_body = (
            f"{stem}.py",
            f"test_{stem}.py",
            _PYTHON,
            _PYTHON_TEST,
        )
    elif language == "shell":
        script, test, body, test_body = (
            f"{stem}.sh",
            f"_test_{stem}.sh",
            _SHELL,
            _SHELL_TEST,
        )
    else:
        script, test, body, test_body = (
            f"{stem}.ps1",
            f"{stem}.Tests.ps1",
            _POWERSHELL,
            _PESTER,
        )
    relpath = "/".join([*(w.lower() for w in words[:-1]), script])
    cmd = command_name(relpath)
    paths = [folder / script, folder / test]
    for path in paths:
        if path.exists():
            raise FileExistsError(f"{path} already exists; not overwriting it")
    values = {
        "name": cmd,
        "script_file": script,
        "test_file": test,
        "module": stem.replace("-", "_"),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for path, template in zip(paths, (body, test_body), strict=True):
        with path.open("x", encoding="utf-8", newline="\n") as f:
            f.write(template.format(**values))
        if path.suffix == ".sh":
            path.chmod(0o755)
    return paths
