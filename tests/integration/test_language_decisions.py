"""What differs between languages is their records' to say, never a branch in the code.

Two decisions live in the records (model/languages.py): whether a script runs in an
environment built from the dependencies it names (Python's PEP 723), and which folders
are one module whose functions are the commands (PowerShell's `.psm1`). A language added
by one record gets them from its record alone, through the real catalog and engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest
from test_pep723_env import PKG, build_wheel

from opsroom.catalog.naming import command_name
from opsroom.catalog.parsers.base import ParsedScript
from opsroom.catalog.psmodule import Module, ModuleCommand
from opsroom.catalog.scan import load_catalog
from opsroom.config import Settings
from opsroom.model.commands import CommandSpec, Language
from opsroom.model.jobs import JobState
from opsroom.model.languages import (
    POWERSHELL,
    PYTHON,
    SHELL,
    LanguageSupport,
    ModuleFolders,
    own_environment,
    register,
    unregister,
)
from opsroom.testing import Bot

PROBE = '''\
# /// script
# dependencies = ["{requirement}"]
# ///
"""Say what the probe package holds."""

import argparse

import {package}

argparse.ArgumentParser(description="Say what the probe package holds.").parse_args()
print({package}.VALUE)
'''


def _registered(record: LanguageSupport) -> Iterator[LanguageSupport]:
    register(record)
    try:
        yield record
    finally:
        unregister(record.language)


def _python_like(name: str, *, own_environment: bool) -> LanguageSupport:
    """Python's record under another name and suffix, its own environment as given."""
    return dataclasses.replace(
        PYTHON,
        language=Language(name),
        label=name,
        kind=f"a {name} script",
        suffixes=(f".{name}",),
        scaffold=None,
        test_files=(),
        launch=dataclasses.replace(PYTHON.launch, own_environment=own_environment),
    )


def test_only_a_record_that_says_so_gives_a_script_its_own_environment() -> None:
    with_deps = CommandSpec(name="x", path="x.py", language=Language.PYTHON, requires=("a",))
    assert own_environment(with_deps)
    assert not own_environment(dataclasses.replace(with_deps, requires=()))
    assert not own_environment(dataclasses.replace(with_deps, language=Language.SHELL))
    assert PYTHON.launch.own_environment
    assert not SHELL.launch.own_environment
    assert not POWERSHELL.launch.own_environment


@pytest.fixture
def requirement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A local wheel only an environment built for the script can import (offline)."""
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    return f"{PKG} @ {build_wheel(wheels).as_uri()}"


@pytest.mark.parametrize("own", [True, False], ids=["own-environment", "no-environment"])
async def test_a_registered_language_runs_in_its_own_environment_as_its_record_says(
    tmp_path: Path, requirement: str, own: bool
) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "probe.pyalt").write_text(
        PROBE.format(requirement=requirement, package=PKG), encoding="utf-8"
    )
    settings = Settings.model_validate({"runner": {"env_cache": str(tmp_path / "envs")}})
    for _ in _registered(_python_like("pyalt", own_environment=own)):
        async with Bot.open(
            catalog_dir=str(catalog), store_url=f"sqlite:///{tmp_path}/t.db", settings=settings
        ) as bot:
            (spec,) = bot.app.catalog.commands
            assert spec.requires == (requirement,)
            said = await bot.say("!probe")
    if own:
        assert said.outcome.state is JobState.SUCCEEDED, said.text
        assert "hello from the isolated env" in said.text
        assert any((tmp_path / "envs").iterdir())
    else:
        # Without it the script runs with the plain interpreter, which lacks the package.
        assert said.outcome.state is JobState.FAILED, said.text
        assert f"No module named '{PKG}'" in said.text
        assert not (tmp_path / "envs").exists()


# -- module folders ---------------------------------------------------------------------------

MARK = ".toymod"


def read_toy_module(
    root: Path, folder_rel: str, names: Collection[str], *, escapes: object
) -> Module | None:
    """A toy language's module: `<folder>/<folder>.toymod` lists its functions, one a line."""
    folder = root / folder_rel
    index = f"{folder.name}{MARK}"
    if index not in names:
        return None
    prefix = folder_rel.rstrip("/") + "/"
    data = (folder / index).read_bytes()
    commands = tuple(
        ModuleCommand(
            name=command_name(f"{folder_rel.rstrip('/')}/{function}"),
            relpath=prefix + index,
            import_path=prefix + index,
            parsed=ParsedScript(summary=f"The module's {function}."),
            directives_source="",
            sidecar_rel=prefix + function + ".opsroom.toml",
            sidecar=None,
            data=data,
        )
        for function in data.decode().split()
    )
    return Module(commands, ())


TOY = LanguageSupport(
    language=Language("toy"),
    label="toy",
    kind="a toy script",
    suffixes=(".toy",),
    parser="opsroom.catalog.languages:read_shell",
    launch=SHELL.launch,
    modules=ModuleFolders(marks=(MARK,), reader=f"{__name__}:read_toy_module"),
)


@pytest.fixture
def toy() -> Iterator[LanguageSupport]:
    yield from _registered(TOY)


@pytest.mark.usefixtures("toy")
def test_a_registered_language_has_module_folders_as_its_record_says(tmp_path: Path) -> None:
    files = {
        # A module: its index names the commands; its own scripts are the module's.
        "tools/tools.toymod": "backup\nrestore\n",
        "tools/helper.toy": "# @describe A helper of the module.\n",
        # An index not named like its folder makes no module: the scripts stay commands.
        "misc/other.toymod": "nothing\n",
        "misc/clean.toy": "# @describe Clean up.\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    catalog = load_catalog(tmp_path)
    assert catalog.issues == ()
    found = {spec.name: spec for spec in catalog.commands}
    assert sorted(found) == ["misc clean", "tools backup", "tools restore"]
    assert found["tools backup"].language is Language("toy")
    assert found["tools backup"].summary == "The module's backup."
    assert found["tools backup"].path == "tools/tools.toymod"
