"""What a PowerShell module says it exports: its manifest (.psd1) and its .psm1 (SPEC §3.10).

Read statically like scripts. Only literal values count: `FunctionsToExport = @('Get-A')`,
`Export-ModuleMember -Function Get-A, 'Set-B'`; one the module computes
(`Export-ModuleMember -Function $Public.BaseName`) says nothing here, and the next rule of
SPEC §3.10 decides (the functions of a dot-sourced `Public/` folder, else every function).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opsroom.catalog.parsers.base import Problem
from opsroom.catalog.parsers.powershell import (
    _COMPUTED,
    PsFile,
    _literal,
    _text,
    _unwrap,
    read_file,
)
from opsroom.model.catalog import Severity
from opsroom.model.commands import ModuleRequirement

if TYPE_CHECKING:
    from tree_sitter import Node

_Data = str | int | float | bool | list["_Data"] | dict[str, "_Data"] | None


class _Unknown:
    """A value the manifest computes."""


_UNKNOWN = _Unknown()


def _value(node: Node) -> _Data | _Unknown:
    node = _unwrap(node)
    if node.type == "hash_literal_expression":
        return _hash(node)
    if node.type == "array_expression":  # @( ... ): items split by `,`, `;` or lines
        items: list[_Data] = []
        for child in node.named_children:
            for statement in child.named_children if child.type == "statement_list" else [child]:
                got = _value(statement)
                if isinstance(got, _Unknown):
                    return _UNKNOWN
                items.extend(got if isinstance(got, list) else [got])
        return items
    if node.type == "array_literal_expression":
        parts = [_value(part) for part in node.named_children]
        if any(isinstance(p, _Unknown) for p in parts):
            return _UNKNOWN
        return [p for p in parts if not isinstance(p, _Unknown)]
    value = _literal(node)
    if value is _COMPUTED:
        return _UNKNOWN
    return list(value) if isinstance(value, tuple) else value  # type: ignore[return-value]


def _hash(node: Node) -> dict[str, _Data]:
    out: dict[str, _Data] = {}
    body = next((c for c in node.named_children if c.type == "hash_literal_body"), None)
    for entry in body.named_children if body is not None else []:
        if entry.type != "hash_entry" or entry.named_child_count < 2:
            continue
        key = _text(entry.named_children[0]).strip().strip("'\"").lower()
        value = _value(entry.named_children[-1])
        if not isinstance(value, _Unknown):
            out[key] = value
    return out


def _descendants(node: Node, *, into_functions: bool = True) -> Iterator[Node]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if into_functions or current.type != "function_statement":
            stack.extend(reversed(current.children))


@dataclass(frozen=True, slots=True)
class Manifest:
    """The keys of a module manifest that decide its commands."""

    root_module: str | None = None
    # FunctionsToExport as written (names or wildcards); None when absent, `'*'` or computed.
    functions: tuple[str, ...] | None = None
    functions_line: int = 1
    required_modules: tuple[ModuleRequirement, ...] = ()
    powershell_version: str | None = None  # PowerShellVersion: Import-Module checks it too
    problems: tuple[Problem, ...] = ()


def _requirement(item: _Data) -> ModuleRequirement | None:
    if isinstance(item, str):
        return ModuleRequirement(item) if item else None
    if isinstance(item, dict) and isinstance(name := item.get("modulename"), str):

        def version(key: str) -> str | None:
            value = item.get(key)
            return str(value) if isinstance(value, str | int | float) else None

        return ModuleRequirement(
            name, version("moduleversion"), version("requiredversion"), version("maximumversion")
        )
    return None


def read_manifest(source: str) -> Manifest:
    """RootModule, FunctionsToExport and RequiredModules of a `.psd1`, read statically."""
    file = read_file(source)
    with file.reading():
        return _manifest(file)


def _manifest(file: PsFile) -> Manifest:
    table = next((n for n in _descendants(file.root) if n.type == "hash_literal_expression"), None)
    if table is None:
        return Manifest(problems=(Problem(1, "not a module manifest (no @{ ... } table)"),))
    data = _hash(table)
    root = data.get("rootmodule", data.get("moduletoprocess"))
    functions: tuple[str, ...] | None = None
    line = 1
    raw = data.get("functionstoexport")
    if isinstance(raw, str):
        raw = [raw]
    if isinstance(raw, list) and all(isinstance(v, str) for v in raw):
        names = tuple(str(v) for v in raw)
        functions = None if names == ("*",) else names
        entry = next(
            (
                n
                for n in _descendants(table)
                if n.type == "hash_entry" and _text(n).lower().startswith("functionstoexport")
            ),
            None,
        )
        line = entry.start_point.row + 1 if entry is not None else 1
    required = data.get("requiredmodules")
    items = required if isinstance(required, list) else [required] if required else []
    modules = tuple(m for m in (_requirement(i) for i in items) if m is not None)
    problems = tuple(p for p in file.problems if p.severity is Severity.ERROR)
    version = data.get("powershellversion")
    return Manifest(
        root if isinstance(root, str) else None,
        functions,
        line,
        modules,
        str(version) if isinstance(version, str | int | float) and version != "" else None,
        problems,
    )


@dataclass(frozen=True, slots=True)
class ModuleScript:
    """What a `.psm1` says about the module: its own functions and what it exports."""

    file: PsFile
    exports: tuple[str, ...] | None  # Export-ModuleMember -Function, literal; None if absent
    dot_sources: bool  # `. $file` anywhere: the module is built from its .ps1 files
    mentions_public: bool  # a `Public` folder appears in it (the Public/Private layout)


def _export_names(command: Node) -> tuple[str, ...] | None:
    """The literal -Function names of one Export-ModuleMember call; None when computed."""
    elements = next((c for c in command.children if c.type == "command_elements"), None)
    if elements is None:
        return ()
    names: list[str] = []
    current: str | None = "function"  # the first positional argument is -Function
    for node in elements.named_children:
        if node.type == "command_argument_sep":
            continue
        if node.type == "command_parameter":
            current = _text(node).lstrip("-").rstrip(":").lower()
            continue
        if current is None or not "function".startswith(current):
            continue
        if node.type == "generic_token":
            names.append(_text(node))
            continue
        inner = _unwrap(node)
        if inner.type == "expression_with_unary_operator" and _text(inner).startswith(","):
            inner = inner.children[-1]  # `A, 'B'`: the grammar hangs `, 'B'` off the comma
        value = _literal(inner)
        if isinstance(value, str):
            names.append(value)
        elif isinstance(value, tuple) and all(isinstance(v, str) for v in value):
            names.extend(str(v) for v in value)
        else:
            return None
    return tuple(names)


def read_module_script(source: str) -> ModuleScript:
    """Functions and exports of a `.psm1`, read statically."""
    file = read_file(source)
    with file.reading():
        return _module_script(file, source)


def _module_script(file: PsFile, source: str) -> ModuleScript:
    exports: list[str] = []
    computed = found = False
    dot_sources = False
    # Function bodies are skipped: a module exports and dot-sources at its top level.
    for node in _descendants(file.root, into_functions=False):
        if node.type == "command_invokation_operator" and _text(node) == ".":
            dot_sources = True
        elif node.type == "command":
            name = next((c for c in node.children if c.type == "command_name"), None)
            if name is not None and _text(name).lower() == "export-modulemember":
                found = True
                names = _export_names(node)
                if names is None:
                    computed = True
                else:
                    exports.extend(names)
    mentions = "public" in source.lower()
    return ModuleScript(
        file,
        tuple(exports) if found and not computed and exports else None,
        dot_sources,
        mentions,
    )
