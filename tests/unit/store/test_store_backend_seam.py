"""What differs between SQLite and PostgreSQL lives in store/engine.py alone.

The parts of the store (jobs, queue, output, audit, ...) write dialect-neutral SQLAlchemy
Core, so running the same store on another backend means changing one module. These
checks walk the code (not comments or docstrings) of every other store module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import opsroom.store
from opsroom.store import Store
from opsroom.store.database import Part

STORE = Path(opsroom.store.__file__).parent
SEAM = "engine.py"
# The seam's other side: PostgreSQL's LISTEN/NOTIFY channel has no SQLite counterpart (there,
# waiters only look at their own pace), so the whole module is PostgreSQL's by nature.
BACKEND_ONLY = frozenset({"notify.py"})
# Words of backend-specific SQL: SQLite's PRAGMAs and BEGIN modes, PostgreSQL's functions
# and settings.
BACKEND_SQL = ("PRAGMA", "BEGIN", "PG_", "SYNCHRONOUS", "ADVISORY")


def _parts_of_the_store() -> list[Path]:
    return sorted(p for p in STORE.glob("*.py") if p.name != SEAM and p.name not in BACKEND_ONLY)


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the string nodes that are docstrings."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _backend_specifics(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "sqlalchemy.dialects"
        ):
            found.append(f"line {node.lineno}: imports {node.module}")
        elif isinstance(node, ast.Attribute) and node.attr == "dialect":
            found.append(f"line {node.lineno}: branches on the connection's dialect")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            words = [w for w in BACKEND_SQL if w in node.value.upper()]
            if words:
                found.append(f"line {node.lineno}: SQL with {', '.join(words)}")
    return found


@pytest.mark.parametrize("path", _parts_of_the_store(), ids=lambda p: p.name)
def test_store_modules_leave_backend_specifics_to_the_engine_module(path: Path) -> None:
    assert _backend_specifics(path) == []


def test_the_check_sees_what_the_engine_module_holds() -> None:
    # The seam itself holds each kind, so the check above is known to look in the right places.
    found = " ".join(_backend_specifics(STORE / SEAM))
    for kind in ("imports sqlalchemy.dialects", "branches on", "PRAGMA", "BEGIN", "PG_"):
        assert kind in found


def test_no_two_parts_of_the_store_answer_to_one_name() -> None:
    # Store is assembled from its parts; a name two parts define would silently hide one.
    parts = [c for c in Store.__mro__ if issubclass(c, Part) and c not in (Store, Part)]
    assert len(parts) >= 10
    seen: dict[str, str] = {}
    clashes = []
    for part in parts:
        for name in vars(part):
            if name.startswith("__"):
                continue
            if name in seen:
                clashes.append(f"{name}: {seen[name]} and {part.__name__}")
            seen[name] = part.__name__
    assert clashes == []
