"""`# opsroom: key = <TOML value>` lines at the top of a script (SPEC §3.5).

The same validation serves script directives, sidecars and folder defaults, so a value
means the same thing wherever it is written.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from opsroom.catalog.naming import is_valid_name, normalize_name
from opsroom.catalog.parsers.base import Problem
from opsroom.config import parse_duration
from opsroom.model.languages import CommentSyntax

HASH_COMMENTS = CommentSyntax()
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_DOCSTRING_START = re.compile("^[rRuUbBfF]{0,2}(\"\"\"|'''|\"|')")


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string")
    return value.strip()


def _text_list(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError("expected a list of strings")
    return tuple(_text(v) for v in value)


def _timeout(value: object) -> float:
    return parse_duration(value)


def _concurrency(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("expected an integer of at least 1")
    return value


def _approvals(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10:
        raise ValueError("expected an integer from 1 to 10 (how many people must approve)")
    return value


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def _aliases(value: object) -> tuple[str, ...]:
    out = []
    for alias in _text_list(value):
        name = normalize_name(alias)
        if not is_valid_name(name):
            raise ValueError(f"not a valid command name: {alias!r}")
        out.append(name)
    return tuple(out)


def _secrets(value: object) -> tuple[str, ...]:
    names = _text_list(value)
    for name in names:
        if not _ENV_NAME.match(name):
            raise ValueError(f"not an environment variable name: {name!r}")
    return names


def _command_ref(value: object) -> str:
    name = normalize_name(_text(value))
    if not is_valid_name(name):
        raise ValueError(f"not a valid command name: {value!r}")
    return name


def _choices_from(value: object) -> str | Mapping[str, str]:
    if isinstance(value, dict):
        table = {}
        for param, command in value.items():
            if not _PARAM_NAME.match(param):
                raise ValueError(f"not a parameter name: {param!r}")
            table[param] = _command_ref(command)
        return MappingProxyType(table)
    if isinstance(value, str):
        return _command_ref(value)
    raise ValueError("expected a command name, or a table of parameter = command")


# key -> validator returning the normalised value (raises ValueError with a reason)
VALIDATORS: Mapping[str, Callable[[object], Any]] = MappingProxyType(
    {
        "timeout": _timeout,
        "approval": _text,
        "approvals": _approvals,
        "approval_ttl": _timeout,
        "concurrency": _concurrency,
        "aliases": _aliases,
        "secrets": _secrets,
        "runs_on": _text,
        "rooms": _text_list,
        "background": _flag,
        "dry_run": _flag,
        "hidden": _flag,
        "owner": _text,
        "choices_from": _choices_from,
    }
)
DIRECTIVE_KEYS = frozenset(VALIDATORS)


@functools.cache
def _directive(comment: str) -> re.Pattern[str]:
    """`<comment> opsroom: <rest>`, any case, spaces optional."""
    return re.compile(rf"^\s*{re.escape(comment)}\s*opsroom\s*:(?P<rest>.*)$", re.IGNORECASE)


def validate_directive(key: str, value: object) -> Any:
    """The normalised value of directive `key`; KeyError if unknown, ValueError if bad."""
    validator = VALIDATORS.get(key)
    if validator is None:
        raise KeyError(key)
    return validator(value)


@dataclass(frozen=True, slots=True)
class Directives:
    """Validated directives of one source, with the line each came from."""

    values: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    lines: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    problems: tuple[Problem, ...] = ()


def _header_lines(source: str, comments: CommentSyntax) -> list[tuple[int, str]]:
    """The comment lines of the header: before the first code line (shebang allowed).

    The language's block comments (PowerShell's `<# ... #>`) and module docstring (Python's)
    are stepped over, so directives may sit on either side of the help.
    """
    out: list[tuple[int, str]] = []
    lines = source.splitlines()
    i = 0
    seen_docstring = False
    opens, closes = comments.block or ("", "")
    in_block = False
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        lineno = i + 1
        i += 1
        if in_block:
            if closes in stripped:
                in_block = False
            continue
        if not stripped or (lineno == 1 and stripped.startswith("#!")):
            continue
        if opens and stripped.startswith(opens):
            in_block = closes not in stripped[len(opens) :]
            continue
        if stripped.startswith(comments.line):
            out.append((lineno, raw))
            continue
        m = _DOCSTRING_START.match(stripped) if comments.docstring and not seen_docstring else None
        if m is None:
            break
        seen_docstring = True
        quote = m.group(1)
        rest = stripped[m.end() :]
        if quote in rest:
            continue
        while i < len(lines) and quote not in lines[i]:
            i += 1
        i += 1
    return out


def read_directives(source: str, comments: CommentSyntax = HASH_COMMENTS) -> Directives:
    """Read and validate the `# opsroom:` lines of a script's header (in its comment syntax)."""
    values: dict[str, Any] = {}
    where: dict[str, int] = {}
    problems: list[Problem] = []
    directive = _directive(comments.line)
    for lineno, raw in _header_lines(source, comments):
        m = directive.match(raw)
        if m is None:
            continue
        rest = m.group("rest").strip()
        try:
            parsed = tomllib.loads(rest)
        except tomllib.TOMLDecodeError as e:
            problems.append(Problem(lineno, f"bad directive (expected `key = <TOML value>`): {e}"))
            continue
        if len(parsed) != 1:
            problems.append(Problem(lineno, "bad directive: expected exactly one `key = value`"))
            continue
        ((key, value),) = parsed.items()
        if key not in DIRECTIVE_KEYS:
            known = ", ".join(sorted(DIRECTIVE_KEYS))
            problems.append(Problem(lineno, f"unknown directive '{key}' (known: {known})"))
            continue
        if key in values:
            problems.append(
                Problem(lineno, f"directive '{key}' given twice (first on line {where[key]})")
            )
            continue
        try:
            values[key] = validate_directive(key, value)
        except ValueError as e:
            problems.append(Problem(lineno, f"bad value for directive '{key}': {e}"))
            continue
        where[key] = lineno
    return Directives(MappingProxyType(values), MappingProxyType(where), tuple(problems))
