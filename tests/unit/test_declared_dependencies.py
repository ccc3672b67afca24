"""Every third-party module opsroom imports at run time is a declared dependency.

A module imported only by tests, or one that is undeclared but happens to be installed in the
development environment, crashes a plain `pip install opsroom` the first time that code path
runs (single sign-on once imported httpx, declared only for development).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "opsroom"
# Not opsroom's own imports: scripts and bootstraps run in the job's interpreter.
SKIP = ("examples", "runner/bootstrap")


def _requirement_name(requirement: str) -> str:
    name = re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    runtime = [*project["dependencies"]]
    for name, requirements in extras.items():
        if name != "dev":
            runtime += requirements
    return {_requirement_name(r) for r in runtime}


def _imported_top_levels() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith(SKIP):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], rel)
    return found


def test_every_runtime_import_is_declared() -> None:
    dists = packages_distributions()
    declared = _declared()
    missing = []
    for top, where in sorted(_imported_top_levels().items()):
        if top == "opsroom" or top in sys.stdlib_module_names or top == "__future__":
            continue
        owners = {_requirement_name(d) for d in dists.get(top, [])}
        if not owners:
            missing.append(f"{top} (imported in {where}) is installed by no distribution")
        elif not owners & declared:
            missing.append(f"{top} (imported in {where}) comes from {sorted(owners)}, undeclared")
    assert not missing, "\n".join(missing)
