"""What runs on Windows calls nothing POSIX-only, and one module alone asks which OS it is.

Read from the source (AST), as Windows would run it: a branch on `ON_WINDOWS`, on a
platform record's `.windows` or on `sys.platform == "win32"` is followed the way it goes on
Windows (and `ON_LINUX` as false), a block ends at a `return` or `raise` taken, and a call
is followed into the function it names: module functions, and `self.` methods as
`WindowsRun` resolves them. What it reaches must not touch setsid, process groups, fork,
pidfds, POSIX signals, rlimits, fcntl, or the asyncio pipes, processes and signal handlers
that Windows' selector event loop does not have.
"""

from __future__ import annotations

import ast
import asyncio
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import opsroom
from opsroom.engine.loop import on_stop_signals, prepare_event_loop
from opsroom.runner.platform import LINUX, WINDOWS, current

PACKAGE = Path(opsroom.__file__).parent
RUNNER = PACKAGE / "runner"

POSIX_ONLY_ATTRIBUTES = {
    "os": {
        "setsid", "setpgid", "setpgrp", "getpgid", "getsid", "killpg", "fork", "forkpty",
        "pidfd_open", "waitpid", "wait3", "wait4", "WNOHANG", "O_CLOEXEC", "O_DIRECTORY",
        "O_NOFOLLOW", "O_NONBLOCK", "pread", "memfd_create", "getuid", "geteuid", "setuid",
        "sched_setaffinity", "posix_spawn",
    },
    "signal": {
        "SIGKILL", "SIGSTOP", "SIGCONT", "SIGHUP", "SIGQUIT", "SIGXCPU", "SIGCHLD", "SIGPIPE",
        "SIGUSR1", "SIGUSR2", "SIGALRM", "pthread_kill", "setitimer", "alarm",
    },
    "socket": {"AF_UNIX", "SCM_RIGHTS", "socketpair"},
    "select": {"epoll", "poll", "EPOLLPRI"},
}  # fmt: skip
POSIX_ONLY_MODULES = {"resource", "fcntl", "pwd", "grp", "termios", "pty"}
# Popen's POSIX-only keywords.
POSIX_ONLY_KEYWORDS = {
    "preexec_fn", "start_new_session", "pass_fds", "process_group", "user", "group",
    "extra_groups", "umask",
}  # fmt: skip
# What asyncio's selector loop cannot do on Windows.
SELECTOR_LOOP_LACKS = {
    "add_reader", "add_writer", "connect_read_pipe", "connect_write_pipe",
    "add_signal_handler", "create_subprocess_exec", "create_subprocess_shell",
    "subprocess_exec", "subprocess_shell",
}  # fmt: skip
# The runner's POSIX-only modules: never called from the Windows path, but for these.
POSIX_MODULES = {"tree", "cgroup", "pool", "spawn"}
ALLOWED_CALLS = {
    "tree.new_token",  # secrets.token_hex
    "cgroup.enforcement",  # reads the host record, which on Windows says "no cgroups"
}
TRUE_ON_WINDOWS = "ON_WINDOWS"
FALSE_ON_WINDOWS = "ON_LINUX"


def _truth(test: ast.expr) -> bool | None:
    """How a condition comes out on Windows; None when the source cannot tell."""
    if isinstance(test, ast.Name):
        return {TRUE_ON_WINDOWS: True, FALSE_ON_WINDOWS: False}.get(test.id)
    if isinstance(test, ast.Attribute):
        if test.attr in ("windows", TRUE_ON_WINDOWS):
            return True
        if test.attr == FALSE_ON_WINDOWS:
            return False
        return None
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = _truth(test.operand)
        return None if inner is None else not inner
    if isinstance(test, ast.Compare) and ast.unparse(test.left) == "sys.platform":
        text = ast.unparse(test)
        if text == "sys.platform == 'win32'":
            return True
        if text == "sys.platform != 'win32'":
            return False
    if isinstance(test, ast.BoolOp):
        values = [_truth(v) for v in test.values]
        if isinstance(test.op, ast.And):
            return False if False in values else (True if all(values) else None)
        return True if True in values else (False if all(v is False for v in values) else None)
    return None


def _exits(body: list[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], ast.Return | ast.Raise)


@dataclass
class Module:
    """One module's functions, classes and the names it imported from the runner."""

    name: str
    tree: ast.Module
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = field(default_factory=dict)
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)
    imported: dict[str, str] = field(default_factory=dict)  # local name -> "module.name"

    @classmethod
    def read(cls, path: Path) -> Module:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = cls(path.stem, tree)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                found.functions[node.name] = node
            elif isinstance(node, ast.ClassDef):
                found.classes[node.name] = node
        for each in ast.walk(tree):
            if isinstance(each, ast.ImportFrom) and (each.module or "").startswith("opsroom."):
                source = (each.module or "").rsplit(".", 1)[-1]
                for alias in each.names:
                    found.imported[alias.asname or alias.name] = f"{source}.{alias.name}"
        return found

    def methods(self, name: str) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
        return {
            n.name: n
            for n in self.classes[name].body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        }


class WindowsReach:
    """Walks what runs on Windows from some entry points; `found` is what it must not call."""

    def __init__(self, modules: dict[str, Module], methods: dict[str, tuple[Module, ast.AST]]):
        self.modules = modules
        self.methods = methods  # `self.x` as WindowsRun resolves it
        self.walked: set[int] = set()  # the function nodes walked
        self.seen: set[tuple[str, str]] = set()  # (module, function name) of those
        self.found: list[str] = []

    def function(self, module: Module, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if id(node) in self.walked:
            return
        self.walked.add(id(node))
        self.seen.add((module.name, node.name))
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.expression(module, default)
        self.block(module, node.body)

    def block(self, module: Module, body: list[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.If) and (truth := _truth(stmt.test)) is not None:
                taken = stmt.body if truth else stmt.orelse
                self.block(module, taken)
                if _exits(taken):
                    return  # the rest of this block never runs on Windows
                continue
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                self.function(module, stmt)  # a nested function: what it does may run
                continue
            for child in ast.iter_child_nodes(stmt):
                if isinstance(child, ast.stmt):
                    self.block(module, [child])
                elif isinstance(child, ast.expr):
                    self.expression(module, child)
                else:
                    for part in ast.walk(child):
                        if isinstance(part, ast.expr):
                            self.expression(module, part)
            if isinstance(stmt, ast.Import | ast.ImportFrom):
                self.imports(module, stmt)

    def imports(self, module: Module, stmt: ast.Import | ast.ImportFrom) -> None:
        names = [a.name for a in stmt.names] if isinstance(stmt, ast.Import) else [stmt.module]
        for name in names:
            if (name or "").split(".")[0] in POSIX_ONLY_MODULES:
                self.found.append(f"{module.name}: import {name} (line {stmt.lineno})")

    def expression(self, module: Module, expr: ast.expr) -> None:
        for node in ast.walk(expr):
            where = f"{module.name} line {getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Attribute):
                owner = ast.unparse(node.value)
                if owner in ("self", "run") and node.attr in self.methods:
                    # A method called or handed on (`self._stdout` to a pump): it runs.
                    owning, method = self.methods[node.attr]
                    assert isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef)
                    self.function(owning, method)
                elif owner == "super()" and "local" in self.modules:
                    base = self.modules["local"].methods("_Run")
                    if node.attr in base:
                        self.function(self.modules["local"], base[node.attr])
                if node.attr in POSIX_ONLY_ATTRIBUTES.get(owner, ()):
                    self.found.append(f"{where}: {owner}.{node.attr}")
                if node.attr in SELECTOR_LOOP_LACKS:
                    self.found.append(f"{where}: .{node.attr}")
            elif isinstance(node, ast.keyword) and node.arg in POSIX_ONLY_KEYWORDS:
                self.found.append(f"{where}: {node.arg}=")
            elif isinstance(node, ast.Dict):  # keywords gathered for a `**` call
                for key in node.keys:
                    if isinstance(key, ast.Constant) and key.value in POSIX_ONLY_KEYWORDS:
                        self.found.append(f"{where}: {key.value!r}")
            elif isinstance(node, ast.Call):
                self.call(module, node, where)

    def call(self, module: Module, node: ast.Call, where: str) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            if func.id in module.functions:
                self.function(module, module.functions[func.id])
            elif (origin := module.imported.get(func.id)) is not None:
                self.into(origin, where)
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner = func.value.id
            if owner in ("self", "run") and func.attr in self.methods:
                owning, method = self.methods[func.attr]
                assert isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef)
                self.function(owning, method)
            elif owner in POSIX_MODULES:
                self.into(f"{owner}.{func.attr}", where)
            elif owner in self.modules and func.attr in self.modules[owner].functions:
                self.function(self.modules[owner], self.modules[owner].functions[func.attr])

    def into(self, origin: str, where: str) -> None:
        module, _, name = origin.partition(".")
        if module in POSIX_MODULES:
            if origin not in ALLOWED_CALLS and not name.isupper():
                self.found.append(f"{where}: calls the POSIX-only {origin}")
        elif module in self.modules and name in self.modules[module].functions:
            self.function(self.modules[module], self.modules[module].functions[name])


def _modules() -> dict[str, Module]:
    found = {p.stem: Module.read(p) for p in RUNNER.glob("*.py")}
    found["loop"] = Module.read(PACKAGE / "engine" / "loop.py")
    return found


def _windows_run_methods(modules: dict[str, Module]) -> dict[str, tuple[Module, ast.AST]]:
    """`self.x` on the Windows path: WindowsRun's own methods, else those of local._Run."""
    local, winrun = modules["local"], modules["winrun"]
    methods: dict[str, tuple[Module, ast.AST]] = {
        name: (local, node) for name, node in local.methods("_Run").items()
    }
    for name, node in winrun.methods("WindowsRun").items():
        methods[name] = (winrun, node)
    return methods


def _reach() -> WindowsReach:
    modules = _modules()
    methods = _windows_run_methods(modules)
    reach = WindowsReach(modules, methods)
    # Every function of the modules Windows runs whole; of local.py, what a Windows job uses.
    for name, module in modules.items():
        if name in POSIX_MODULES or name == "local":
            continue
        for function in module.functions.values():
            reach.function(module, function)
        for cls in module.classes:
            for method in module.methods(cls).values():
                reach.function(module, method)
        reach.block(module, [s for s in module.tree.body if not isinstance(s, ast.ClassDef)])
    # run_local makes a WindowsRun and calls its methods (`run.execute`, ...), which call
    # theirs; what only the POSIX run calls (`_make_cgroup`, `_pooled`) is never reached.
    local = modules["local"]
    reach.function(local, local.functions["run_local"])
    return reach


def test_the_windows_path_makes_no_posix_only_call() -> None:
    reach = _reach()
    assert reach.found == []
    # It did walk the Windows path: the job's start and end, and the shared line handling.
    for expected in [
        ("winrun", "_start"),
        ("winrun", "end_tree"),
        ("winjob", "start"),
        ("local", "run_local"),
        ("local", "execute"),
        ("local", "_pump"),
        ("local", "_event"),
        ("local", "_exit_event"),
        ("argv", "build_launch"),
        ("pep723", "_call_in_thread"),
        ("attachments", "_read_windows"),
        ("loop", "on_stop_signals"),
    ]:
        assert expected in reach.seen, expected
    # And the POSIX path, walked the same way, is what it finds.
    local = reach.modules["local"]
    posix = WindowsReach(reach.modules, {n: (local, m) for n, m in local.methods("_Run").items()})
    posix.function(local, local.methods("_Run")["_start"])
    posix.function(local, local.methods("_Run")["cleanup"])
    assert any("pass_fds" in f for f in posix.found)
    assert any("connect_read_pipe" in f or "create_subprocess_exec" in f for f in posix.found)
    assert any("POSIX-only tree." in f for f in posix.found)


def test_the_posix_only_modules_still_import_on_windows() -> None:
    """local.py imports tree, cgroup and pool on Windows too: their import-time code (and
    what it calls) must run there, whatever their functions do later."""
    modules = _modules()
    for name in sorted(POSIX_MODULES):
        module = modules[name]
        reach = WindowsReach(modules, {})
        top: list[ast.stmt] = []
        for stmt in module.tree.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                for expr in [*stmt.decorator_list, *stmt.args.defaults]:
                    reach.expression(module, expr)
            elif isinstance(stmt, ast.ClassDef):
                top += [
                    s
                    for s in stmt.body
                    if not isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)
                ]
            else:
                top.append(stmt)
        reach.block(module, top)
        assert reach.found == [], name


def _platform_reads(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and ast.unparse(node) in (
            "sys.platform",
            "os.name",
            "sys.getwindowsversion",
        ):
            yield f"line {node.lineno}: {ast.unparse(node)}"
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if "platform" in names:
                yield f"line {node.lineno}: import platform"


def test_only_the_platform_selector_asks_which_os_this_is() -> None:
    asking = {
        str(path.relative_to(PACKAGE)): list(_platform_reads(ast.parse(path.read_text())))
        for path in [*RUNNER.glob("*.py"), PACKAGE / "engine" / "loop.py"]
    }
    assert [path for path, reads in asking.items() if reads] == ["runner/platform.py"]
    assert all(read.endswith("sys.platform") for read in asking["runner/platform.py"])


def test_the_selector_tells_the_platforms_apart() -> None:
    assert current() is LINUX  # this suite runs on Linux
    assert WINDOWS.windows
    assert not WINDOWS.fork_server
    assert LINUX.fork_server
    assert not LINUX.windows
    with pytest.raises(OSError, match="kernel32 is a Windows library"):
        LINUX.kernel32()


@pytest.fixture
def restore_policy() -> Iterator[None]:
    before = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(before)


@pytest.mark.usefixtures("restore_policy")
def test_on_windows_the_cli_runs_on_a_selector_loop() -> None:
    before = asyncio.get_event_loop_policy()
    assert prepare_event_loop(LINUX) is None
    assert asyncio.get_event_loop_policy() is before
    policy = prepare_event_loop(WINDOWS)
    assert policy is not None
    assert asyncio.get_event_loop_policy() is policy
    loop = policy.new_event_loop()
    try:
        # psycopg's async connections need exactly this kind of loop.
        assert isinstance(loop, asyncio.SelectorEventLoop)
    finally:
        loop.close()


async def test_on_windows_stop_signals_reach_the_loop_through_python_handlers() -> None:
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    before = signal.getsignal(signal.SIGTERM)
    undo = on_stop_signals(loop, stopped.set, WINDOWS)
    try:
        # Not the loop's own handler (Windows' selector loop has none): Python's.
        assert signal.getsignal(signal.SIGTERM) is not before
        signal.raise_signal(signal.SIGTERM)
        await asyncio.wait_for(stopped.wait(), 10)
    finally:
        undo()
    assert signal.getsignal(signal.SIGTERM) is before
