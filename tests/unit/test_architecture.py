"""The rooms of opsroom and which way their imports may point, checked over every module.

A room is one top-level entry of the package: a sub-package (`catalog/`, `web/`) or a
module (`app.py`, `config.py`). `ROOMS` below is the whole rule: one row per room, what it
may import besides itself, why, and whether it may start processes. Every import counts:
module level, inside functions (lazy), under `TYPE_CHECKING`, relative, and
`importlib.import_module("opsroom...")`.
The rules name rooms, never files, so modules can move inside a room without touching
this table; a new top-level room fails until it gets a row.
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

import opsroom

PACKAGE = Path(opsroom.__file__).parent


@dataclass(frozen=True)
class Room:
    """One row of the table: the room's kind, what it may import, why, and if it spawns."""

    kind: str
    may_import: frozenset[str]
    why: str
    # Jobs run only through the runner (SPEC: values never meet a shell); the catalog runs
    # `git`. Nothing else starts a process, the clients least of all.
    starts_processes: bool = False


def _rooms(*names: str) -> frozenset[str]:
    return frozenset(names)


# Shared leaves: anyone may import them; they import (almost) nothing.
SHARED = _rooms("__init__", "errors", "model", "config", "retry", "tasks")
# Rooms that do one job each; they meet only through the shared leaves.
JOB_ROOMS = _rooms("catalog", "router", "policy", "runner", "render", "store", "adapters")
# The wiring: the only modules that join several rooms.
WIRING = _rooms("engine", "deploy", "app", "worker")
# What a client may use: it talks to the engine and the store, and never starts a child
# process itself (SPEC: values never meet a shell; jobs run only through the runner).
CLIENT_REACH = SHARED | (JOB_ROOMS - {"runner"}) | WIRING | {"audit_export"}

ROOMS: dict[str, Room] = {
    # -- shared leaves ---------------------------------------------------------------------
    "__init__": Room("shared", _rooms(), "the package root holds only __version__"),
    "errors": Room("shared", _rooms(), "the one exception tree everything raises from"),
    "model": Room("shared", _rooms("errors"), "frozen value types every room passes around"),
    "config": Room(
        "shared",
        _rooms("__init__", "errors", "model", "adapters"),
        "frozen settings; an [adapters.<name>] table is checked by that platform's own"
        " settings model, found through the adapters' plugin registry and imported lazily"
        " (the adapters import config at module level)",
    ),
    "retry": Room("shared", _rooms("errors"), "one pure backoff helper for every reconnect loop"),
    "tasks": Room("shared", _rooms(), "ending a background task: cancel it, wait for its end"),
    "script": Room(
        "shared",
        _rooms(),
        "the helper a script imports in its own process; it must load without opsroom's rooms",
    ),
    # -- rooms with one job each ------------------------------------------------------------
    "catalog": Room(
        "room", SHARED, "scripts -> immutable CommandSpecs; runs `git`", starts_processes=True
    ),
    "router": Room("room", SHARED, "pure: text -> Invocation, registry, menus, dates, cron"),
    "policy": Room("room", SHARED, "who may run what: the only place that decides"),
    "runner": Room(
        "room",
        SHARED | {"script"},
        "child processes; its bootstrap hands `opsroom.script` to the script it runs",
        starts_processes=True,
    ),
    "render": Room("room", SHARED, "pure renderers: reply blocks -> a platform's text"),
    "store": Room("room", SHARED, "persistence: jobs, output, audit, approvals, outbox"),
    "adapters": Room(
        "room",
        SHARED | {"render"},
        "one package per chat platform; an adapter renders its own messages with the pure"
        " renderers (a leaf room)",
    ),
    # -- wiring -----------------------------------------------------------------------------
    "engine": Room(
        "wiring",
        SHARED | JOB_ROOMS,
        "dispatch, supervisor, approvals, collector, output, scheduler, and the bridge that"
        " holds chat adapters with its outbox: drives the rooms",
    ),
    "deploy": Room(
        "wiring",
        SHARED | JOB_ROOMS,
        "keeps the catalog current: load, check, build environments, swap, announce",
    ),
    "app": Room(
        "wiring",
        SHARED | JOB_ROOMS | {"engine", "deploy"},
        "the composition root: settings -> store -> catalog -> registry -> dispatcher",
    ),
    "worker": Room(
        "wiring",
        SHARED | JOB_ROOMS | {"engine", "deploy", "app"},
        "`opsroom worker`: an engine of its own fed by the workers' job queue instead of chat;"
        " it runs its queue's jobs through the engine's supervisor and the runner",
    ),
    # -- clients (nothing imports them but other clients) -----------------------------------
    "audit_export": Room(
        "client",
        SHARED | {"store"},
        "the audit log as exported; shared by the CLI and the web console",
    ),
    "web": Room(
        "client",
        CLIENT_REACH,
        "console and web chat: hosts the web adapter and the HTTP adapters' webhooks, asks"
        " policy, reads the store, submits through the engine",
    ),
    "cli": Room(
        "client",
        CLIENT_REACH | {"web"},
        "thin click commands; `serve` starts the web server, `user` manages its accounts",
    ),
    "testing": Room(
        "client", CLIENT_REACH, "the pytest plugin: drives an App the way a chat room does"
    ),
    "__main__": Room("client", _rooms("cli"), "`python -m opsroom` is the CLI"),
    "examples": Room(
        "client",
        _rooms("script"),
        "bundled example scripts run as child processes; they see only the script helper",
    ),
}


@dataclass(frozen=True)
class Import:
    """One import statement (or import_module call) naming an opsroom module."""

    line: int
    module: str


def room_of_path(rel: Path) -> str:
    """The room a file belongs to: its top folder, or its own name at the top."""
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def room_of_module(name: str) -> str:
    """The room an imported dotted name belongs to ("opsroom" itself is `__init__`)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_module(root: Path, dotted: str) -> bool:
    rel = Path(*dotted.split(".")[1:])
    return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file()


@dataclass(frozen=True)
class _Statement:
    """An import as written: `from <level dots><module> import <names>` or a plain one."""

    line: int
    level: int
    module: str
    names: tuple[str, ...]  # empty for `import x` and import_module("x")


# What starts a process: these modules, and these functions of `os` and asyncio.
PROCESS_MODULES = frozenset({"subprocess", "multiprocessing", "pty"})
OS_SPAWNS = frozenset(
    {"fork", "forkpty", "system", "popen", "posix_spawn", "posix_spawnp"}
    | {f"exec{s}" for s in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")}
    | {f"spawn{s}" for s in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")}
)
ASYNC_SPAWNS = frozenset({"create_subprocess_exec", "create_subprocess_shell"})


@dataclass(frozen=True)
class _Scan:
    """What one module's text imports, and each way it has to start a process."""

    statements: tuple[_Statement, ...]
    spawns: tuple[tuple[int, str], ...]  # (line, what)


@lru_cache(maxsize=4096)
def _scan(text: str) -> _Scan:
    # Keyed by the text: the checker's own tests re-check copies whose modules are unchanged.
    found: list[_Statement] = []
    spawns: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found += [_Statement(node.lineno, 0, a.name, ()) for a in node.names]
            spawns += [
                (node.lineno, f"import {a.name}")
                for a in node.names
                if a.name.split(".")[0] in PROCESS_MODULES
            ]
        elif isinstance(node, ast.ImportFrom):
            names = tuple(a.name for a in node.names)
            module = node.module or ""
            found.append(_Statement(node.lineno, node.level, module, names))
            if not node.level and (
                module.split(".")[0] in PROCESS_MODULES
                or (module == "os" and OS_SPAWNS.intersection(names))
                or (module.startswith("asyncio") and ASYNC_SPAWNS.intersection(names))
            ):
                spawns.append((node.lineno, f"from {module} import ..."))
        elif (
            isinstance(node, ast.Call)
            and _called_name(node.func) in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append(_Statement(node.lineno, 0, node.args[0].value, ()))
        elif isinstance(node, ast.Attribute) and (
            node.attr in ASYNC_SPAWNS
            or (
                node.attr in OS_SPAWNS
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
            )
        ):
            spawns.append((node.lineno, node.attr))
    return _Scan(tuple(found), tuple(spawns))


def process_starts(text: str) -> tuple[tuple[int, str], ...]:
    """(line, what) for each way `text` has to start a process."""
    return _scan(text).spawns


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else None


def imports_of(root: Path, path: Path) -> list[Import]:
    """Every opsroom module `path` imports, wherever in the file the import is."""
    package = ["opsroom", *path.relative_to(root).parent.parts]
    found: list[Import] = []
    for st in _scan(path.read_text(encoding="utf-8")).statements:
        base = package[: len(package) - st.level + 1] if st.level else []
        module = ".".join([*base, *([st.module] if st.module else [])])
        if not st.names:
            found.append(Import(st.line, module))
        for name in st.names:
            # `from opsroom import script` imports the module opsroom.script.
            sub = f"{module}.{name}"
            found.append(Import(st.line, sub if _is_module(root, sub) else module))
    return [i for i in found if i.module == "opsroom" or i.module.startswith("opsroom.")]


def modules(root: Path) -> list[Path]:
    """Every Python file of the package at `root`, bootstraps and examples included."""
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


ADD_A_ROW = "say what it may import and why"


def violations(root: Path) -> list[str]:
    """Each import that breaks the table, and each room the table does not know."""
    found = []
    for path in modules(root):
        rel = path.relative_to(root)
        room = room_of_path(rel)
        row = ROOMS.get(room)
        if row is None:
            found.append(f"{rel.as_posix()}: room {room!r} has no row in ROOMS ({ADD_A_ROW})")
            continue
        for imp in imports_of(root, path):
            target = room_of_module(imp.module)
            if target != room and target not in row.may_import:
                found.append(
                    f"{rel.as_posix()}:{imp.line} imports {imp.module}"
                    f" ({row.kind} {room} may not import {target})"
                )
        if not row.starts_processes:
            found += [
                f"{rel.as_posix()}:{line} starts a process: {what}"
                f" ({row.kind} {room} may not start processes)"
                for line, what in process_starts(path.read_text(encoding="utf-8"))
            ]
    return found


def test_every_module_keeps_to_its_room() -> None:
    seen = {room_of_path(p.relative_to(PACKAGE)) for p in modules(PACKAGE)}
    on_disk = {p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" or any(p.rglob("*.py"))}
    # The walk saw the whole package (every top-level entry), so an empty pass is impossible.
    assert seen == on_disk
    assert {"web", "cli", "engine", "app", "config", "testing", "script", "examples"} <= seen
    assert violations(PACKAGE) == []


def test_the_table_only_names_rooms_it_knows() -> None:
    named = set().union(*(row.may_import for row in ROOMS.values()))
    assert named <= set(ROOMS), named - set(ROOMS)
    assert {row.kind for row in ROOMS.values()} == {"shared", "room", "wiring", "client"}
    assert [name for name, row in ROOMS.items() if not row.why.strip()] == []


# -- the checker's own tests: a forbidden import in a copy of the package is named ------------


@pytest.fixture(scope="module")
def _sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("package") / "opsroom"
    shutil.copytree(PACKAGE, root, ignore=_not_python)
    return root


@pytest.fixture
def copy(_sources: Path) -> Iterator[Path]:
    """A copy of the package's sources to break on purpose, whole again after the test."""
    # One copy per module, put back after each test: copying for each test costs more than
    # the checks themselves.
    before = {p: p.read_bytes() for p in modules(_sources)}
    folders = {p for p in _sources.rglob("*") if p.is_dir()}
    yield _sources
    for path in modules(_sources):
        if path not in before:
            path.unlink()
        elif path.read_bytes() != before[path]:
            path.write_bytes(before[path])
    for folder in sorted({p for p in _sources.rglob("*") if p.is_dir()} - folders, reverse=True):
        shutil.rmtree(folder)


def _not_python(folder: str, names: list[str]) -> set[str]:
    # Only the sources matter to the checker; templates and static files stay behind.
    keep = {n for n in names if n.endswith(".py") or Path(folder, n).is_dir()}
    return set(names) - keep | {"__pycache__"}


def _forbidden_for(room: str) -> str:
    """A room `room` may not import (the clients and the runner are off limits to most)."""
    allowed = ROOMS[room].may_import | {room}
    return next(r for r in ("cli", "web", "runner", "engine", "app") if r not in allowed)


def _first_module(root: Path, room: str) -> Path:
    single = root / f"{room}.py"
    return single if single.is_file() else modules(root / room)[0]


def _present_rooms() -> Iterator[str]:
    # Rows whose room was moved away are skipped here: the coverage test above already
    # fails for a room without a row, and a row without a room breaks nothing.
    return (r for r in ROOMS if (PACKAGE / f"{r}.py").is_file() or (PACKAGE / r).is_dir())


@pytest.mark.parametrize("room", list(_present_rooms()))
def test_a_lazy_forbidden_import_in_any_room_is_named(copy: Path, room: str) -> None:
    target = _forbidden_for(room)
    path = _first_module(copy, room)
    with path.open("a", encoding="utf-8") as f:
        f.write(f"\n\ndef _sneaky() -> None:\n    import opsroom.{target}  # noqa\n")
    line = len(path.read_text(encoding="utf-8").splitlines())
    rel = path.relative_to(copy).as_posix()
    kind = ROOMS[room].kind
    assert violations(copy) == [
        f"{rel}:{line} imports opsroom.{target} ({kind} {room} may not import {target})"
    ]


FORMS = {
    "from-import": "from opsroom.web.app import create_app",
    "plain import": "import opsroom.web.app",
    "from the package root": "from opsroom import web",
    "relative": "from ..web import app",
    "type-checking only": "import typing\nif typing.TYPE_CHECKING:\n    import opsroom.web",
    "importlib": "import importlib\nimportlib.import_module('opsroom.web.app')",
}


@pytest.mark.parametrize("form", FORMS)
def test_every_form_of_import_is_seen(copy: Path, form: str) -> None:
    path = copy / "store" / "__init__.py"
    path.write_text(path.read_text(encoding="utf-8") + "\n" + FORMS[form] + "\n", encoding="utf-8")
    line = len(path.read_text(encoding="utf-8").splitlines())
    got = violations(copy)
    assert len(got) == 1, got
    assert got[0].startswith(f"store/__init__.py:{line} imports opsroom.web")
    assert got[0].endswith("(room store may not import web)")


SPAWNS = {
    "web": ("import subprocess", "import subprocess"),
    "cli": (
        "import asyncio\nasync def _go() -> None:\n    await asyncio.create_subprocess_exec('git')",
        "create_subprocess_exec",
    ),
    "engine": ("import os\ndef _go() -> None:\n    os.fork()", "fork"),
    "store": ("from subprocess import run", "from subprocess import ..."),
}


@pytest.mark.parametrize("room", SPAWNS)
def test_a_process_started_outside_the_runner_and_the_catalog_is_named(
    copy: Path, room: str
) -> None:
    code, what = SPAWNS[room]
    path = _first_module(copy, room)
    path.write_text(path.read_text(encoding="utf-8") + "\n" + code + "\n", encoding="utf-8")
    line = len(path.read_text(encoding="utf-8").splitlines())
    rel = path.relative_to(copy).as_posix()
    kind = ROOMS[room].kind
    assert violations(copy) == [
        f"{rel}:{line} starts a process: {what} ({kind} {room} may not start processes)"
    ]


def test_a_room_without_a_row_is_named(copy: Path) -> None:
    (copy / "lab").mkdir()
    (copy / "lab" / "__init__.py").write_text('"""Somewhere new."""\n', encoding="utf-8")
    (copy / "helpers.py").write_text("import opsroom.model\n", encoding="utf-8")
    assert violations(copy) == [
        f"helpers.py: room 'helpers' has no row in ROOMS ({ADD_A_ROW})",
        f"lab/__init__.py: room 'lab' has no row in ROOMS ({ADD_A_ROW})",
    ]


def _documented_rooms() -> set[str]:
    """Rooms named in the first column of docs/architecture.md's room tables."""
    doc = (PACKAGE.parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    names: set[str] = set()
    for line in doc.splitlines():
        cells = line.split("|")
        if len(cells) > 2 and cells[1].strip().startswith("`"):
            first = cells[1].strip().strip("`")
            names.add(first.removesuffix("/").removesuffix(".py"))
    return names


def test_the_architecture_doc_names_every_room_and_no_other() -> None:
    # docs/architecture.md is the table above told for people: a room added, moved or gone
    # must show there too.
    documented = _documented_rooms()
    real = {room_of_path(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")}
    assert documented == set(ROOMS) == real, (
        f"undocumented: {sorted(set(ROOMS) - documented)}; "
        f"documented but gone: {sorted(documented - set(ROOMS))}; "
        f"without a row: {sorted(real - set(ROOMS))}"
    )
