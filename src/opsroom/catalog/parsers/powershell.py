"""Metadata of a PowerShell file: comment-based help, `param()`, `#Requires` (SPEC §3.3, §3.10).

Read with the tree-sitter PowerShell grammar; the script is never run. Decisions worth knowing:

- Help is the first comment block (`<# #>` or consecutive `#` lines) holding a help keyword,
  preferring one before `param()`; a block after `param()` or at the end of the file is used
  when there is none before, as PowerShell allows.
- An `.EXAMPLE` becomes one string: its code (the lines up to the first blank line, without a
  `PS C:\\>` prompt), then, after a blank line, the explanation re-flowed into paragraphs.
- Parameter help: `.PARAMETER`, else a `#` comment right above the parameter, else HelpMessage.
- Defaults that are literals become values; anything else (`$env:X`, `(Get-Date)`, `"$x"`) is
  kept as `default_text` — the script computes it itself.
- `[ValidatePattern()]` is case-insensitive in PowerShell, so `(?i)` is prefixed unless
  `Options` is given without `IgnoreCase`.
- Types are the SPEC's list (with .NET full names, `[single]`, `[byte]`...). SPEC §3.10 for
  the rest: `[pscredential]`/`[securestring]` are credentials (filled from a secret, never
  chat parameters); `[hashtable]`/`[scriptblock]` are left out, or an error when mandatory;
  any other type (`[DbaInstanceParameter[]]`, `[object]`, `[guid]`) is text PowerShell
  converts, with a note in its help. Common parameters (`-Verbose`...) are never the command's.
- A file without a top-level `param()` that defines one function, or one named like the file,
  is that function (`entry`); several functions, none named like it, are a library. A file
  whose own top-level code calls the function stays a script: calling it again would run it
  twice.
- `#Requires` lines count wherever they stand, but not inside a block comment or a string.
- `[ValidateRange('Positive')]` is (1, None) — exact for integers, stricter than PowerShell
  for fractions; a bound that is not a literal (`[int]::MaxValue`) is no bound.
- A syntax error inside `param()` is an error (e.g. `$X = 'a', 'b'`: PowerShell needs `@()`);
  syntax errors in the body are not (the grammar lacks PowerShell 7 operators such as `??`).
"""

from __future__ import annotations

import re
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from functools import cache
from typing import TYPE_CHECKING, Final

from opsroom.catalog.parsers.base import ParsedScript, Problem
from opsroom.model.catalog import Severity
from opsroom.model.commands import (
    CredentialKind,
    CredentialParam,
    ModuleRequirement,
    ParamSpec,
    ParamType,
    ParamValue,
    PowerShellRequires,
    Scalar,
    parse_iso_datetime,
)
from opsroom.model.patterns import PatternError, check_pattern

if TYPE_CHECKING:
    from tree_sitter import Language, Node, Parser


@cache
def _language() -> Language:
    # Imported here: loading the grammar costs start-up time for CLI commands that never need it.
    import tree_sitter_powershell
    from tree_sitter import Language

    return Language(tree_sitter_powershell.language())


_local = threading.local()  # a tree-sitter Parser must not be shared between threads


def _parser() -> Parser:
    parser: Parser | None = getattr(_local, "parser", None)
    if parser is None:
        from tree_sitter import Parser

        parser = _local.parser = Parser(_language())
    return parser


def _words(text: str) -> list[str]:
    return text.split()


# The grammar cannot parse `using` statements before a param block: blank them, same length.
_USING = re.compile(r"(?im)^[ \t]*using[ \t]+(?:namespace|module|assembly)\b[^\r\n]*")
_HELP_KEYWORDS: Final = frozenset(
    _words(
        "SYNOPSIS DESCRIPTION PARAMETER EXAMPLE INPUTS OUTPUTS NOTES LINK COMPONENT ROLE"
        " FUNCTIONALITY FORWARDHELPTARGETNAME FORWARDHELPCATEGORY REMOTEHELPRUNSPACE EXTERNALHELP"
    )
)
_KEYWORD_LINE = re.compile(r"^\s*\.([A-Za-z]+)(?:[ \t]+(.*?))?\s*$")
_PROMPT = re.compile(r"^PS(?: [^>]*)?>\s*")

_TYPES: Final = {
    **dict.fromkeys(_words("string char"), ParamType.STRING),
    **dict.fromkeys(
        _words(
            "int int16 int32 int64 long short byte sbyte uint uint16 uint32 uint64 ulong ushort"
            " bigint numerics.biginteger"
        ),
        ParamType.INT,
    ),
    **dict.fromkeys(_words("double single float decimal"), ParamType.FLOAT),
    **dict.fromkeys(_words("bool boolean"), ParamType.BOOL),
    **dict.fromkeys(_words("switch switchparameter"), ParamType.SWITCH),
    "datetime": ParamType.DATETIME,
}
# Filled from a secret a sidecar maps (SPEC §3.10), never typed in chat.
_CREDENTIAL_TYPES: Final = {
    "pscredential": CredentialKind.PSCREDENTIAL,
    "management.automation.pscredential": CredentialKind.PSCREDENTIAL,
    "securestring": CredentialKind.SECURESTRING,
    "security.securestring": CredentialKind.SECURESTRING,
}
# Values chat cannot write at all: left out when optional, an error when mandatory.
_CODE_TYPES: Final = frozenset(
    _words(
        "hashtable collections.hashtable scriptblock management.automation.scriptblock"
        " collections.idictionary collections.specialized.ordereddictionary"
    )
)
# A generic collection (`List[string]`) binds from a list of texts, like `[string[]]`.
_COLLECTION = re.compile(r"(?i)(?:list|collection|enumerable|set)`?\d*\[")
# PowerShell's common parameters: never a command's own, whatever a script declares.
COMMON_PARAMETERS: Final = frozenset(
    _words(
        "verbose debug erroraction warningaction informationaction progressaction"
        " errorvariable warningvariable informationvariable outvariable outbuffer"
        " pipelinevariable whatif confirm usetransaction"
    )
)
_RANGE_KINDS: Final[dict[str, tuple[int | None, int | None]]] = {
    "positive": (1, None),
    "nonnegative": (0, None),
    "negative": (None, -1),
    "nonpositive": (None, 0),
}
# Single-child nodes whose child must not replace them when looking for a literal.
_STOP: Final = frozenset(
    _words(
        "expandable_string_literal expandable_here_string_literal array_expression"
        " expression_with_unary_operator hash_literal_expression sub_expression"
        " parenthesized_expression script_block_expression"
    )
)
_ESCAPES: Final = dict(zip("0abfnrtve", "\0\a\b\f\n\r\t\v\x1b", strict=True))
_BACKTICK = re.compile(r"`(.)", re.DOTALL)


class _NotLiteral:
    """Marks a value the script computes at run time."""


_COMPUTED: Final = _NotLiteral()
_Value = Scalar | tuple[Scalar, ...] | None


# The bytes of the file being read. Its tree was parsed from a copy in which non-ASCII letters
# were swapped for ASCII ones (see `_for_grammar`), so names are read back from here.
_SOURCE: ContextVar[bytes | None] = ContextVar("powershell_source", default=None)


@contextmanager
def _reading(data: bytes) -> Iterator[None]:
    token = _SOURCE.set(data)
    try:
        yield
    finally:
        _SOURCE.reset(token)


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _for_grammar(text: str) -> bytes:
    """`text` as the grammar can parse it: it takes no non-ASCII letter in a name
    (`$Identité`), so each becomes as many ASCII letters as its UTF-8 bytes — every offset
    stays the same. Other characters (`–`, `“`) are kept: PowerShell reads them as `-`, `"`."""
    return _NON_ASCII.sub(
        lambda m: "a" * len(m.group().encode()) if m.group().isalnum() else m.group(), text
    ).encode()


def _text(node: Node) -> str:
    source = _SOURCE.get()
    raw = source[node.start_byte : node.end_byte] if source is not None else node.text or b""
    return raw.decode("utf-8", "replace")


def _line(node: Node) -> int:
    return node.start_point.row + 1


def _unwrap(node: Node) -> Node:
    # child(0), not children[0]: an expression is a dozen single-child levels deep, and
    # `children` builds a list at each of them.
    while node.child_count == 1 and node.type not in _STOP:
        child = node.child(0)
        if child is None:
            break
        node = child
    return node


def _unescape(body: str) -> str | _NotLiteral:
    if "$" in _BACKTICK.sub("", body):
        return _COMPUTED  # interpolation, e.g. "$env:USERNAME-$x"
    return _BACKTICK.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def _here_body(text: str) -> str:
    # `@'` + newline ... newline + `'@`: the value is what lies between the two newlines.
    start, end = text.find("\n") + 1, text.rfind("\n")
    return text[start:end].removesuffix("\r") if end >= start else ""


def _literal(node: Node) -> _Value | _NotLiteral:
    """The value of a literal expression, or _COMPUTED for anything evaluated at run time."""
    node = _unwrap(node)
    kind, text = node.type, _text(node)
    if kind == "verbatim_string_characters":
        return text[1:-1].replace("''", "'")
    if kind == "verbatim_here_string_characters":
        return _here_body(text)
    if kind in ("expandable_string_literal", "expandable_here_string_literal"):
        if node.named_child_count:
            return _COMPUTED
        body = _here_body(text) if kind.endswith("here_string_literal") else text[1:-1]
        return _unescape(body.replace('""', '"'))
    if kind == "decimal_integer_literal":
        return int(text) if text.isdigit() else _COMPUTED  # suffixes such as 1kb: keep text
    if kind == "hexadecimal_integer_literal":
        try:
            return int(text, 16)
        except ValueError:
            return _COMPUTED
    if kind == "real_literal":
        try:
            return float(text.rstrip("dD"))
        except ValueError:
            return _COMPUTED
    if kind == "variable":
        return {"$true": True, "$false": False, "$null": None}.get(text.lower(), _COMPUTED)
    if kind == "expression_with_unary_operator" and node.child_count == 2:
        sign, operand = node.children[0].type, _literal(node.children[1])
        if (
            sign in ("-", "+")
            and isinstance(operand, int | float)
            and not isinstance(operand, bool)
        ):
            return -operand if sign == "-" else operand
        return _COMPUTED
    if kind == "array_expression":  # @( ... ): statements separated by `,`, `;` or newlines
        items: list[Scalar] = []
        for child in node.named_children:
            for statement in child.named_children if child.type == "statement_list" else [child]:
                if not _collect(statement, items):
                    return _COMPUTED
        return tuple(items)
    if kind == "array_literal_expression":
        items = []
        return tuple(items) if _collect(node, items) else _COMPUTED
    return _COMPUTED


def _collect(node: Node, into: list[Scalar]) -> bool:
    node = _unwrap(node)
    parts = node.named_children if node.type == "array_literal_expression" else [node]
    for part in parts:
        value = _literal(part)
        if isinstance(value, _NotLiteral) or value is None:
            return False
        into.extend(value if isinstance(value, tuple) else (value,))
    return True


# ---------------------------------------------------------------------------------- help


@dataclass(slots=True)
class _Section:
    keyword: str
    argument: str
    line: int
    body: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Help:
    line: int
    sections: list[_Section]


def _comment_lines(node: Node) -> list[tuple[int, str]]:
    text, first = _text(node), _line(node)
    if text.startswith("<#"):
        lines = text[2:].removesuffix("#>").splitlines()
        return [(first + i, line) for i, line in enumerate(lines)]
    return [(first, text.lstrip("#"))]  # `## .SYNOPSIS` is help too


def _comment_groups(nodes: list[Node]) -> Iterator[list[Node]]:
    """Consecutive `#` line comments form one group; a `<# #>` block is a group of its own."""
    group: list[Node] = []
    for node in nodes:
        block = _text(node).startswith("<#")
        if group and (block or node.start_point.row != group[-1].end_point.row + 1):
            yield group
            group = []
        group.append(node)
        if block:
            yield group
            group = []
    if group:
        yield group


def _read_help(group: list[Node]) -> _Help | None:
    if _text(group[0])[:14].lower() == "<#psscriptinfo":
        return None  # PowerShellGet's metadata block (.VERSION, .GUID...), not help
    sections: list[_Section] = []
    for node in group:
        for number, line in _comment_lines(node):
            match = _KEYWORD_LINE.match(line)
            if match and match.group(1).upper() in _HELP_KEYWORDS:
                sections.append(_Section(match.group(1).upper(), match.group(2) or "", number))
            elif sections:
                sections[-1].body.append(line)
    if not sections:
        return None
    # A `#` group may begin with `#Requires` or directive lines: point at the help itself.
    block = _text(group[0]).startswith("<#")
    return _Help(_line(group[0]) if block else sections[0].line, sections)


def _block(lines: list[str]) -> str:
    return textwrap.dedent("\n".join(line.rstrip() for line in lines)).strip("\n")


def _reflow(text: str) -> str:
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def _example(lines: list[str]) -> str:
    text = _block(lines)
    head, _, rest = text.partition("\n\n")
    code = head.splitlines()
    if not rest and len(code) > 1:
        # No blank line: the code is the first line and its continuation lines.
        end = 1
        while end < len(code) and code[end - 1].rstrip().endswith(("`", "|")):
            end += 1
        code, rest = code[:end], "\n".join(code[end:])
    if code:
        code[0] = _PROMPT.sub("", code[0])
    explanation = _reflow(rest)
    return "\n".join(code) + (f"\n\n{explanation}" if explanation else "")


# ------------------------------------------------------------------------------ param()


@dataclass(slots=True)
class _Param:
    """A parameter while it is being read; becomes a ParamSpec."""

    name: str
    line: int
    type: ParamType = ParamType.STRING
    multiple: bool = False
    type_text: str | None = None  # a type chat cannot carry natively, as written
    credential: CredentialKind | None = None
    mandatory: list[tuple[str | None, bool]] = field(default_factory=list)  # (set, mandatory)
    position: int | None = None
    help_message: str = ""
    comment_help: str = ""
    choices: tuple[str, ...] = ()
    range: tuple[float | None, float | None] | None = None
    pattern: str | None = None
    pattern_line: int = 0  # where [ValidatePattern()] is, for a pattern opsroom refuses
    length: tuple[int | None, int | None] | None = None
    not_empty: bool = False
    aliases: tuple[str, ...] = ()
    default: ParamValue | None = None
    default_text: str | None = None


@dataclass(slots=True)
class _Attribute:
    name: str  # lower-case, without namespace and `Attribute` suffix
    positional: list[_Value | _NotLiteral]
    named: dict[str, _Value | _NotLiteral]


def _attribute(node: Node) -> _Attribute:
    name, positional, named = "", [], {}
    for child in node.named_children:
        if child.type == "attribute_name":
            name = _text(child).rsplit(".", 1)[-1].lower().removesuffix("attribute")
        elif child.type == "attribute_arguments":
            for argument in child.named_children:
                parts = argument.named_children
                if parts and parts[0].type == "simple_name":
                    value = _literal(parts[1]) if len(parts) > 1 else True
                    named[_text(parts[0]).lower()] = value
                elif parts:
                    positional.append(_literal(parts[0]))
    return _Attribute(name, positional, named)


def _number(value: _Value | _NotLiteral) -> int | float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def _apply_type(param: _Param, type_node: Node) -> None:
    spec = "".join(_text(type_node).split())[1:-1]  # `[ string[] ]` -> `string[]`
    multiple = spec.endswith("[]")
    base = spec.removesuffix("[]").lower()
    for prefix in ("system.management.automation.", "system."):
        base = base.removeprefix(prefix)
    kind = _TYPES.get(base)
    param.credential = None if multiple else _CREDENTIAL_TYPES.get(base)
    if kind is None or (multiple and kind is ParamType.SWITCH):
        # Anything else is given as text (a list of texts for a collection) and left to
        # PowerShell's binder to convert; what chat cannot write at all is sorted out later.
        param.type_text = f"[{spec}]"
        param.type = ParamType.STRING
        param.multiple = multiple or bool(_COLLECTION.search(spec))
    else:
        param.type, param.multiple, param.type_text = kind, multiple, None


def _apply_attribute(param: _Param, attribute: _Attribute) -> None:
    args, named = attribute.positional, attribute.named
    if attribute.name == "parameter":
        mandatory = named.get("mandatory", False)
        set_name = named.get("parametersetname")
        param.mandatory.append(
            (
                set_name if isinstance(set_name, str) else None,
                bool(mandatory) and not isinstance(mandatory, _NotLiteral),
            )
        )
        position = named.get("position")
        if isinstance(position, int) and not isinstance(position, bool):
            param.position = position if param.position is None else param.position
        message = named.get("helpmessage")
        if isinstance(message, str) and not param.help_message:
            param.help_message = message
    elif attribute.name == "validateset":
        param.choices = tuple(str(v) for v in args if isinstance(v, str | int | float))
    elif attribute.name == "validaterange":
        if len(args) == 1 and isinstance(args[0], str):
            param.range = _RANGE_KINDS.get(args[0].lower())
        elif len(args) == 2:
            # A bound such as [int]::MaxValue is no bound worth enforcing in chat.
            param.range = (_number(args[0]), _number(args[1]))
    elif attribute.name == "validatepattern" and args and isinstance(args[0], str):
        options = named.get("options")
        sensitive = options is not None and "ignorecase" not in str(options).lower()
        param.pattern = args[0] if sensitive else f"(?i){args[0]}"
    elif attribute.name == "validatelength" and len(args) == 2:
        low, high = _number(args[0]), _number(args[1])
        param.length = (
            int(low) if low is not None else None,
            int(high) if high is not None else None,
        )
    elif attribute.name in (
        "validatenotnullorempty",
        "validatenotnull",
        "validatenotnullorwhitespace",
    ):
        param.not_empty = True
    elif attribute.name == "alias":
        param.aliases = tuple(v for v in args if isinstance(v, str))


def _coerce(value: Scalar, kind: ParamType) -> Scalar | None:
    """`value` as the parameter type would hold it, or None when PowerShell's conversion is
    not one opsroom should guess."""
    if kind is ParamType.STRING:
        return value if isinstance(value, str) else str(value)
    if kind in (ParamType.BOOL, ParamType.SWITCH):
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None
    if kind is ParamType.INT:
        if isinstance(value, float):
            return int(value) if value.is_integer() else None
        try:
            return int(value)
        except ValueError:
            return None
    if kind is ParamType.FLOAT:
        try:
            return float(value)
        except ValueError:
            return None
    if isinstance(value, str):  # DATETIME travels as ISO text
        try:
            parse_iso_datetime(value)
        except ValueError:
            return None
        return value
    return None


def _apply_default(param: _Param, node: Node) -> None:
    expression = node.named_children[0] if node.named_child_count else node
    value = _literal(expression)
    if value is None:  # `= $null` is no default at all
        return
    if not isinstance(value, _NotLiteral):
        items = value if isinstance(value, tuple) else (value,)
        coerced = [_coerce(item, param.type) for item in items]
        if all(c is not None for c in coerced) and (param.multiple or len(coerced) == 1):
            kept = tuple(c for c in coerced if c is not None)
            param.default = kept if param.multiple else kept[0]
            return
    param.default_text = _text(expression).strip()


@dataclass(slots=True)
class _Declared:
    """One script_parameter node with what surrounds it in the param block."""

    node: Node
    comments: list[Node]  # `#` comments right above it: its help, as in PowerShell


def _read_param(declared: _Declared, problems: list[Problem]) -> _Param | None:
    node = declared.node
    variable = next((c for c in node.named_children if c.type == "variable"), None)
    if variable is None or node.has_error:
        problems.append(Problem(_line(node), "cannot parse param() block"))
        return None
    name = _text(variable)[1:].strip("{}")
    param = _Param(name=name, line=_line(variable))
    if declared.comments:
        lines = [line for c in declared.comments for _, line in _comment_lines(c)]
        param.comment_help = _reflow(_block(lines))
    for child in node.named_children:
        if child.type == "attribute_list":
            for attribute in child.named_children:
                if attribute.type != "attribute":
                    continue
                type_node = next(
                    (c for c in attribute.named_children if c.type == "type_literal"), None
                )
                if type_node is not None:
                    _apply_type(param, type_node)
                else:
                    pattern = param.pattern
                    _apply_attribute(param, _attribute(attribute))
                    if param.pattern != pattern:
                        param.pattern_line = _line(attribute)
        elif child.type == "script_parameter_default":
            _apply_default(param, child)
    return param


def _declared(block: Node, problems: list[Problem]) -> list[_Declared]:
    """The script_parameter nodes of a param block, with the comments above them."""
    found: list[_Declared] = []
    pending: list[Node] = []
    previous_end = block.start_point.row
    children = [
        grandchild
        for child in block.children
        for grandchild in (child.children if child.type == "parameter_list" else [child])
    ]
    for child in children:
        if child.type == "comment":
            pending.append(child)
        elif child.type == "script_parameter":
            above: list[Node] = []
            row = child.start_point.row
            for comment in reversed(pending):
                if comment.end_point.row != row - 1 or comment.start_point.row <= previous_end:
                    break
                above.insert(0, comment)
                row = comment.start_point.row
            found.append(_Declared(child, above))
            pending, previous_end = [], child.end_point.row
        elif child.type == "ERROR" or child.is_missing or child.has_error:
            # E.g. `$X = 'a', 'b'`: PowerShell also rejects a list default without `@()`.
            problems.append(Problem(_line(child), "cannot parse param() block"))
    return found


def _required(params: list[_Param]) -> dict[str, bool]:
    """Whether each parameter must be given: mandatory in every parameter set of the command.

    A parameter whose `[Parameter()]` names a set belongs to that set only, one without a set
    name to all of them; so with `DefaultParameterSetName` and several sets, a parameter
    mandatory in one set alone is optional for the command as a whole.
    """
    sets = {name for p in params for name, _ in p.mandatory if name is not None}
    out: dict[str, bool] = {}
    for p in params:
        if not p.mandatory:
            out[p.name] = False
        elif not sets:
            out[p.name] = all(m for _, m in p.mandatory)
        else:
            every = [m for name, m in p.mandatory if name is None]
            out[p.name] = all(
                any(m for name, m in p.mandatory if name == s)
                if any(name == s for name, _ in p.mandatory)
                else bool(every) and all(every)
                for s in sets
            )
    return out


def _spec(param: _Param, help_text: str, required: bool) -> ParamSpec:
    length = param.length
    if length is None and param.not_empty and param.type is ParamType.STRING:
        length = (1, None)
    text = help_text or param.comment_help or param.help_message
    if param.type_text is not None:
        items = "each text" if param.multiple else "the text"
        note = f"(PowerShell converts {items} to {param.type_text}.)"
        text = f"{text} {note}" if text else note
    return ParamSpec(
        name=param.name,
        type=param.type,
        multiple=param.multiple,
        required=required,
        default=param.default,
        default_text=param.default_text,
        choices=param.choices,
        range=param.range,
        pattern=param.pattern,
        length=length,
        help=text,
        aliases=param.aliases,
        position=param.position,
        line=param.line,
    )


# ------------------------------------------------------------------------------ #Requires

_REQUIRES = re.compile(r"(?im)^([ \t]*)#requires(?![\w-])([^\r\n]*)")
_REQUIRES_PARAM = re.compile(r"(?i)(?:^|(?<=\s))-([a-z]+)")
_HASH_ENTRY = re.compile(r"""(\w+)\s*=\s*(?:'([^']*)'|"([^"]*)"|([^;\s}]+))""")


def _split_list(text: str) -> list[str]:
    """`A, 'B', @{ModuleName='C'; ModuleVersion='1.0'}` → its items, hashtables kept whole."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [item.strip() for item in items if item.strip()]


def _version(text: str) -> str:
    """`3` → `3.0`: .NET's [version] needs two parts."""
    text = text.strip().strip("'\"")
    return text if "." in text else f"{text}.0"


def _module(item: str) -> ModuleRequirement | None:
    if not item.startswith("@{"):
        plain = item.strip("'\"")
        return ModuleRequirement(plain) if plain else None
    fields: dict[str, str] = {
        m.group(1).lower(): next(g for g in m.groups()[1:] if g is not None)
        for m in _HASH_ENTRY.finditer(item)
    }
    name = fields.get("modulename")
    if not name:
        return None

    def version(key: str) -> str | None:
        value = fields.get(key)
        return _version(value) if value else None

    return ModuleRequirement(
        name, version("moduleversion"), version("requiredversion"), version("maximumversion")
    )


def _requires(text: str, root: Node) -> tuple[PowerShellRequires | None, list[Problem]]:
    """The script's `#Requires` lines; they apply wherever in the file they stand."""
    modules: list[ModuleRequirement] = []
    version: str | None = None
    editions: list[str] = []
    admin = False
    problems: list[Problem] = []
    for match in _REQUIRES.finditer(text):
        row = text.count("\n", 0, match.start())
        column = len(match.group(1).encode())
        node = root.descendant_for_point_range((row, column), (row, column + 1))
        if node is None or node.type != "comment" or not _text(node).startswith("#"):
            continue  # inside a string or a <# #> block: not a directive
        body = match.group(2)
        starts = list(_REQUIRES_PARAM.finditer(body))
        if not starts:
            problems.append(Problem(row + 1, "cannot read #Requires", Severity.WARNING))
        for i, start in enumerate(starts):
            key = start.group(1).lower()
            end = starts[i + 1].start() if i + 1 < len(starts) else len(body)
            value = body[start.end() : end].strip()
            if key in ("modules", "module"):
                found = [_module(item) for item in _split_list(value)]
                if not found or None in found:
                    message = f"cannot read #Requires -Modules {value}"
                    problems.append(Problem(row + 1, message, Severity.WARNING))
                modules.extend(m for m in found if m is not None)
            elif key == "version" and value:
                version = _version(value)
            elif key == "psedition" and value:
                editions.extend(e.strip("'\" ") for e in value.split(","))
            elif key == "runasadministrator":
                admin = True
    if not (modules or version or editions or admin):
        return None, problems
    return PowerShellRequires(tuple(modules), version, tuple(editions), admin), problems


# -------------------------------------------------------------------------------- script


def _top_level(root: Node) -> list[Node]:
    """Children of the script itself, looking through the ERROR wrappers of error recovery."""
    nodes: list[Node] = []
    # Under an ERROR root, nested ERRORs are the syntax errors themselves: keep them whole.
    expand = ("statement_list",) if root.type == "ERROR" else ("ERROR", "statement_list")
    for child in root.children:
        if child.type in expand:
            nodes.extend(child.children)
        else:
            nodes.append(child)
    return nodes


def _should_process(block: Node) -> bool:
    for child in block.named_children:
        if child.type != "attribute_list":
            continue
        for node in child.named_children:
            attribute = _attribute(node)
            if attribute.name == "cmdletbinding":
                value = attribute.named.get("supportsshouldprocess", False)
                return value is True or (isinstance(value, int) and value != 0)
    return False


def _choose_help(groups: list[list[Node]], before_row: int | None) -> _Help | None:
    helps = [h for h in (_read_help(g) for g in groups) if h is not None]
    if before_row is not None:
        for found in helps:
            if found.line - 1 < before_row:
                return found
    return helps[0] if helps else None


def _unparseable(root: Node, nodes: list[Node]) -> Problem | None:
    """Why a script without a recognisable param block cannot be loaded, if it cannot."""
    broken = next((n for n in nodes if n.type in ("param", "script_parameter")), None)
    if broken is not None:
        # Point at the first syntax error after `param`, where the fix is needed.
        after = nodes[nodes.index(broken) :]
        error = next((n for n in after if n.type == "ERROR" or n.has_error), broken)
        return Problem(_line(error), "cannot parse param() block")
    first = root.children[0] if root.child_count else None
    if (
        root.type == "ERROR"
        and first is not None
        and first.type == "ERROR"
        and _text(first).strip()
    ):
        # Nothing recognisable before the first syntax error: not a script at all.
        return Problem(_line(first), "cannot parse script")
    return None


@dataclass(slots=True)
class _HelpText:
    summary: str = ""
    description: str = ""
    notes: str = ""
    examples: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)  # lower-cased name -> help


def _help_text(sections: list[_Section], names: set[str], problems: list[Problem]) -> _HelpText:
    out = _HelpText()
    for section in sections:
        lines = [section.argument, *section.body]
        if section.keyword == "SYNOPSIS":
            out.summary = " ".join(" ".join(lines).split())
        elif section.keyword == "DESCRIPTION":
            out.description = _block(lines)
        elif section.keyword == "NOTES":
            out.notes = _block(lines)
        elif section.keyword == "EXAMPLE":
            if example := _example(section.body):
                out.examples.append(example)
        elif section.keyword == "LINK":
            out.links.extend(s for s in (line.strip() for line in lines) if s)
        elif section.keyword == "PARAMETER":
            key = section.argument.strip().lstrip("$").lower()
            if key in names:
                out.params[key] = _reflow(_block(section.body))
            elif key not in COMMON_PARAMETERS:  # help often documents -WhatIf and -Confirm
                message = f".PARAMETER {section.argument} documents no parameter of this script"
                problems.append(Problem(section.line, message, Severity.WARNING))
    return out


def _specs(
    params: list[_Param], help_text: _HelpText, problems: list[Problem]
) -> tuple[list[ParamSpec], list[CredentialParam]]:
    seen: set[str] = set()
    specs: list[ParamSpec] = []
    credentials: list[CredentialParam] = []
    required = _required(params)
    for param in params:
        key, name = param.name.lower(), param.name
        if key in seen:
            problems.append(Problem(param.line, f"parameter ${name} is declared twice"))
        seen.add(key)
        if key in COMMON_PARAMETERS:
            continue  # PowerShell's own (-WhatIf, -Verbose...): never typed as the command's
        if param.credential is not None:
            credentials.append(
                CredentialParam(name, param.credential, required[name], line=param.line)
            )
            continue
        written = (param.type_text or "").lower()
        base = written.strip("[]").removeprefix("system.").removeprefix("management.automation.")
        if base in _CODE_TYPES or written.endswith(("switch[]]", "switchparameter[]]")):
            # Chat cannot write a hashtable or a script block: PowerShell's default stands.
            if required[name]:
                message = (
                    f"parameter ${name}: type {param.type_text} cannot be given in chat,"
                    " and it is mandatory"
                )
                problems.append(Problem(param.line, message))
            continue
        spec = _spec(param, help_text.params.get(key, ""), required[name])
        if spec.required and (spec.default is not None or spec.default_text is not None):
            problems.append(
                Problem(param.line, f"parameter ${name} is mandatory but has a default")
            )
        if spec.pattern is not None:
            try:
                check_pattern(spec.pattern, ignore_case=True)
            except PatternError as e:
                problems.append(
                    Problem(param.pattern_line or param.line, f"parameter ${name}: {e}")
                )
        specs.append(spec)
    return specs, credentials


def _read(
    block: Node | None, found: _Help | None, problems: list[Problem], summary_line: int
) -> ParsedScript:
    """Help and parameters of one param block (a script's or a function's)."""
    params: list[_Param] = []
    if block is not None:
        for declared in _declared(block, problems):
            param = _read_param(declared, problems)
            if param is not None:
                params.append(param)
    if found is not None:
        summary_line = found.line
    names = {p.name.lower() for p in params}
    help_text = _help_text(found.sections if found else [], names, problems)
    summary = help_text.summary
    if not summary:
        problems.append(Problem(summary_line, "missing .SYNOPSIS", Severity.WARNING))
        summary = help_text.description.split("\n\n", 1)[0].replace("\n", " ").strip()
    specs, credentials = _specs(params, help_text, problems)
    # A hand-written [switch]$WhatIf is how scripts offered dry runs before ShouldProcess.
    whatif = any(p.name.lower() == "whatif" and p.type is ParamType.SWITCH for p in params)
    problems.sort(key=lambda p: p.line)
    return ParsedScript(
        summary=summary,
        description=help_text.description,
        params=tuple(specs),
        examples=tuple(help_text.examples),
        notes=help_text.notes,
        links=tuple(help_text.links),
        should_process=(block is not None and _should_process(block)) or whatif,
        summary_line=summary_line,
        credentials=tuple(credentials),
        problems=tuple(problems),
    )


# ----------------------------------------------------------------------------- functions

_FUNCTION_KEYWORDS: Final = frozenset(("function", "filter", "workflow"))


@dataclass(slots=True)
class PsFunction:
    """A function defined at the top level of a file, as the tree shows it."""

    name: str  # without a scope prefix (`global:`)
    line: int
    start_row: int
    end_row: int
    block: Node | None  # its param block, or the `(...)` of `function Name($a, $b)`
    inner: list[Node]  # comments inside its braces, before its body
    trailing: list[Node]  # comments inside its braces, after its body
    data: bytes = b""  # the file's bytes, to read its text from

    def read(self, before: list[list[Node]], fallback: list[list[Node]]) -> ParsedScript:
        """Its help and parameters; help from inside, then just before, then after its body."""
        with _reading(self.data):
            candidates = [*_comment_groups(self.inner)]
            candidates += [g for g in before if self.start_row - g[-1].end_point.row <= 2]
            candidates += [*_comment_groups(self.trailing), *fallback]
            found = next((h for h in (_read_help(g) for g in candidates) if h is not None), None)
            return _read(self.block, found, [], self.line)


def _function_name(node: Node) -> str:
    name = _text(node).strip()
    scope, _, rest = name.partition(":")
    return rest if rest and scope.lower() in ("global", "script", "local", "private") else name


def _function(node: Node) -> PsFunction | None:
    name_node = next((c for c in node.children if c.type == "function_name"), None)
    if name_node is None:
        return None
    block: Node | None = None
    inner: list[Node] = []
    trailing: list[Node] = []
    body_seen = False
    for child in node.children:
        if child.type == "function_parameter_declaration":
            block = child
        elif child.type == "script_block":
            body_seen = True
            block = next((c for c in child.children if c.type == "param_block"), block)
        elif child.type == "param_block":  # error recovery may leave it loose
            block, body_seen = child, True
        elif child.type == "comment":
            (trailing if body_seen else inner).append(child)
    return PsFunction(
        _function_name(name_node),
        _line(node),
        node.start_point.row,
        node.end_point.row,
        block,
        inner,
        trailing,
    )


def _loose_function(nodes: list[Node]) -> PsFunction | None:
    """A function the error recovery took apart: `function`, its name, then what follows."""
    name_node = nodes[1]
    block: Node | None = None
    inner: list[Node] = []
    for node in nodes[2:]:
        if node.type == "param_block" and block is None:
            block = node
        elif node.type == "script_block" and block is None:
            block = next((c for c in node.children if c.type == "param_block"), None)
        elif node.type == "comment" and block is None:
            inner.append(node)
    return PsFunction(
        _function_name(name_node),
        _line(nodes[0]),
        nodes[0].start_point.row,
        nodes[-1].end_point.row,
        block,
        inner,
        [],
    )


def _split(nodes: list[Node]) -> tuple[list[PsFunction], list[Node]]:
    """Top-level nodes → the functions defined there and everything else."""
    functions: list[PsFunction] = []
    rest: list[Node] = []
    i = 0
    while i < len(nodes):
        node = nodes[i]
        if node.type == "function_statement":
            if (function := _function(node)) is not None:
                functions.append(function)
            i += 1
        elif (
            node.type in _FUNCTION_KEYWORDS
            and i + 1 < len(nodes)
            and nodes[i + 1].type == "function_name"
        ):
            end = i + 2
            while end < len(nodes) and not (
                nodes[end].type == "function_statement" or nodes[end].type in _FUNCTION_KEYWORDS
            ):
                end += 1
            if (function := _loose_function(nodes[i:end])) is not None:
                functions.append(function)
            i = end
        else:
            rest.append(node)
            i += 1
    return functions, rest


def _calls(nodes: list[Node]) -> set[str]:
    """Lower-cased names of the commands the file's own top-level code calls."""
    names: set[str] = set()
    stack = [n for n in nodes if n.type not in ("comment", "param_block")]
    while stack:
        node = stack.pop()
        if node.type == "function_statement":
            continue
        if node.type in ("if_statement", "pipeline") and "invocationname" in _text(node).lower():
            continue  # `if ($MyInvocation.InvocationName -ne '.')`: skipped when dot-sourced
        if node.type == "command_name":
            names.add(_text(node).lower())
            continue
        stack.extend(node.children)
    return names


@dataclass(slots=True)
class PsFile:
    """What the top level of one PowerShell file holds."""

    root: Node
    nodes: list[Node]  # top-level nodes other than function definitions
    functions: list[PsFunction]
    comment_groups: list[list[Node]]  # top-level comments, grouped
    requires: PowerShellRequires | None
    problems: list[Problem]  # from #Requires
    data: bytes  # the text the tree's offsets point into

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Node texts are read from this file while the context lasts."""
        with _reading(self.data):
            yield


def read_file(source: str) -> PsFile:
    """Parse one PowerShell file (a script, a function file, a .psm1 or a .psd1)."""
    text = source.removeprefix("\ufeff")  # Windows editors save PowerShell with a BOM
    blanked = _USING.sub(lambda m: "#" + " " * (len(m.group(0)) - 1), text)
    data = blanked.encode()
    root = _parser().parse(data if blanked.isascii() else _for_grammar(blanked)).root_node
    with _reading(data):
        functions, nodes = _split(_top_level(root))
        for function in functions:
            function.data = data
        comments = [n for n in nodes if n.type == "comment"]
        requires, problems = _requires(text, root)
        groups = list(_comment_groups(comments))
    return PsFile(root, nodes, functions, groups, requires, problems, data)


def _with(
    parsed: ParsedScript, file: PsFile, read_as: str, entry: str | None = None
) -> ParsedScript:
    """`parsed` with what the file as a whole says: its #Requires and how it was read."""
    problems = sorted((*file.problems, *parsed.problems), key=lambda p: p.line)
    return replace(
        parsed, ps_requires=file.requires, problems=tuple(problems), read_as=read_as, entry=entry
    )


def parse_powershell(source: str, name: str | None = None) -> ParsedScript:
    """Read help, parameters and SupportsShouldProcess from a PowerShell script's source.

    `name` is the file's name without extension: a file without a top-level `param()` that
    defines one function, or one named like it, is that function (SPEC §3.10).
    """
    file = read_file(source)
    with file.reading():
        return _parse(file, source, name)


def _parse(file: PsFile, source: str, name: str | None) -> ParsedScript:
    nodes = file.nodes
    block = next((n for n in nodes if n.type == "param_block"), None)
    if block is None and file.functions:
        chosen = [f for f in file.functions if name and f.name.lower() == name.lower()]
        if not chosen and len(file.functions) == 1:
            chosen = file.functions
        calls = _calls(nodes)
        if chosen and chosen[0].name.lower() not in calls:
            function = chosen[0]
            before = [g for g in file.comment_groups if g[-1].end_point.row < function.start_row]
            parsed = function.read(before, file.comment_groups)
            return _with(parsed, file, "function", function.name)
        if not chosen and not calls & {f.name.lower() for f in file.functions}:
            names = ", ".join(f.name for f in file.functions)
            problem = Problem(
                file.functions[0].line,
                f"library file, no command (it defines {names}; none is named like the file)",
                Severity.WARNING,
            )
            return _with(ParsedScript(library=True, problems=(problem,)), file, "library")
        # Otherwise the file calls its own functions: a script like any other.
    if block is None and (fatal := _unparseable(file.root, nodes)) is not None:
        return ParsedScript(problems=(fatal,), read_as="script")

    found = _choose_help(file.comment_groups, block.start_point.row if block else None)
    if found is None and source.lstrip("\ufeff \t\r\n").startswith("<#") and "#>" not in source:
        return ParsedScript(problems=(Problem(1, "comment `<#` is never closed with `#>`"),))
    return _with(_read(block, found, [], 1), file, "script")
