"""`opsroom new`: a script with help, one parameter and a test beside it (SPEC §3.9).

Every scaffold passes `opsroom catalog check --strict` unchanged; the test file is named so
that §3.1 never takes it for a command (`*.Tests.ps1`, `test_*.py`, `_test_*.sh`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from opsroom.catalog.languages import resolve
from opsroom.catalog.naming import command_name
from opsroom.errors import CatalogError
from opsroom.model.languages import languages

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
"""Tests for `{name}`, asked for as people do in chat: run them with `pytest {test_file}`.

The `bot` fixture comes with opsroom (docs/testing-your-scripts.md): the real engine on a
database of its own, with the roles and settings of your opsroom.toml, serving the catalog
this file sits in. The script runs as it would in chat, as a child process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opsroom.testing import SyncBot


@pytest.fixture
def opsroom_catalog() -> Path:
    """The catalog folder this test file sits in."""
    return Path(__file__).resolve().parents[{depth}]


def test_names_its_target(bot: SyncBot) -> None:
    # Said to the bot directly, so no prefix is needed. With [[roles]] in opsroom.toml,
    # ask as someone who holds one: bot.as_("slack:U012ABC").say(...).
    said = bot.say("{name} web01")
    assert said.succeeded, said
    assert "web01" in said.text
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


def _snake(word: str) -> str:
    return word.lower().replace("-", "_")


def _verb_noun(word: str) -> str:
    # PowerShell's Verb-Noun convention: Get-Status.ps1
    return "-".join(part[:1].upper() + part[1:] for part in word.replace("_", "-").split("-"))


@dataclass(frozen=True, slots=True)
class Scaffold:
    """What `opsroom new` writes for one language (a record's `scaffold` names one).

    `script` and `test` are file names with `{stem}`; the bodies are `str.format` templates
    given `name` (the command), `script_file`, `test_file`, `module` (the stem as a
    Python identifier) and `depth` (folders between the catalog's root and the files).
    """

    script: str
    test: str
    body: str
    test_body: str
    stem: Callable[[str], str] = _snake  # the last word of the name → the file's stem
    executable: bool = False  # both files are marked executable (chmod 755)


SHELL = Scaffold("{stem}.sh", "_test_{stem}.sh", _SHELL, _SHELL_TEST, executable=True)
PYTHON = Scaffold("{stem}.py", "test_{stem}.py", _PYTHON, _PYTHON_TEST)
POWERSHELL = Scaffold("{stem}.ps1", "{stem}.Tests.ps1", _POWERSHELL, _PESTER, stem=_verb_noun)


def scaffolds() -> dict[str, Scaffold]:
    """Language name → its scaffold, for every language whose record has one."""
    found = {}
    for support in languages():
        if support.scaffold is not None:
            made = resolve(support.scaffold)
            if not isinstance(made, Scaffold):
                raise CatalogError(f"{support.scaffold} is not a Scaffold")
            found[support.language.value] = made
    return found


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


def scaffold(language: str, name: str, directory: Path) -> list[Path]:
    """Write a new script and its test under `directory`; return both paths.

    Raises ValueError for an unknown language or a bad name, FileExistsError rather than
    overwrite anything.
    """
    known = scaffolds()
    template = known.get(language)
    if template is None:
        raise ValueError(f"unknown language {language!r} (one of: {', '.join(sorted(known))})")
    words = _words(name)
    folder = Path(directory).joinpath(*(w.lower() for w in words[:-1]))
    stem = template.stem(words[-1])
    script, test = template.script.format(stem=stem), template.test.format(stem=stem)
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
        "depth": len(words) - 1,
    }
    folder.mkdir(parents=True, exist_ok=True)
    for path, body in zip(paths, (template.body, template.test_body), strict=True):
        with path.open("x", encoding="utf-8", newline="\n") as f:
            f.write(body.format(**values))
        if template.executable:
            path.chmod(0o755)
    return paths
