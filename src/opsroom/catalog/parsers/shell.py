"""Metadata of a shell script from argc-style comment tags — SPEC §3.3.

Follows argc's tag grammar (`# @describe`, `# @arg`, `# @option`, `# @flag`) for the parts a
chat command needs: `!` required, `*` many, `+` required and many, `=value` default,
`[a|b]` choices, `[=a|b]` choices with the first as default, `-r --region` short aliases,
`<VALUE>` notations. Extensions: `# @example` lines, and notations `<INT>`, `<FLOAT>`,
`<NUMBER>`, `<DATE>`, `<DATETIME>` give the parameter a type (argc itself has none).
Choices or defaults computed by a shell function (`` [`_fn`] ``) are never run.
"""

from __future__ import annotations

import re

from opsroom.catalog.parsers.base import ParsedScript, Problem
from opsroom.model.catalog import Severity
from opsroom.model.commands import ParamSpec, ParamType, ParamValue

_TAG = re.compile(r"^\s*#\s*@(?P<tag>[A-Za-z][\w-]*)(?:\s+(?P<rest>.*?))?\s*$")
_COMMENT = re.compile(r"^\s*#(?!!)\s?(?P<text>.*?)\s*$")
_NAME = r"(?P<name>[A-Za-z_][\w-]*)"
_MODS = r"(?P<mods>[!*+]?)(?P<comma>,?)"
_VALUE = r"""(?:=(?P<default>"[^"]*"|'[^']*'|`[^`]*`|[^\s\[]+)|\[(?P<choices>[^\]]*)\])?"""
_ARG = re.compile(rf"^{_NAME}{_MODS}{_VALUE}(?P<tilde>~?)(?=\s|$)")
_OPTION = re.compile(
    rf"^(?:-(?P<short>[A-Za-z0-9])(?:\s+|(?=\s|$)))?(?:--?{_NAME}{_MODS}{_VALUE}(?P<tilde>~?))?"
    r"(?=\s|$)"
)
_ENV_BIND = re.compile(r"^\$(?:\$|[A-Za-z_]\w*)(?=\s|$)")
_NOTATION = re.compile(r"^<(?P<n>[^>]+)>")
_TYPED_NOTATIONS = {
    "INT": ParamType.INT,
    "INTEGER": ParamType.INT,
    "NUM": ParamType.FLOAT,
    "NUMBER": ParamType.FLOAT,
    "FLOAT": ParamType.FLOAT,
    "DATE": ParamType.DATETIME,
    "DATETIME": ParamType.DATETIME,
}
_IGNORED_TAGS = {"meta", "version", "author", "env", "alias"}
# Signs that a script reads its own arguments (SPEC §3.10): a getopts loop, a usage()
# function, or a `case "$1" in -x|--long)` loop. Comments and strings may hold false hits;
# a wrong guess only costs a warning.
_GETOPTS_CALL = re.compile(r"^[^#\n]*\bgetopts[ \t]+\S", re.MULTILINE)
_USAGE_FUNCTION = re.compile(
    r"^[ \t]*(?:function[ \t]+usage\b|usage[ \t]*\([ \t]*\))", re.MULTILINE
)
_CASE_ON_ARG = re.compile(
    r"^[^#\n]*\bcase[ \t]+\"?\$\{?(?:1|[A-Za-z_]\w*)\}?\"?[ \t]+in\b", re.MULTILINE
)
_OPTION_ARM = re.compile(r"^[ \t]*\(?[ \t]*[\"']?--?[A-Za-z][\w-]*[\"']?[ \t]*[|)]", re.MULTILINE)
ADOPT_HINT = "run `opsroom catalog adopt` on it to write a sidecar that declares them"


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _typed(value: str, kind: ParamType) -> ParamValue:
    """A default in the parameter's type where it reads as one; text otherwise."""
    try:
        if kind is ParamType.INT:
            return int(value)
        if kind is ParamType.FLOAT:
            return float(value)
    except ValueError:
        pass
    return value


class _Reader:
    def __init__(self) -> None:
        self.params: list[ParamSpec] = []
        self.problems: list[Problem] = []
        self.positions = 0

    def param(self, tag: str, rest: str, line: int) -> None:
        is_arg = tag == "arg"
        m = (_ARG if is_arg else _OPTION).match(rest)
        if m is None or (m.group("name") is None and (is_arg or m.group("short") is None)):
            what = "name" if is_arg else "--name"
            self.problems.append(Problem(line, f"bad @{tag}: expected `# @{tag} {what} help`"))
            return
        short = None if is_arg else m.group("short")
        name = m.group("name") or short or ""
        mods = m.group("mods") or ""
        tail = rest[m.end() :].strip()
        if b := _ENV_BIND.match(tail):
            tail = tail[b.end() :].strip()
        notations = []
        while n := _NOTATION.match(tail):
            notations.append(n.group("n"))
            tail = tail[n.end() :].strip()
        kind = ParamType.SWITCH if tag == "flag" else ParamType.STRING
        if tag != "flag" and notations:
            kind = _TYPED_NOTATIONS.get(notations[0].rstrip("+*").upper(), ParamType.STRING)
        multiple = mods in ("*", "+") or bool(m.group("tilde"))
        required = mods in ("!", "+")
        default: ParamValue | None = None
        default_text = None
        choices: tuple[str, ...] = ()
        if (raw := m.group("default")) is not None:
            if raw.startswith("`"):
                default_text = raw
            else:
                default = _typed(_unquote(raw), kind)
        if (raw_choices := m.group("choices")) is not None:
            body = raw_choices.lstrip("?")
            if body.startswith("`"):
                self.problems.append(
                    Problem(
                        line,
                        f"choices of '{name}' come from a shell function, which "
                        "opsroom never runs; use the choices_from directive",
                        Severity.WARNING,
                    )
                )
            else:
                if body.startswith("="):
                    body = body[1:]
                    first = body.split("|", 1)[0]
                    default = _typed(first, kind)
                choices = tuple(c for c in body.split("|") if c)
        if tag == "flag" and (default is not None or choices):
            self.problems.append(Problem(line, f"flag '{name}' cannot have a value"))
            return
        if multiple and default is not None and not isinstance(default, tuple):
            default = (default,)
        if any(p.name == name for p in self.params):
            self.problems.append(Problem(line, f"parameter '{name}' declared twice"))
            return
        position = None
        if is_arg:
            position = self.positions
            self.positions += 1
        self.params.append(
            ParamSpec(
                name=name,
                type=kind,
                multiple=multiple,
                required=required,
                default=default if tag != "flag" else False,
                default_text=default_text,
                choices=choices,
                help=tail,
                aliases=(short,) if short and short != name else (),
                position=position,
                line=line,
            )
        )


def own_options_line(source: str) -> int | None:
    """The line where a script starts reading its own arguments (getopts, usage(), an
    option `case`), or None: such a script's options are not declared as tags."""
    hits = [m.start() for m in (_GETOPTS_CALL.search(source), _USAGE_FUNCTION.search(source)) if m]
    for case in _CASE_ON_ARG.finditer(source):
        if _OPTION_ARM.search(source, case.end()):
            hits.append(case.start())
            break
    if not hits:
        return None
    return source.count("\n", 0, min(hits)) + 1


def parse_shell(source: str) -> ParsedScript:
    """Read the argc-style tags of a shell script."""
    reader = _Reader()
    summary = ""
    description: list[str] = []
    summary_line = 1
    examples: list[str] = []
    in_describe = False
    for lineno, raw in enumerate(source.splitlines(), start=1):
        m = _TAG.match(raw)
        if m is None:
            comment = _COMMENT.match(raw)
            if in_describe and comment and not comment.group("text").lower().startswith("opsroom:"):
                description.append(comment.group("text"))
                continue
            in_describe = False
            continue
        in_describe = False
        tag, rest = m.group("tag").lower(), (m.group("rest") or "")
        if tag == "describe":
            if summary:
                reader.problems.append(Problem(lineno, "@describe given twice"))
                continue
            summary, summary_line, in_describe = rest, lineno, True
        elif tag in ("arg", "option", "flag"):
            reader.param(tag, rest, lineno)
        elif tag == "example":
            if rest:
                examples.append(rest)
        elif tag == "cmd":
            reader.problems.append(
                Problem(
                    lineno, "argc subcommands (@cmd) are not supported: one script is one command"
                )
            )
        elif tag not in _IGNORED_TAGS:
            reader.problems.append(Problem(lineno, f"unknown tag @{tag}", Severity.WARNING))
    if not summary:
        reader.problems.append(
            Problem(1, "missing `# @describe` (the command summary)", Severity.WARNING)
        )
    read_as = "tags" if summary or reader.params else "plain"
    if not reader.params and (own := own_options_line(source)) is not None:
        read_as = "getopts"
        reader.problems.append(
            Problem(
                own,
                "reads its own options (getopts/usage) but declares none as `# @option` tags: "
                f"it becomes a command without parameters; {ADOPT_HINT}",
                Severity.WARNING,
            )
        )
    return ParsedScript(
        summary=summary,
        description="\n".join(description).strip(),
        params=tuple(reader.params),
        examples=tuple(examples),
        summary_line=summary_line,
        problems=tuple(reader.problems),
        read_as=read_as,
    )
