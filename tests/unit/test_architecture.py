"""The room boundaries of ARCHITECTURE.md, checked by walking every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import opsroom

PACKAGE = Path(opsroom.__file__).parent
ROOMS = ("catalog", "router", "policy", "runner", "render", "store", "adapters")
# An adapter renders its own messages: adapters may use the pure renderers (a leaf room).
EXTRA = {"adapters": {"render"}}
SHARED = ("model", "errors", "config")
# Modules allowed to wire rooms together.
WIRING = {"app.py"}  # and every module of engine/, the wiring room
# router.builtins belongs to the router and renders help with the router's own parser.


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {n for n in names if n == "opsroom" or n.startswith("opsroom.")}


def _room_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _modules() -> list[Path]:
    return sorted(
        p for p in PACKAGE.rglob("*.py") if "examples" not in p.parts and "bootstrap" not in p.parts
    )


def _room_modules() -> list[Path]:
    """Modules of the rooms and the model; wiring modules and clients are checked below."""
    found = []
    for path in _modules():
        rel = path.relative_to(PACKAGE).as_posix()
        own = rel.split("/")[0]
        if rel not in WIRING and own != "engine" and (own in ROOMS or own == "model"):
            found.append(path)
    return found


@pytest.mark.parametrize("path", _room_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_rooms_import_only_shared_types_and_themselves(path: Path) -> None:
    rel = path.relative_to(PACKAGE).as_posix()
    own = rel.split("/")[0]
    allowed = {*SHARED, own, None, *EXTRA.get(own, set())}
    if own == "model":
        allowed = {"model", "errors", None}
    bad = sorted(m for m in _imports(path) if _room_of(m) not in allowed and m != "opsroom")
    assert not bad, f"{rel} imports another room: {bad}"


def test_cli_never_imports_the_runner() -> None:
    for path in (PACKAGE / "cli").glob("*.py"):
        bad = [m for m in _imports(path) if _room_of(m) == "runner"]
        assert not bad, f"{path.name} starts processes itself: {bad}"


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text("from opsroom.store import Store\nimport opsroom.runner.local\n")
    assert _imports(bad) == {"opsroom.store", "opsroom.runner.local"}
