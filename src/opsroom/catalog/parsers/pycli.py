"""A small, bounded interpreter over a Python script's syntax tree — never its code.

The argparse, click and typer readers (SPEC §3.10) need to know what a parser looks like
after a script has built it: which names refer to which modules, what a constant list of
choices holds, which helper a parser was handed to. This module walks statements and
evaluates only literal expressions (strings, numbers, lists, dicts, `+` of those,
f-strings of constants) and calls to functions defined in the same file. Nothing is
imported or executed; every loop, call and value is bounded, so a hostile or broken file
costs a bounded amount of work and never raises.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field

from opsroom.catalog.parsers.base import Problem, SubCommand
from opsroom.model.catalog import Severity
from opsroom.model.commands import ArgvSlot, ExclusiveGroup, ParamSpec, ParamType, ParamValue


class _Unknown:
    """A value the interpreter cannot know statically."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()

MAX_STEPS = 20_000  # statements executed per file
MAX_EVALS = 200_000  # expressions evaluated per file
MAX_DEPTH = 40  # expression nesting followed
MAX_CALLS = 8  # nested calls of the file's own functions
MAX_LOOP = 64  # iterations unrolled of a loop over a literal sequence
MAX_ITEMS = 1_000  # items in a literal list the interpreter builds
MAX_TEXT = 20_000  # characters in a string the interpreter builds


@dataclass(frozen=True, slots=True)
class Ref:
    """A name that is not a value here: `int`, `pathlib.Path`, `click.INT`, `my_type`."""

    name: str


@dataclass(eq=False, slots=True)
class Func:
    """A function defined in the file, and the scope it was defined in."""

    node: ast.FunctionDef | ast.AsyncFunctionDef
    scope: Scope


@dataclass(eq=False, slots=True)
class Klass:
    """A class defined in the file (argparse subclasses, Enums of choices)."""

    node: ast.ClassDef
    scope: Scope


@dataclass(eq=False, slots=True)
class Instance:
    """An object of a class defined in the file, with the attributes its methods set."""

    klass: Klass
    attrs: dict[str, object] = field(default_factory=dict)


class Scope:
    """Variables of one function call (or the module), with the enclosing scope behind."""

    __slots__ = ("parent", "vars")

    def __init__(self, parent: Scope | None = None) -> None:
        self.vars: dict[str, object] = {}
        self.parent = parent

    def get(self, name: str) -> object:
        """The value bound to `name` here or in an enclosing scope, else UNKNOWN."""
        scope: Scope | None = self
        while scope is not None:
            if name in scope.vars:
                return scope.vars[name]
            scope = scope.parent
        return UNKNOWN


@dataclass(slots=True)
class Frame:
    """One call of a file's function: what it returned (the first value that is known)."""

    ret: object = UNKNOWN


def dotted(node: ast.expr) -> str | None:
    """`a.b.c` for a chain of attributes on a name, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def statements(body: Sequence[ast.stmt]) -> list[ast.stmt]:
    """Every statement of a body in source order, descending into compound statements and
    functions."""
    out: list[ast.stmt] = []
    _collect(body, out, 0)
    return out


def _collect(body: Sequence[ast.stmt], out: list[ast.stmt], depth: int) -> None:
    if depth > MAX_DEPTH:
        return
    for stmt in body:
        out.append(stmt)
        if not isinstance(stmt, _COMPOUND):
            continue
        for name in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, name, None)
            if inner:
                _collect(inner, out, depth + 1)
        for handler in getattr(stmt, "handlers", ()) or ():
            _collect(handler.body, out, depth + 1)
        for case in getattr(stmt, "cases", ()) or ():
            _collect(case.body, out, depth + 1)


_COMPOUND = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.Try,
    ast.TryStar,
    ast.Match,
)


class Names:
    """What each imported name refers to: `ap` → `argparse`, `Opt` → `typer.Option`."""

    def __init__(self, tree: ast.Module) -> None:
        self.aliases: dict[str, str] = {}
        self.modules: set[str] = set()
        for stmt in statements(tree.body):
            if isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    top = alias.name.split(".")[0]
                    self.modules.add(top)
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                    else:
                        self.aliases.setdefault(top, top)
            elif isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level:
                self.modules.add(stmt.module.split(".")[0])
                for alias in stmt.names:
                    if alias.name != "*":
                        self.aliases[alias.asname or alias.name] = f"{stmt.module}.{alias.name}"

    def qual(self, node: ast.expr) -> str | None:
        """The dotted name an expression refers to, with imports resolved."""
        name = dotted(node)
        if name is None:
            return None
        head, _, rest = name.partition(".")
        base = self.aliases.get(head, head)
        return f"{base}.{rest}" if rest else base


# Names that are constants in the libraries the readers know.
KNOWN_CONSTANTS: dict[str, object] = {
    "argparse.SUPPRESS": "==SUPPRESS==",
    "argparse.OPTIONAL": "?",
    "argparse.ZERO_OR_MORE": "*",
    "argparse.ONE_OR_MORE": "+",
    "argparse.REMAINDER": "...",
}
# Statements with nothing to follow (imports are read once, by Names).
_INERT = (ast.Import, ast.ImportFrom, ast.Pass, ast.Global, ast.Nonlocal, ast.Break, ast.Continue)
_STR_METHODS = frozenset(
    {"strip", "lstrip", "rstrip", "lower", "upper", "title", "capitalize", "casefold"}
)
_SEQUENCE_BUILTINS = frozenset({"list", "tuple", "sorted", "set", "frozenset"})


def _bounded(value: object) -> object:
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return UNKNOWN
    if isinstance(value, list | tuple) and len(value) > MAX_ITEMS:
        return UNKNOWN
    return value


def _items(value: object) -> list[object] | None:
    """The items of a literal sequence, dict (its keys) or small range; None otherwise."""
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, dict):
        return list(value)
    if isinstance(value, range) and len(value) <= MAX_ITEMS:
        return list(value)
    return None


class Interpreter:
    """Runs a file's statements symbolically; subclasses give library calls a meaning."""

    def __init__(self, tree: ast.Module, names: Names, docstring: str) -> None:
        self.tree = tree
        self.names = names
        self.docstring = docstring
        self.globals = Scope()
        self.steps = 0
        self.evals = 0
        self.calls: list[ast.AST] = []
        self.invoked: set[int] = set()  # id() of function nodes that were called
        self.class_attrs: dict[tuple[int, str], object] = {}
        self.exhausted = False

    def close(self) -> None:
        """Drop what the run built: a function and the scope it was defined in point at each
        other, and freeing them now (not at the next garbage collection) keeps a catalog
        load's collections few and cheap."""
        self.globals.vars.clear()
        self.class_attrs.clear()

    # ------------------------------------------------------------------ statements

    def run_module(self) -> None:
        """Run the module's top-level statements (imports aside) in order."""
        self.block(self.tree.body, self.globals, None)

    def run_uncalled(self) -> None:
        """Run each top-level function nobody called, as if called with unknown values."""
        for stmt in statements(self.tree.body):
            uncalled = id(stmt) not in self.invoked and not self.exhausted
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and uncalled:
                self.invoke(Func(stmt, self.globals), [], {})

    def block(self, body: Sequence[ast.stmt], scope: Scope, frame: Frame | None) -> None:
        """Run a list of statements."""
        for stmt in body:
            if self.steps >= MAX_STEPS:
                self.exhausted = True
                return
            self.steps += 1
            self.stmt(stmt, scope, frame)

    def stmt(self, stmt: ast.stmt, scope: Scope, frame: Frame | None) -> None:
        """Run one statement: every branch of a compound one, once."""
        if isinstance(stmt, ast.Expr):  # the most frequent kinds first
            self.eval(stmt.value, scope)
        elif isinstance(stmt, _INERT):
            return
        elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            scope.vars[stmt.name] = Func(stmt, scope)
        elif isinstance(stmt, ast.ClassDef):
            scope.vars[stmt.name] = Klass(stmt, scope)
        elif isinstance(stmt, ast.Assign):
            value = self.eval(stmt.value, scope)
            for target in stmt.targets:
                self.bind(target, value, scope)
        elif isinstance(stmt, ast.AnnAssign):
            if stmt.value is not None:
                self.bind(stmt.target, self.eval(stmt.value, scope), scope)
        elif isinstance(stmt, ast.AugAssign):
            self.eval(stmt.value, scope)
            self.bind(stmt.target, UNKNOWN, scope)
        elif isinstance(stmt, ast.Return):
            value = self.eval(stmt.value, scope) if stmt.value is not None else None
            if frame is not None and (frame.ret is UNKNOWN or frame.ret is None):
                frame.ret = value
        elif isinstance(stmt, ast.If | ast.While):
            self.eval(stmt.test, scope)
            self.block(stmt.body, scope, frame)
            self.block(stmt.orelse, scope, frame)
        elif isinstance(stmt, ast.For | ast.AsyncFor):
            self._loop(stmt, scope, frame)
        elif isinstance(stmt, ast.With | ast.AsyncWith):
            for item in stmt.items:
                value = self.eval(item.context_expr, scope)
                if item.optional_vars is not None:
                    self.bind(item.optional_vars, value, scope)
            self.block(stmt.body, scope, frame)
        elif isinstance(stmt, ast.Try | ast.TryStar):
            self.block(stmt.body, scope, frame)
            for handler in stmt.handlers:
                self.block(handler.body, scope, frame)
            self.block(stmt.orelse, scope, frame)
            self.block(stmt.finalbody, scope, frame)
        elif isinstance(stmt, ast.Match):
            self.eval(stmt.subject, scope)
            for case in stmt.cases:
                self.block(case.body, scope, frame)
        elif isinstance(stmt, ast.Raise) and stmt.exc is not None:
            self.eval(stmt.exc, scope)  # `raise SystemExit(main())`
        elif isinstance(stmt, ast.Assert):
            self.eval(stmt.test, scope)

    def _loop(self, stmt: ast.For | ast.AsyncFor, scope: Scope, frame: Frame | None) -> None:
        items = _items(self.eval(stmt.iter, scope))
        if items is not None and 0 < len(items) <= MAX_LOOP:
            for item in items:
                self.bind(stmt.target, item, scope)
                self.block(stmt.body, scope, frame)
        else:
            self.bind(stmt.target, UNKNOWN, scope)
            self.block(stmt.body, scope, frame)
        self.block(stmt.orelse, scope, frame)

    def bind(self, target: ast.expr, value: object, scope: Scope) -> None:
        """Assign to a name, `a.b` (kept under its dotted name) or a tuple of those."""
        if isinstance(target, ast.Name):
            scope.vars[target.id] = value
        elif isinstance(target, ast.Attribute):
            owner = self.eval(target.value, scope) if isinstance(target.value, ast.Name) else None
            name = dotted(target)
            if isinstance(owner, Instance):
                owner.attrs[target.attr] = value  # `self.parser = ...` in a method
            elif name is not None:
                scope.vars[name] = value
        elif isinstance(target, ast.Tuple | ast.List):
            values = _items(value) if isinstance(value, list | tuple) else None
            if values is not None and len(values) == len(target.elts):
                for elt, item in zip(target.elts, values, strict=True):
                    self.bind(elt, item, scope)
            else:
                for elt in target.elts:
                    self.bind(elt, UNKNOWN, scope)
        elif isinstance(target, ast.Starred):
            self.bind(target.value, UNKNOWN, scope)

    # ----------------------------------------------------------------- expressions

    def eval(self, node: ast.expr, scope: Scope, depth: int = 0) -> object:
        """The value of an expression if it is knowable statically, else UNKNOWN.

        Calls are followed (that is how parsers get built); only literal arithmetic is done.
        """
        self.evals += 1
        if depth > MAX_DEPTH or self.evals > MAX_EVALS:
            self.exhausted = self.exhausted or self.evals > MAX_EVALS
            return UNKNOWN
        d = depth + 1
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return self._name(node, scope)
        if isinstance(node, ast.Attribute):
            return self._attribute(node, scope, d)
        if isinstance(node, ast.Call):
            return self.call(node, scope, d)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            if len(node.elts) > MAX_ITEMS:
                return UNKNOWN
            if any(isinstance(e, ast.Starred) for e in node.elts):
                for e in node.elts:
                    self.eval(e, scope, d)
                return UNKNOWN
            values = [self.eval(e, scope, d) for e in node.elts]
            return tuple(values) if isinstance(node, ast.Tuple) else values
        if isinstance(node, ast.Dict):
            return self._dict(node, scope, d)
        if isinstance(node, ast.BinOp):
            return self._binop(node, scope, d)
        if isinstance(node, ast.UnaryOp):
            operand = self.eval(node.operand, scope, d)
            if isinstance(operand, int | float) and not isinstance(operand, bool):
                if isinstance(node.op, ast.USub):
                    return -operand
                if isinstance(node.op, ast.UAdd):
                    return operand
            return UNKNOWN
        if isinstance(node, ast.JoinedStr):
            return self._fstring(node, scope, d)
        if isinstance(node, ast.Subscript):
            return self._subscript(node, scope, d)
        if isinstance(node, ast.NamedExpr):
            value = self.eval(node.value, scope, d)
            self.bind(node.target, value, scope)
            return value
        if isinstance(node, ast.Lambda):
            return Ref("<lambda>")
        if isinstance(node, ast.Await | ast.Starred):
            self.eval(node.value, scope, d)
            return UNKNOWN
        if isinstance(node, ast.BoolOp | ast.Compare | ast.IfExp):
            # `args = parse() or default()`: the calls inside still build parsers.
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    self.eval(child, scope, d)
            return UNKNOWN
        return UNKNOWN

    def _name(self, node: ast.Name, scope: Scope) -> object:
        value = scope.get(node.id)
        if value is not UNKNOWN:
            return value
        if node.id == "__doc__":
            return self.docstring
        qual = self.names.qual(node) or node.id
        if qual in KNOWN_CONSTANTS:
            return KNOWN_CONSTANTS[qual]
        return Ref(qual)

    def _attribute(self, node: ast.Attribute, scope: Scope, depth: int) -> object:
        name = dotted(node)
        if name is not None:
            value = scope.get(name)
            if value is not UNKNOWN:
                return value
            head = name.split(".")[0]
            if scope.get(head) is UNKNOWN:  # not a variable: a module or library name
                qual = self.names.qual(node) or name
                if qual in KNOWN_CONSTANTS:
                    return KNOWN_CONSTANTS[qual]
                return Ref(qual)
        base = self.eval(node.value, scope, depth)
        return self.attribute_of(base, node.attr)

    def attribute_of(self, base: object, attr: str) -> object:
        """`obj.attr` for an object of the file's classes (an Enum member's value...)."""
        if isinstance(base, Instance):
            if attr in base.attrs:
                return base.attrs[attr]
            return self.class_attribute(base.klass, attr)
        if isinstance(base, Klass):
            return self.class_attribute(base, attr)
        return UNKNOWN

    def class_attribute(self, klass: Klass, attr: str) -> object:
        """A class attribute assigned in the class body (evaluated once)."""
        key = (id(klass.node), attr)
        if key in self.class_attrs:
            return self.class_attrs[key]
        self.class_attrs[key] = UNKNOWN
        for stmt in klass.node.body:
            if isinstance(stmt, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == attr for t in stmt.targets
            ):
                self.class_attrs[key] = self.eval(stmt.value, klass.scope)
                break
        return self.class_attrs[key]

    def find_method(
        self, klass: Klass, name: str, depth: int = 0
    ) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        """The method `name` of a class of the file, or of one of its bases in the file."""
        for stmt in klass.node.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and stmt.name == name:
                return stmt
        if depth < MAX_CALLS:
            for base in klass.node.bases:
                bound = klass.scope.get(base.id) if isinstance(base, ast.Name) else UNKNOWN
                if isinstance(bound, Klass) and bound is not klass:
                    found = self.find_method(bound, name, depth + 1)
                    if found is not None:
                        return found
        return None

    def instantiate(self, klass: Klass, node: ast.Call, scope: Scope, depth: int) -> Instance:
        """`Klass(...)`: a new object, with `__init__` run on it."""
        instance = Instance(klass)
        args, kwargs = self.arguments(node, scope, depth)
        init = self.find_method(klass, "__init__")
        if init is not None:
            self.invoke(Func(init, klass.scope), [instance, *args], kwargs)
        return instance

    def _dict(self, node: ast.Dict, scope: Scope, depth: int) -> object:
        if len(node.keys) > MAX_ITEMS:
            return UNKNOWN
        out: dict[object, object] = {}
        known = True
        for key_node, value_node in zip(node.keys, node.values, strict=True):
            value = self.eval(value_node, scope, depth)
            if key_node is None:
                known = False
                continue
            key = self.eval(key_node, scope, depth)
            if isinstance(key, str | int | float | bool) or key is None:
                out[key] = value
            else:
                known = False
        return out if known else UNKNOWN

    def _binop(self, node: ast.BinOp, scope: Scope, depth: int) -> object:
        left = self.eval(node.left, scope, depth)
        right = self.eval(node.right, scope, depth)
        if not isinstance(node.op, ast.Add | ast.Sub):
            return UNKNOWN  # never `%`-format or multiply: sizes could explode
        numbers = (int, float)
        if isinstance(left, numbers) and isinstance(right, numbers):
            if isinstance(left, bool) or isinstance(right, bool):
                return UNKNOWN
            if abs(left) > 1e15 or abs(right) > 1e15:
                return UNKNOWN
            return left + right if isinstance(node.op, ast.Add) else left - right
        if not isinstance(node.op, ast.Add):
            return UNKNOWN
        if isinstance(left, str) and isinstance(right, str):
            return _bounded(left + right)
        if isinstance(left, list) and isinstance(right, list):
            return _bounded(left + right)
        if isinstance(left, tuple) and isinstance(right, tuple):
            return _bounded(left + right)
        return UNKNOWN

    def _fstring(self, node: ast.JoinedStr, scope: Scope, depth: int) -> object:
        parts: list[str] = []
        for value in node.values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                parts.append(value.value)
                continue
            if not isinstance(value, ast.FormattedValue):
                return UNKNOWN
            if value.format_spec is not None or value.conversion not in (-1, ord("s")):
                return UNKNOWN
            inner = self.eval(value.value, scope, depth)
            if isinstance(inner, bool) or not isinstance(inner, str | int | float):
                return UNKNOWN
            parts.append(str(inner))
        return _bounded("".join(parts))

    def _subscript(self, node: ast.Subscript, scope: Scope, depth: int) -> object:
        base = self.eval(node.value, scope, depth)
        key = self.eval(node.slice, scope, depth)
        try:
            if isinstance(base, dict) and isinstance(key, str | int | float):
                return base.get(key, UNKNOWN)
            if isinstance(base, list | tuple | str) and type(key) is int:
                return base[key]
        except (IndexError, TypeError):
            return UNKNOWN
        return UNKNOWN

    # ----------------------------------------------------------------------- calls

    def call(self, node: ast.Call, scope: Scope, depth: int) -> object:
        """A call: the file's own function (followed), a known library call, or UNKNOWN."""
        func = node.func
        if isinstance(func, ast.Attribute):
            receiver = self._receiver(func, scope, depth)
            result = self.method(receiver, func.attr, node, scope, depth)
            if result is not NotImplemented:
                return result
            qual = self.names.qual(func) if isinstance(receiver, Ref) else None
        elif isinstance(func, ast.Name):
            target = scope.get(func.id)
            if isinstance(target, Func):
                args, kwargs = self.arguments(node, scope, depth)
                return self.invoke(target, args, kwargs)
            if isinstance(target, Klass):
                result = self.construct(target, node, scope, depth)
                if result is not NotImplemented:
                    return result
                return self.instantiate(target, node, scope, depth)
            qual = self.names.qual(func)
        else:
            self.eval(func, scope, depth)
            qual = None
        if qual is not None:
            result = self.library_call(qual, node, scope, depth)
            if result is not NotImplemented:
                return result
            result = self._builtin(qual, node, scope, depth)
            if result is not NotImplemented:
                return result
        args, kwargs = self.arguments(node, scope, depth)  # calls inside them still count
        self.opaque_call(node, [*args, *kwargs.values()])
        return UNKNOWN

    def opaque_call(self, node: ast.Call, values: list[object]) -> None:
        """A call of something outside the file, with these argument values: a hook."""

    def _receiver(self, func: ast.Attribute, scope: Scope, depth: int) -> object:
        if isinstance(func.value, ast.Name):  # `parser.add_argument`: the common case
            bound = scope.get(func.value.id)
            if bound is not UNKNOWN:
                return bound
        name = dotted(func.value)
        if name is not None and scope.get(name.split(".")[0]) is UNKNOWN:
            bound = scope.get(name)
            if bound is not UNKNOWN:
                return bound
            if name == "__doc__":
                return self.docstring
            return Ref(self.names.qual(func.value) or name)
        return self.eval(func.value, scope, depth)

    def arguments(
        self, node: ast.Call, scope: Scope, depth: int
    ) -> tuple[list[object], dict[str, object]]:
        """The evaluated positional and keyword arguments of a call (`*a`, `**k` unknown)."""
        args: list[object] = []
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                self.eval(arg.value, scope, depth)
                args.append(UNKNOWN)
            else:
                args.append(self.eval(arg, scope, depth))
        kwargs: dict[str, object] = {}
        for kw in node.keywords:
            value = self.eval(kw.value, scope, depth)
            if kw.arg is not None:
                kwargs[kw.arg] = value
            elif isinstance(value, dict):  # `**OPTIONS[flag]`: a literal dict of keywords
                kwargs.update((k, v) for k, v in value.items() if isinstance(k, str))
        return args, kwargs

    def invoke(self, func: Func, args: list[object], kwargs: dict[str, object]) -> object:
        """Run a function of the file with these argument values; its return value."""
        fn = func.node
        if len(self.calls) >= MAX_CALLS or fn in self.calls or self.exhausted:
            return UNKNOWN
        self.invoked.add(id(fn))
        local = Scope(func.scope)
        params = [*fn.args.posonlyargs, *fn.args.args]
        defaults: list[ast.expr | None] = [None] * (len(params) - len(fn.args.defaults))
        defaults += list(fn.args.defaults)
        for i, (param, default) in enumerate(zip(params, defaults, strict=True)):
            if i < len(args):
                local.vars[param.arg] = args[i]
            elif param.arg in kwargs:
                local.vars[param.arg] = kwargs[param.arg]
            elif default is not None:
                local.vars[param.arg] = self.eval(default, func.scope)
            else:
                local.vars[param.arg] = UNKNOWN
        for param, kw_default in zip(fn.args.kwonlyargs, fn.args.kw_defaults, strict=True):
            if param.arg in kwargs:
                local.vars[param.arg] = kwargs[param.arg]
            elif kw_default is not None:
                local.vars[param.arg] = self.eval(kw_default, func.scope)
            else:
                local.vars[param.arg] = UNKNOWN
        for extra in (fn.args.vararg, fn.args.kwarg):
            if extra is not None:
                local.vars[extra.arg] = UNKNOWN
        frame = Frame()
        self.calls.append(fn)
        try:
            self.block(fn.body, local, frame)
        finally:
            self.calls.pop()
        return frame.ret

    def _builtin(self, qual: str, node: ast.Call, scope: Scope, depth: int) -> object:
        if node.keywords and qual != "dict":
            return NotImplemented
        args = [self.eval(a, scope, depth) for a in node.args]
        if qual in _SEQUENCE_BUILTINS and len(args) == 1:
            items = _items(args[0])
            if items is None:
                return UNKNOWN
            if qual == "sorted":
                try:
                    return sorted(items)  # type: ignore[type-var]
                except TypeError:
                    return UNKNOWN
            return tuple(items) if qual == "tuple" else items
        numbers = [a for a in args if type(a) is int]
        if qual == "range" and 1 <= len(numbers) == len(args) <= 3:
            try:
                return range(*numbers)
            except ValueError:
                return UNKNOWN
        if qual in ("textwrap.dedent", "inspect.cleandoc") and len(args) == 1:
            text = args[0]
            if isinstance(text, str):
                return inspect.cleandoc(text) if qual == "inspect.cleandoc" else _dedent(text)
        if qual == "str" and len(args) == 1 and isinstance(args[0], str | int | float):
            return str(args[0])
        return NotImplemented

    # ------------------------------------------------------------- subclass hooks

    def method(
        self, receiver: object, name: str, node: ast.Call, scope: Scope, depth: int
    ) -> object:
        """`receiver.name(...)`; NotImplemented when the receiver is nothing known."""
        if isinstance(receiver, str):
            args, kwargs = self.arguments(node, scope, depth)
            if kwargs:
                return UNKNOWN
            if name in _STR_METHODS and not args:
                return str(getattr(receiver, name)())
            if name == "splitlines" and not args:
                return _bounded(receiver.splitlines())
            if name == "split" and len(args) == 1 and isinstance(args[0], str) and args[0]:
                return _bounded(receiver.split(args[0]))
            if name == "join" and len(args) == 1:
                items = _items(args[0])
                if items is not None and all(isinstance(i, str) for i in items):
                    return _bounded(receiver.join(items))  # type: ignore[arg-type]
            return UNKNOWN
        if isinstance(receiver, dict):
            self.arguments(node, scope, depth)
            if name == "keys":
                return list(receiver)
            if name == "values":
                return list(receiver.values())
            if name == "items":
                return [tuple(kv) for kv in receiver.items()]
            return UNKNOWN
        if isinstance(receiver, Klass):
            return self.construct_method(receiver, name, node, scope, depth)
        if isinstance(receiver, Instance):
            args, kwargs = self.arguments(node, scope, depth)
            method = self.find_method(receiver.klass, name)
            if method is None:
                return UNKNOWN
            return self.invoke(Func(method, receiver.klass.scope), [receiver, *args], kwargs)
        return NotImplemented

    def construct_method(
        self, klass: Klass, name: str, node: ast.Call, scope: Scope, depth: int
    ) -> object:
        """A class method called on a class of the file: unknown by default."""
        self.arguments(node, scope, depth)
        return UNKNOWN

    def construct(self, klass: Klass, node: ast.Call, scope: Scope, depth: int) -> object:
        """`Klass(...)` for a class defined in the file; NotImplemented when not special."""
        return NotImplemented

    def library_call(self, qual: str, node: ast.Call, scope: Scope, depth: int) -> object:
        """A call of a library function named `qual`; NotImplemented when not special."""
        return NotImplemented

    def class_bases(self, klass: Klass, depth: int = 0) -> set[str]:
        """Dotted names of a class's bases, following classes of the same file."""
        out: set[str] = set()
        if depth > MAX_CALLS:
            return out
        for base in klass.node.bases:
            qual = self.names.qual(base)
            if qual is None:
                continue
            bound = klass.scope.get(base.id) if isinstance(base, ast.Name) else UNKNOWN
            if isinstance(bound, Klass) and bound is not klass:
                out |= self.class_bases(bound, depth + 1)
            else:
                out.add(qual)
        return out


def _dedent(text: str) -> str:
    return textwrap.dedent(text)


# ------------------------------------------------------------------------ params


@dataclass(slots=True)
class Draft:
    """A parameter as a reader found it, before names are made unique for chat."""

    name: str
    slot: ArgvSlot
    type: ParamType = ParamType.STRING
    multiple: bool = False
    required: bool = False
    default: ParamValue | None = None
    default_text: str | None = None
    choices: tuple[str, ...] = ()
    range: tuple[float | None, float | None] | None = None
    pattern: str | None = None
    help: str = ""
    aliases: list[str] = field(default_factory=list)
    fallback_names: list[str] = field(default_factory=list)  # tried when `name` clashes
    group: object = None  # the exclusive group it belongs to (an identity), if any
    line: int = 0


@dataclass(frozen=True, slots=True)
class CliRead:
    """What a reader found: one command, or one per sub-command."""

    style: str  # "argparse", "click" or "typer"
    command: SubCommand | None = None  # the script itself, when it has no sub-commands
    subcommands: tuple[SubCommand, ...] = ()
    reached: bool = True  # the file's own top-level code runs the parser
    problems: tuple[Problem, ...] = ()


def chat_word(word: str) -> str:
    """A sub-command word as part of a command name: lower case, `_` → `-` (SPEC §3.2)."""
    return word.strip().lower().replace("_", "-")


def usable_word(word: object) -> bool:
    """Whether a sub-command name can be a word of a chat command (and of an argv)."""
    return (
        isinstance(word, str)
        and bool(word)
        and not word.startswith("-")
        and not any(c.isspace() for c in word)
        and word.isprintable()
    )


def _key(name: str) -> str:
    # How the router compares parameter names: case-insensitive, `-` and `_` alike.
    return name.casefold().replace("_", "-")


def finish(
    drafts: Sequence[Draft], groups: Sequence[tuple[object, bool]], problems: list[Problem]
) -> tuple[tuple[ParamSpec, ...], tuple[ExclusiveGroup, ...]]:
    """Chat parameters from drafts: unique names, safe aliases, exclusive groups noted in help.

    `groups` lists each exclusive group's identity and whether one of it is required.
    A later parameter whose every name is taken is left out, with a warning.
    """
    taken: dict[str, str] = {}
    named: list[tuple[Draft, str]] = []
    for d in drafts:
        usable = [n for n in (d.name, *d.fallback_names) if usable_word(n)]
        if not usable:
            problems.append(
                Problem(d.line or 1, f"{d.name!r} cannot be a chat parameter name: left out")
            )
            continue
        name = next((n for n in usable if _key(n) not in taken), None)
        if name is None:
            problems.append(
                Problem(
                    d.line or 1,
                    f"parameter '{d.name}' clashes with '{taken.get(_key(d.name), d.name)}' "
                    "(chat names match case-insensitively): left out",
                    Severity.WARNING,
                )
            )
            continue
        taken[_key(name)] = name
        named.append((d, name))
    # Aliases only where they stay unambiguous: `-v` and `-V` both lose theirs.
    alias_count: dict[str, int] = {}
    for d, name in named:
        for a in {_key(a) for a in d.aliases if _key(a) != _key(name)}:
            alias_count[a] = alias_count.get(a, 0) + 1
    members: dict[int, list[str]] = {}
    for d, name in named:
        if d.group is not None:
            members.setdefault(id(d.group), []).append(name)
    required_group = {id(g): req for g, req in groups}
    # Positions in the order the script's parser reads its positionals: stage, then declared.
    positional = sorted(
        (i for i, (d, _) in enumerate(named) if not d.slot.option),
        key=lambda i: (named[i][0].slot.stage, i),
    )
    positions = {i: at for at, i in enumerate(positional)}
    out: list[ParamSpec] = []
    for i, (d, name) in enumerate(named):
        aliases: list[str] = []
        for a in d.aliases:
            k = _key(a)
            unique = k != _key(name) and k not in taken and alias_count.get(k) == 1
            unique = unique and usable_word(a)
            if unique and a not in aliases:
                aliases.append(a)
        help_text = d.help
        others = members.get(id(d.group), []) if d.group is not None else []
        if len(others) > 1:
            shown = ", ".join("--" + n.replace("_", "-") for n in others)
            if required_group.get(id(d.group)):
                note = f"(exactly one of {shown})"
            else:
                rest = ", ".join("--" + n.replace("_", "-") for n in others if n != name)
                note = f"(not with {rest})"
            help_text = f"{help_text} {note}" if help_text else note
        out.append(
            ParamSpec(
                name=name,
                type=d.type,
                multiple=d.multiple,
                required=d.required,
                default=d.default,
                default_text=d.default_text,
                choices=d.choices,
                range=d.range,
                pattern=d.pattern,
                help=help_text,
                aliases=tuple(aliases),
                position=positions.get(i),
                line=d.line,
                argv=d.slot,
            )
        )
    exclusive = tuple(
        ExclusiveGroup(tuple(members[id(g)]), required=req)
        for g, req in groups
        if len(members.get(id(g), ())) > 1
    )
    return tuple(out), exclusive


def literal_default(value: object) -> tuple[ParamValue | None, bool]:
    """A known default as a parameter value, and whether it could be represented."""
    if value is None or value == [] or value == ():  # `default=[]`: nothing to show
        return None, True
    if isinstance(value, str | int | float):
        return value, True
    if isinstance(value, list | tuple) and all(isinstance(v, str | int | float) for v in value):
        return tuple(value), True
    return None, False


# The lines of the last source asked about: ast.get_source_segment splits the whole file
# on every call, which costs more than reading the rest of a script.
_LINES: list[tuple[str, list[bytes]]] = []


def source_text(source: str, node: ast.AST | None, limit: int = 80) -> str | None:
    """The source of an expression, shortened, for a default the script computes."""
    start = getattr(node, "lineno", None)
    end = getattr(node, "end_lineno", None)
    first = getattr(node, "col_offset", None)
    last = getattr(node, "end_col_offset", None)
    if start is None or end is None or first is None or last is None:
        return None
    if not _LINES or _LINES[0][0] is not source:
        _LINES[:] = [(source, [ln.encode("utf-8") for ln in source.splitlines(keepends=True)])]
    lines = _LINES[0][1][start - 1 : end]
    if not lines or end - start > 20:  # a default spread over many lines is no label
        return None
    if len(lines) == 1:
        raw = lines[0][first:last]
    else:
        raw = lines[0][first:] + b"".join(lines[1:-1]) + lines[-1][:last]
    text = " ".join(raw.decode("utf-8", "replace").split())
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def choices_of(value: object) -> tuple[tuple[str, ...], tuple[float | None, float | None] | None]:
    """Literal choices as text, or a `range(a, b)` as a numeric range; ((), None) if unknown."""
    if isinstance(value, range):
        if value.step == 1 and len(value) > 0:
            return (), (float(value.start), float(value.stop - 1))
        items: list[object] | None = list(value) if len(value) <= 50 else None
    else:
        items = _items(value)
    if not items or len(items) > MAX_ITEMS:
        return (), None
    out: list[str] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            return (), None
        text = str(item)
        if text not in out:
            out.append(text)
    return tuple(out), None


def first_line_summary(text: str) -> tuple[str, str]:
    """Summary (first paragraph's first line) and the rest, from a help text."""
    cleaned = inspect.cleandoc(text).split("\f")[0].strip()
    if not cleaned:
        return "", ""
    head, _, rest = cleaned.partition("\n")
    return head.strip(), rest.strip()
