"""Every third-party module opsroom imports at run time is declared, in the right extra.

A module imported only by tests, or one that is undeclared but happens to be installed in the
development environment, crashes a plain `pip install opsroom` the first time that code path
runs (single sign-on once imported httpx, declared only for development). And a core module
that imports an extra's package at module level breaks every install without that extra.
"""

from __future__ import annotations

import ast
import functools
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

from extras_map import ADAPTER_EXTRAS, EXTRAS, HOSTED, area_extra, lazy_extra

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "opsroom"
# Not opsroom's own imports: scripts and bootstraps run in the job's interpreter.
SKIP = ("examples", "runner/bootstrap")


@dataclass(frozen=True)
class Import:
    """One `import` statement of a third-party (or any) top-level package."""

    top: str
    where: str
    lazy: bool  # inside a function: runs only when that code path does


def _requirement_name(requirement: str) -> str:
    name = re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _project() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project


def _extras() -> dict[str, list[str]]:
    extras: dict[str, list[str]] = _project().get("optional-dependencies", {})
    return extras


def _core() -> set[str]:
    return {_requirement_name(r) for r in _project()["dependencies"]}


def _extra(name: str) -> set[str]:
    return {_requirement_name(r) for r in _extras()[name]}


def _imports(source: str, rel: str) -> list[Import]:
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.orelse:
                visit(statement, lazy)
            return  # imports for the type checker only, never at run time
        if isinstance(node, ast.Import):
            found.extend(Import(a.name.split(".")[0], rel, lazy) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(Import(node.module.split(".")[0], rel, lazy))
        inner = lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(source), lazy=False)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _third_party_imports() -> list[Import]:
    found: list[Import] = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith(SKIP):
            continue
        for imp in _imports(path.read_text(encoding="utf-8"), rel):
            if imp.top in ("opsroom", "__future__") or imp.top in sys.stdlib_module_names:
                continue
            found.append(imp)
    return found


@functools.cache
def _distributions() -> Mapping[str, list[str]]:
    return packages_distributions()  # slow: it reads every installed distribution's files


def _owners(top: str) -> set[str]:
    return {_requirement_name(d) for d in _distributions().get(top, [])}


def _problems(imports: list[Import]) -> list[str]:
    core = _core()
    problems = []
    for imp in imports:
        if HOSTED.get(imp.where) == imp.top:
            continue  # the program that loads this module brings the package
        owners = _owners(imp.top)
        if not owners:
            problems.append(f"{imp.top} (imported in {imp.where}) is installed by no distribution")
            continue
        # Where this import may come from: the core, plus the one extra of its feature.
        extra = area_extra(imp.where) or (lazy_extra(imp.where) if imp.lazy else None)
        allowed = core | (_extra(extra) if extra else set())
        if owners & allowed:
            continue
        declared_in = sorted(n for n in EXTRAS if owners & _extra(n))
        if declared_in:
            why = f"declared only in opsroom[{','.join(declared_in)}]"
            if not imp.lazy and lazy_extra(imp.where):
                why += "; import it inside the function that needs it"
            elif extra is None:
                why += f"; {imp.where} is core (add it to tests/extras_map.py if it is not)"
            problems.append(
                f"{imp.top} (imported in {imp.where}) comes from {sorted(owners)}: {why}"
            )
        else:
            problems.append(
                f"{imp.top} (imported in {imp.where}) comes from {sorted(owners)}, undeclared"
            )
    return problems


def test_every_runtime_import_is_declared_by_the_core_or_its_features_extra() -> None:
    problems = _problems(_third_party_imports())
    assert not problems, "\n".join(problems)


def test_the_checker_catches_an_extras_package_imported_by_a_core_module() -> None:
    # ldap3 comes with opsroom[ldap]: fine lazily in policy/ldap.py, wrong anywhere eagerly.
    eager = _imports("import ldap3\n", "policy/ldap.py")
    lazy = _imports("def f():\n    import ldap3\n", "policy/ldap.py")
    core = _imports("def f():\n    import ldap3\n", "policy/groups.py")
    adapter = _imports("import slack_sdk\n", "adapters/slack/transport.py")
    wrong_adapter = _imports("import slack_sdk\n", "adapters/irc/transport.py")
    types_only = _imports(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import ldap3\n", "config.py"
    )
    assert [i.lazy for i in lazy] == [True]
    assert _problems(lazy) == []
    assert _problems(adapter) == []
    assert types_only == [Import("typing", "config.py", False)]
    assert _problems(eager) == [
        "ldap3 (imported in policy/ldap.py) comes from ['ldap3']: declared only in "
        "opsroom[ldap]; import it inside the function that needs it"
    ]
    assert _problems(core) == [
        "ldap3 (imported in policy/groups.py) comes from ['ldap3']: declared only in "
        "opsroom[ldap]; policy/groups.py is core (add it to tests/extras_map.py if it is not)"
    ]
    assert len(_problems(wrong_adapter)) == 1


def test_the_extras_are_the_documented_set_and_all_is_every_one_of_them() -> None:
    extras = _extras()
    assert set(extras) == {*EXTRAS, "all", "dev"}
    [everything] = extras["all"]
    match = re.fullmatch(r"opsroom\[([a-z,]+)\]", everything.replace(" ", ""))
    assert match, everything
    assert sorted(match.group(1).split(",")) == sorted(EXTRAS)
    for adapter in ADAPTER_EXTRAS:  # every adapter package has its extra, and vice versa
        assert (SRC / "adapters" / adapter).is_dir(), adapter


def test_each_store_driver_is_declared_by_the_core_or_the_postgres_extra() -> None:
    from opsroom.store.url import _ASYNC_DRIVERS

    drivers = {full.split("+", 1)[1] for full in _ASYNC_DRIVERS.values()}
    assert drivers == {"aiosqlite", "psycopg"}
    assert "aiosqlite" in _core()
    assert "psycopg" in _extra("postgres")
    assert "psycopg" not in _core()


def test_no_optional_feature_is_installed_by_the_core() -> None:
    core = _core()
    for name in EXTRAS:
        # httpx also serves the teams adapter; no extra's package may sneak back into core.
        assert not (_extra(name) & core), f"opsroom[{name}] packages are also core"


def _locked_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#") and "==" in line:
            name, _, version = line.split(" ")[0].partition("==")
            pins[_requirement_name(name)] = version.split(";")[0]
    return pins


def test_the_lockfile_pins_what_pyproject_declares() -> None:
    # ./scripts/test installs exactly requirements.lock: every requirement of the core, every
    # extra and the dev tools must be pinned there at a version pyproject.toml accepts.
    from packaging.requirements import Requirement

    pins = _locked_pins()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for reqs in project["optional-dependencies"].values():
        wanted += [r for r in reqs if not r.startswith("opsroom[")]
    stale = []
    for text in wanted:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        pin = pins.get(_requirement_name(req.name))
        if pin is None or not req.specifier.contains(pin, prereleases=True):
            stale.append(f"{text} (locked: {pin})")
    assert not stale, "requirements.lock is stale; regenerate it (command at its top): " + str(
        stale
    )
    assert {"psycopg", "psycopg-pool", "ldap3", "slack-sdk", "pytest"} <= set(pins)


def test_the_lockfile_check_sees_a_stale_pin() -> None:
    from packaging.requirements import Requirement

    pins = _locked_pins()
    assert not Requirement("click>=999").specifier.contains(pins["click"])
