"""The LanguageSupport records (model/languages.py): complete, consistent, one per language."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from opsroom.catalog.languages import reader_of, resolve
from opsroom.catalog.parsers.base import ParsedScript
from opsroom.catalog.scaffold import Scaffold
from opsroom.catalog.scan import load_catalog
from opsroom.config import RunnerSettings
from opsroom.errors import CatalogError
from opsroom.model.commands import Language
from opsroom.model.languages import (
    PROGRAM,
    SHELL,
    Interpreter,
    LanguageSupport,
    LaunchRecipe,
    Passing,
    for_suffix,
    language_support,
    languages,
    register,
    unregister,
)
from opsroom.runner.argv import BOOTSTRAP_DIR, interpreter_name


@pytest.mark.parametrize("record", languages(), ids=lambda r: r.language.value)
def test_every_record_names_what_exists(record: LanguageSupport) -> None:
    assert language_support(record.language) is record
    assert all(for_suffix(s.upper()) is record for s in record.suffixes)
    if record.parser is not None:
        reader = reader_of(record)
        assert reader is not None
        parsed = reader("", stem="empty", thorough=True)
        assert isinstance(parsed, ParsedScript)
    if record.scaffold is not None:
        assert isinstance(resolve(record.scaffold), Scaffold)
    launch = record.launch
    if launch.bootstrap is not None:
        assert (BOOTSTRAP_DIR / launch.bootstrap).is_file()
    if launch.interpreter is not None and launch.interpreter.setting is not None:
        assert launch.interpreter.setting in RunnerSettings.model_fields
        assert interpreter_name(launch.interpreter, RunnerSettings())


def test_script_languages_come_in_the_reports_order() -> None:
    names = [r.language.value for r in languages()]
    assert names == ["powershell", "python", "shell", "executable"]
    assert language_support(Language.BUILTIN) is None  # nothing to find, read or start


def test_language_names_are_interned_even_through_a_copy() -> None:
    assert Language("shell") is Language.SHELL
    assert copy.deepcopy(Language.PYTHON) is Language.PYTHON
    assert Language.SHELL == "shell"
    assert Language.SHELL.value == "shell"
    with pytest.raises(ValueError, match="not a language name"):
        Language("Shell Script")


def _record(name: str, *suffixes: str, parser: str | None = None) -> LanguageSupport:
    return LanguageSupport(
        language=Language(name),
        label=name,
        kind=f"a {name} script",
        suffixes=suffixes,
        parser=parser,
        launch=LaunchRecipe(Interpreter(program=name), Passing.ENV),
    )


def test_register_refuses_a_taken_name_or_suffix_and_keeps_the_built_ins() -> None:
    with pytest.raises(ValueError, match=r"\.sh already belongs to shell"):
        register(_record("zsh", ".zsh", ".sh"))
    with pytest.raises(ValueError, match="'shell' is already defined"):
        register(_record("shell", ".bash"))
    with pytest.raises(ValueError, match="lower-case and starts with"):
        register(_record("tcl", "TCL"))
    unregister(Language.SHELL)
    assert language_support(Language.SHELL) is SHELL
    assert for_suffix(".zsh") is None  # nothing of a refused record stays behind


def test_a_launch_names_a_bootstrap_exactly_when_values_go_through_one() -> None:
    with pytest.raises(ValueError, match="bootstrap"):
        LaunchRecipe(Interpreter(program="node"), Passing.BOOTSTRAP)
    with pytest.raises(ValueError, match="bootstrap"):
        LaunchRecipe(None, Passing.ENV, bootstrap="node_bootstrap.js")
    assert PROGRAM.launch.interpreter is None


def test_a_parser_reference_to_nothing_is_a_clear_catalog_error(tmp_path: Path) -> None:
    (tmp_path / "report.tcl").write_text("puts hi\n", encoding="utf-8")
    register(_record("tcl", ".tcl", parser="opsroom.catalog.parsers.tcl:read"))
    try:
        with pytest.raises(CatalogError, match=r"'opsroom\.catalog\.parsers\.tcl:read'"):
            load_catalog(tmp_path)
    finally:
        unregister(Language("tcl"))
    assert load_catalog(tmp_path).commands == ()
