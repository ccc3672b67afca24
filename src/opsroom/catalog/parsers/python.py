"""Metadata of a Python script, read with `ast` (never imported or run) — SPEC §3.3."""

from __future__ import annotations

import ast
import re
import tomllib
import warnings
from dataclasses import dataclass

from opsroom.catalog.parsers.base import ParsedScript, Problem
from opsroom.catalog.parsers.docstrings import Docstring, parse_docstring
from opsroom.catalog.parsers.pycli import CliRead, Names
from opsroom.catalog.parsers.pyinterface import interface_source
from opsroom.errors import OpsroomError
from opsroom.model.catalog import Severity
from opsroom.model.commands import ParamSpec, ParamType, ParamValue

# The reference regular expression of PEP 723.
_PEP723 = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")
_SCALARS = {
    "str": ParamType.STRING,
    "int": ParamType.INT,
    "float": ParamType.FLOAT,
    "bool": ParamType.BOOL,
    "datetime": ParamType.DATETIME,
    "datetime.datetime": ParamType.DATETIME,
}
_LISTS = {"list", "List", "typing.List"}
_LITERALS = {"Literal", "typing.Literal"}
_OPTIONALS = {"Optional", "typing.Optional"}
_UNIONS = {"Union", "typing.Union"}


class _UnknownType(OpsroomError):
    """An annotation opsroom cannot map to a parameter type."""


@dataclass(frozen=True, slots=True)
class _Type:
    type: ParamType
    multiple: bool = False
    choices: tuple[str, ...] = ()


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _literal_type(node: ast.expr) -> _Type:
    elts = node.elts if isinstance(node, ast.Tuple) else [node]
    values: list[object] = []
    for elt in elts:
        if not isinstance(elt, ast.Constant) or isinstance(elt.value, bool | bytes | None):
            raise _UnknownType("Literal[...] takes strings or numbers")
        values.append(elt.value)
    if all(isinstance(v, str) for v in values):
        kind = ParamType.STRING
    elif all(isinstance(v, int) for v in values):
        kind = ParamType.INT
    elif all(isinstance(v, int | float) for v in values):
        kind = ParamType.FLOAT
    else:
        raise _UnknownType("Literal[...] mixes strings and numbers")
    return _Type(kind, choices=tuple(str(v) for v in values))


def _annotation(node: ast.expr) -> tuple[_Type, bool]:
    """The parameter type of an annotation, and whether it admits None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            inner = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            raise _UnknownType(node.value) from None
        return _annotation(inner)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        if _is_none(node.right):
            return _annotation(node.left)[0], True
        if _is_none(node.left):
            return _annotation(node.right)[0], True
        raise _UnknownType(ast.unparse(node))
    name = _dotted(node)
    if name in _SCALARS:
        return _Type(_SCALARS[name]), False
    if name is not None and name.endswith(".datetime"):  # `import datetime as dt`
        return _Type(ParamType.DATETIME), False
    if isinstance(node, ast.Subscript):
        head = _dotted(node.value)
        arg = node.slice
        if head in _OPTIONALS:
            return _annotation(arg)[0], True
        if head in _UNIONS and isinstance(arg, ast.Tuple):
            rest = [e for e in arg.elts if not _is_none(e)]
            if len(rest) == 1 and len(arg.elts) == 2:
                return _annotation(rest[0])[0], True
        if head in _LITERALS:
            return _literal_type(arg), False
        if head in _LISTS or (head == "tuple" and _is_variadic_tuple(arg)):
            item = arg.elts[0] if isinstance(arg, ast.Tuple) else arg
            element, _ = _annotation(item)
            if element.multiple:
                raise _UnknownType(ast.unparse(node))
            return _Type(element.type, True, element.choices), False
    raise _UnknownType(ast.unparse(node))


def _is_variadic_tuple(arg: ast.expr) -> bool:
    return (
        isinstance(arg, ast.Tuple)
        and len(arg.elts) == 2
        and isinstance(arg.elts[1], ast.Constant)
        and arg.elts[1].value is Ellipsis
    )


def _infer(value: object) -> _Type:
    if isinstance(value, bool):
        return _Type(ParamType.BOOL)
    if isinstance(value, int):
        return _Type(ParamType.INT)
    if isinstance(value, float):
        return _Type(ParamType.FLOAT)
    return _Type(ParamType.STRING)


def _default(node: ast.expr, source: str) -> tuple[ParamValue | None, str | None]:
    """A literal default as a value; anything else as source text, never evaluated."""
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None, ast.get_source_segment(source, node) or ast.unparse(node)
    if value is None or isinstance(value, str | int | float):
        return value, None
    if isinstance(value, list | tuple) and all(isinstance(v, str | int | float) for v in value):
        return tuple(value), None
    return None, ast.get_source_segment(source, node) or ast.unparse(node)


def _find_main(tree: ast.Module) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    found = None
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and stmt.name == "main":
            found = stmt  # the last definition wins, as at import time
    return found


def _pep723(source: str) -> tuple[tuple[str, ...], str | None, list[Problem]]:
    problems: list[Problem] = []
    if "# ///" not in source:  # most scripts: skip the multi-line pattern's scan
        return (), None, problems
    for m in _PEP723.finditer(source):
        if m.group("type") != "script":
            continue
        line = source.count("\n", 0, m.start()) + 1
        content = "".join(
            ln[2:] if ln.startswith("# ") else ln[1:]
            for ln in m.group("content").splitlines(keepends=True)
        )
        try:
            meta = tomllib.loads(content)
        except tomllib.TOMLDecodeError as e:
            problems.append(Problem(line, f"bad PEP 723 `# /// script` block: {e}"))
            return (), None, problems
        deps = meta.get("dependencies", [])
        py = meta.get("requires-python")
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            problems.append(Problem(line, "PEP 723 `dependencies` must be a list of strings"))
            deps = []
        if py is not None and not isinstance(py, str):
            problems.append(Problem(line, "PEP 723 `requires-python` must be a string"))
            py = None
        return tuple(deps), py, problems
    return (), None, problems


def _params(
    main: ast.FunctionDef, helps: dict[str, str], problems: list[Problem], source: str
) -> tuple[ParamSpec, ...]:
    args = main.args
    if args.vararg is not None:
        problems.append(Problem(args.vararg.lineno, "main() may not take *args"))
    if args.kwarg is not None:
        problems.append(Problem(args.kwarg.lineno, "main() may not take **kwargs"))
    for a in args.posonlyargs:
        problems.append(Problem(a.lineno, f"parameter '{a.arg}' is positional-only"))
    positional = args.args
    pos_defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    pos_defaults += list(args.defaults)
    entries: list[tuple[ast.arg, ast.expr | None, int | None]] = [
        (a, d, i) for i, (a, d) in enumerate(zip(positional, pos_defaults, strict=True))
    ]
    entries += [(a, d, None) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    out = []
    for arg, default_node, position in entries:
        default: ParamValue | None = None
        default_text = None
        if default_node is not None:
            default, default_text = _default(default_node, source)
        try:
            if arg.annotation is not None:
                kind, _optional = _annotation(arg.annotation)
            else:
                kind = _infer(default)
        except _UnknownType as e:
            problems.append(Problem(arg.lineno, f"unknown type for parameter '{arg.arg}': {e}"))
            continue
        param_type = kind.type
        # `force: bool = False` reads as a flag in chat (`--force`), like argparse store_true.
        if param_type is ParamType.BOOL and not kind.multiple and default is False:
            param_type = ParamType.SWITCH
        out.append(
            ParamSpec(
                name=arg.arg,
                type=param_type,
                multiple=kind.multiple,
                required=default_node is None,
                default=default,
                default_text=default_text,
                choices=kind.choices,
                help=helps.get(arg.arg, ""),
                position=position,
                line=arg.lineno,
            )
        )
    return tuple(out)


# The one parameter a `main()` that hands over to argparse takes: the argv list, or the
# parsed namespace (`main(parser.parse_args())`). Such a main() is not the interface.
_ARGV_PARAMS = frozenset(
    {
        "argv",
        "args",
        "arguments",
        "arglist",
        "args_list",
        "argv_list",
        "cli_args",
        "raw_args",
        "opts",
        "options",
        "ns",
        "namespace",
        "parsed_args",
        "cmdline",
        "command_line",
    }
)


def _hands_over(main: ast.FunctionDef | ast.AsyncFunctionDef | None) -> bool:
    """Whether main() is absent or only passes argv along: its signature is no interface."""
    if main is None:
        return True
    a = main.args
    names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    return len(names) <= 1 and all(n in _ARGV_PARAMS for n in names) and a.kwarg is None


def _read_cli(
    tree: ast.Module,
    source: str,
    docstring: str,
    main: ast.FunctionDef | ast.AsyncFunctionDef | None,
) -> CliRead | None:
    """The script's own command-line parser (argparse, click, typer), if it is the interface."""
    names = Names(tree)
    if "click" in names.modules or "typer" in names.modules:
        from opsroom.catalog.parsers.click_reader import read_click

        found = read_click(tree, source, names, docstring)
        if found is not None:
            return found
    if "argparse" in names.modules and _hands_over(main):
        from opsroom.catalog.parsers.argparse_reader import read_argparse

        return read_argparse(tree, source, names, docstring)
    return None


def _cli_script(
    cli: CliRead,
    module_doc: Docstring,
    summary_line: int,
    problems: list[Problem],
    pep723: tuple[tuple[str, ...], str | None],
) -> ParsedScript:
    """What a script that parses its own command line declares (SPEC §3.10)."""
    problems += cli.problems
    command = cli.command
    summary, description = module_doc.summary, module_doc.description
    if not summary and command is not None:
        summary, description = command.summary, command.description
    if not summary:
        problems.append(
            Problem(
                summary_line,
                "missing module docstring (its first line is the command summary)",
                Severity.WARNING,
            )
        )
    return ParsedScript(
        summary=summary,
        description=description,
        params=command.params if command is not None else (),
        examples=tuple(module_doc.examples),
        requires=pep723[0],
        requires_python=pep723[1],
        summary_line=summary_line,
        read_as=cli.style,
        cli_words=(),
        exclusive=command.exclusive if command is not None else (),
        subcommands=cli.subcommands,
        problems=tuple(problems),
    )


def _parse(source: str, *, whole: bool) -> ast.Module:
    """The syntax tree of what declares the script's interface (catalog.parsers.pyinterface),
    or of the whole script when asked or when that does not parse on its own."""
    with warnings.catch_warnings():
        # `"\d"` in a regex is only a warning; Python runs the script all the same
        warnings.simplefilter("ignore")
        reduced = None if whole else interface_source(source)
        if reduced is not None:
            try:
                return ast.parse(reduced)
            except (SyntaxError, ValueError):
                pass  # parsed whole below, so that an error is reported where it is
        return ast.parse(source)


def parse_python(source: str, *, whole: bool = False) -> ParsedScript:
    """Read the docstring, PEP 723 block, and `main()` signature or own argv parser.

    Only the definitions that can declare the interface are parsed unless `whole` is set
    (then a syntax error anywhere in the file is reported).
    """
    try:
        tree = _parse(source, whole=whole)
    except SyntaxError as e:
        return ParsedScript(problems=(Problem(e.lineno or 1, f"syntax error: {e.msg}"),))
    except (ValueError, RecursionError, MemoryError) as e:  # NUL bytes, absurd nesting
        return ParsedScript(problems=(Problem(1, f"cannot parse: {e}"),))
    problems: list[Problem] = []
    requires, requires_python, pep_problems = _pep723(source)
    problems += pep_problems

    docstring = ast.get_docstring(tree, clean=True) or ""
    module_doc = parse_docstring(docstring)
    summary_line = 1
    if tree.body and isinstance(tree.body[0], ast.Expr):
        summary_line = tree.body[0].lineno

    main = _find_main(tree)
    try:
        cli = _read_cli(tree, source, docstring, main)
    except RecursionError:  # a tree too deep to walk: read as if it had no parser
        cli = None
    if cli is not None and cli.reached:
        return _cli_script(cli, module_doc, summary_line, problems, (requires, requires_python))
    if cli is not None and (main is None or main.decorator_list):
        problems.append(
            Problem(
                1,
                f"the {cli.style} parser is never run by the script's own top-level code "
                '(call it under `if __name__ == "__main__":`): running it would do nothing',
            )
        )
    elif cli is not None:
        problems.append(
            Problem(
                main.lineno if main is not None else 1,
                f"the script never calls main() itself, so its {cli.style} arguments are not "
                "offered (opsroom calls main() with none)",
                Severity.WARNING,
            )
        )

    if not module_doc.summary:
        problems.append(
            Problem(
                summary_line,
                "missing module docstring (its first line is the command summary)",
                Severity.WARNING,
            )
        )

    params: tuple[ParamSpec, ...] = ()
    examples = list(module_doc.examples)
    if main is None:
        if cli is None:
            problems.append(Problem(1, "no `def main(...)` function: nothing to run"))
    elif isinstance(main, ast.AsyncFunctionDef):
        problems.append(Problem(main.lineno, "main() must be a plain `def`, not `async def`"))
    else:
        main_doc = parse_docstring(ast.get_docstring(main, clean=True) or "")
        helps = {**module_doc.args, **main_doc.args}
        examples += main_doc.examples
        params = _params(main, helps, problems, source)

    return ParsedScript(
        summary=module_doc.summary,
        description=module_doc.description,
        params=params,
        examples=tuple(examples),
        requires=requires,
        requires_python=requires_python,
        summary_line=summary_line,
        read_as="main" if main is not None else "",
        problems=tuple(problems),
    )
