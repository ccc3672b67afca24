"""No test can pass without checking something: every test asserts, or calls what does.

An AST scan of every test in tests/: a test passes the scan when its body (nested functions
included) holds an `assert`, `pytest.raises`/`pytest.warns`/`pytest.fail`, a `raise
AssertionError`, or calls a helper that does. Helpers are resolved by name the way Python
would find them — defined in the same module, imported from a test-helper module
(`from support import wait_for`, `adapters.contract`), or called on such a module — and
followed through the helpers they call. A call through an object (`bot.say(...)`) is not
followed: a method of that name elsewhere proves nothing about this one. What asserts but
cannot be seen from here is named in `ASSERTING_HELPERS`, with why.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
# The folders on pytest's `pythonpath` (pyproject.toml): where `from x import y` looks.
IMPORT_ROOTS = (TESTS, TESTS / "integration")
NOT_TESTS = {"fixtures", ".hypothesis", "__pycache__"}

# Helpers outside tests/ that fail the test when what they check does not hold.
ASSERTING_HELPERS = {
    # hypothesis: runs the state machine's rules and its invariants, which assert.
    "run_state_machine_as_test": "hypothesis checks the machine's invariants",
    # playwright: `expect(locator).to_have_text(...)` waits, then fails the test.
    "expect": "playwright's web-first assertions",
}
PYTEST_CHECKS = {"raises", "warns", "fail", "deprecated_call"}


@dataclass(frozen=True)
class Function:
    """One function or method of a test module, and what it checks or calls."""

    module: Path
    name: str
    line: int
    checks: bool  # asserts itself
    calls: frozenset[tuple[Path, str]]  # helpers it calls, resolved to where they live


def _module_file(dotted: str) -> Path | None:
    """The file of a test-helper module as `import` finds it from the pythonpath roots."""
    for root in IMPORT_ROOTS:
        path = root.joinpath(*dotted.split(".")).with_suffix(".py")
        if path.is_file():
            return path
    return None


def _checks(node: ast.AST) -> bool:
    """Whether `node` itself is a check (not counting the helpers it calls)."""
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, ast.Raise) and node.exc is not None:
        exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        return isinstance(exc, ast.Name) and exc.id == "AssertionError"
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            return func.value.id == "pytest" and func.attr in PYTEST_CHECKS
        if isinstance(func, ast.Name):
            return func.id in ASSERTING_HELPERS
    return False


def scan_source(path: Path, source: str) -> list[Function]:
    """Every function of one module, with its calls resolved to (module, name)."""
    tree = ast.parse(source, str(path))
    local = {
        n.name
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }
    imported: dict[str, tuple[Path, str]] = {}  # name here -> (its module, its name there)
    modules: dict[str, Path] = {}  # alias -> a test-helper module
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            origin = _module_file(node.module)
            for alias in node.names:
                if origin is not None:
                    imported[alias.asname or alias.name] = (origin, alias.name)
                elif (sub := _module_file(f"{node.module}.{alias.name}")) is not None:
                    modules[alias.asname or alias.name] = sub
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if (origin := _module_file(alias.name)) is not None:
                    modules[alias.asname or alias.name.split(".")[0]] = origin

    def resolve(call: ast.Call) -> tuple[Path, str] | None:
        func = call.func
        if isinstance(func, ast.Name):
            if func.id in local:
                return path, func.id
            return imported.get(func.id)
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner = func.value.id
            if owner in ("self", "cls") and func.attr in local:
                return path, func.attr
            if owner in modules:
                return modules[owner], func.attr
        return None

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inner = list(ast.walk(node))
            calls = {r for n in inner if isinstance(n, ast.Call) if (r := resolve(n))}
            checks = any(_checks(n) for n in inner)
            found.append(Function(path, node.name, node.lineno, checks, frozenset(calls)))
    return found


@cache
def _functions(path: Path) -> tuple[Function, ...]:
    return tuple(scan_source(path, path.read_text(encoding="utf-8")))


def _test_files() -> Iterator[Path]:
    for path in sorted(TESTS.rglob("*.py")):
        if not NOT_TESTS & set(path.relative_to(TESTS).parts):
            yield path


def _where(path: Path) -> str:
    return str(path.relative_to(TESTS)) if path.is_relative_to(TESTS) else str(path)


def empty_tests(paths: list[Path]) -> list[str]:
    """`file:line name` of every test in `paths` that checks nothing, directly or not."""
    by_place: dict[tuple[Path, str], list[Function]] = {}
    pending = list(paths)
    seen: set[Path] = set()
    while pending:  # the modules given, and every helper module they reach
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for fn in _functions(path):
            by_place.setdefault((fn.module, fn.name), []).append(fn)
            pending += [module for module, _ in fn.calls if module not in seen]
    asserting = {place for place, fns in by_place.items() if any(f.checks for f in fns)}
    grew = True
    while grew:  # a helper that calls an asserting helper asserts too
        grew = False
        for place, fns in by_place.items():
            if place not in asserting and any(f.calls & asserting for f in fns):
                asserting.add(place)
                grew = True
    empty = []
    for path in paths:
        for fn in _functions(path):
            if fn.name.startswith("test_") and not fn.checks and not fn.calls & asserting:
                empty.append(f"{_where(path)}:{fn.line} {fn.name}")
    return empty


def test_every_test_in_the_suite_checks_something() -> None:
    files = list(_test_files())
    assert len(files) > 100, "the scan must see the whole suite"
    assert empty_tests(files) == []


# -- the scan itself ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "empty"),
    [
        ("    run('x')\n", True),  # calls something, checks nothing
        ("    assert run('x')\n", False),
        ("    with pytest.raises(ValueError):\n        run('x')\n", False),
        ("    check('x')\n", False),  # a helper of this module that asserts
        ("    again('x')\n", False),  # ... through another helper
        ("    bot.check('x')\n", True),  # a method elsewhere proves nothing
        ("    wait_for(lambda: True)\n", False),  # imported from support, which asserts
        ("    support.wait_for(lambda: True)\n", False),
        ("    pytest.fail('no')\n", False),
        ("    raise AssertionError('no')\n", False),
        ("    def inner(x):\n        assert x == 1\n    inner(1)\n", False),
    ],
)
def test_the_scan_finds_a_test_that_checks_nothing(tmp_path: Path, body: str, empty: bool) -> None:
    module = tmp_path / "test_sample.py"
    module.write_text(
        "import pytest\nimport support\nfrom support import wait_for\n\n"
        "def run(x):\n    return x\n\n"
        "def check(x):\n    assert x\n\n"
        "def again(x):\n    check(x)\n\n"
        f"def test_sample(bot):\n{body}",
        encoding="utf-8",
    )
    found = empty_tests([module])
    assert found == ([f"{module}:14 test_sample"] if empty else [])
