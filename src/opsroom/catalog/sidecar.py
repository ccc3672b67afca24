"""`<file>.opsroom.toml` sidecars and folder `defaults.opsroom.toml` (SPEC §3.6).

A sidecar overrides anything derived from its script — the equivalent of hand-editing a
generated wrapper. Folder defaults give directive values for every script beneath them.
Precedence, lowest first: folder defaults (outer, then nearer), the script's own directives,
the sidecar.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from types import MappingProxyType
from typing import Any

from opsroom.catalog.directives import DIRECTIVE_KEYS, Directives, validate_directive
from opsroom.catalog.naming import is_valid_name, normalize_name
from opsroom.catalog.parsers.base import Problem
from opsroom.model.commands import ArgvStyle, CredentialParam, ParamSpec, ParamType, ParamValue
from opsroom.model.patterns import check_pattern

COMMAND_KEYS = frozenset({"name", "summary", "description", "examples", "notes", "links", "argv"})
PARAM_KEYS = frozenset(
    {
        "name",
        "type",
        "required",
        "default",
        "choices",
        "range",
        "pattern",
        "length",
        "help",
        "aliases",
        "position",
        "choices_from",
        "secret",  # a PowerShell [pscredential]/[securestring] parameter's secret
    }
)
_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Folder defaults apply to many scripts at once; per-script identities make no sense there.
_NOT_FOLDER_DEFAULTS = frozenset({"aliases", "choices_from"})


@dataclass(frozen=True, slots=True)
class ParamOverride:
    """Fields a sidecar sets on one parameter (added when the script has none by that name)."""

    name: str
    fields: Mapping[str, Any]
    line: int


@dataclass(frozen=True, slots=True)
class Sidecar:
    """What one `<file>.opsroom.toml` overrides."""

    fields: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    params: tuple[ParamOverride, ...] = ()
    directives: Directives = field(default_factory=Directives)
    problems: tuple[Problem, ...] = ()


class _Lines:
    """Best-effort line numbers for TOML keys (tomllib does not report positions)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def key(self, key: str, start: int = 1) -> int:
        pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for i in range(max(start, 1) - 1, len(self.lines)):
            if pattern.match(self.lines[i]):
                return i + 1
        return start if start > 1 else 1

    def param(self, name: str) -> int:
        table = re.compile(rf"^\s*\[\s*params\s*\.\s*[\"']?{re.escape(name)}[\"']?\s*\]")
        entry = re.compile(rf"^\s*name\s*=\s*[\"']{re.escape(name)}[\"']")
        for i, ln in enumerate(self.lines):
            if table.match(ln) or entry.match(ln):
                return i + 1
        return self.key("params")


def _load(text: str) -> tuple[dict[str, Any], list[Problem]]:
    try:
        return tomllib.loads(text), []
    except tomllib.TOMLDecodeError as e:
        line = getattr(e, "lineno", None) or 1
        return {}, [Problem(line, f"not valid TOML: {e}")]


def _directives(
    data: Mapping[str, Any], lines: _Lines, problems: list[Problem], *, folder: bool
) -> Directives:
    values: dict[str, Any] = {}
    where: dict[str, int] = {}
    for key, value in data.items():
        line = lines.key(key)
        if folder and key in _NOT_FOLDER_DEFAULTS:
            problems.append(Problem(line, f"'{key}' cannot be a folder default"))
            continue
        try:
            values[key] = validate_directive(key, value)
        except ValueError as e:
            problems.append(Problem(line, f"bad value for '{key}': {e}"))
            continue
        where[key] = line
    return Directives(MappingProxyType(values), MappingProxyType(where))


def read_folder_defaults(text: str) -> Directives:
    """Directive defaults from a `defaults.opsroom.toml`; unknown keys are problems."""
    data, problems = _load(text)
    lines = _Lines(text)
    known = {k: v for k, v in data.items() if k in DIRECTIVE_KEYS}
    for key in data:
        if key not in DIRECTIVE_KEYS:
            problems.append(Problem(lines.key(key), f"unknown key '{key}' in folder defaults"))
    d = _directives(known, lines, problems, folder=True)
    return Directives(d.values, d.lines, tuple(problems))


def _str_list(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} must be a list of strings")
    return tuple(value)


def _param_value(value: object) -> ParamValue:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, str | int | float):
        return value
    if isinstance(value, list):
        items = [_param_value(v) for v in value]
        if any(isinstance(v, tuple) for v in items):
            raise ValueError("default must be a value or a flat list")
        return tuple(v for v in items if not isinstance(v, tuple))
    raise ValueError("default must be a value or a list of values")


def _bounds(value: object, what: str, number: type) -> tuple[Any, Any]:
    if isinstance(value, dict):
        unknown = set(value) - {"min", "max"}
        if unknown:
            raise ValueError(f"{what} takes min and max, not {', '.join(sorted(unknown))}")
        lo, hi = value.get("min"), value.get("max")
    elif isinstance(value, list) and len(value) == 2:
        lo, hi = value
    else:
        raise ValueError(f"{what} must be [min, max] or {{ min = ..., max = ... }}")
    accepted = (int,) if number is int else (int, float)
    for bound in (lo, hi):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, accepted)):
            raise ValueError(f"{what} bounds must be numbers")
    return lo, hi


def param_type(label: str) -> tuple[ParamType, bool]:
    """`"string[]"` → (STRING, multiple); ValueError for an unknown type."""
    multiple = label.endswith("[]")
    base = label[:-2] if multiple else label
    try:
        return ParamType(base.strip().lower()), multiple
    except ValueError:
        known = ", ".join(t.value for t in ParamType)
        raise ValueError(f"unknown type '{label}' (known: {known}; arrays: int[])") from None


def _param_fields(table: Mapping[str, Any]) -> dict[str, Any]:
    """Validate one parameter table into ParamSpec field values (ValueError on the first fault)."""
    out: dict[str, Any] = {}
    if "secret" in table and set(table) - {"name", "secret"}:
        # It is filled from the secret, never from chat: nothing else about it applies.
        raise ValueError("a parameter mapped to a secret takes no other key")
    for key, value in table.items():
        if key == "name":
            continue
        if key not in PARAM_KEYS:
            raise ValueError(f"unknown parameter key '{key}'")
        if key == "type":
            if not isinstance(value, str):
                raise ValueError('type must be a string like "int" or "string[]"')
            out["type"], out["multiple"] = param_type(value)
        elif key == "required":
            if not isinstance(value, bool):
                raise ValueError("required must be true or false")
            out["required"] = value
        elif key == "default":
            out["default"] = _param_value(value)
            out["default_text"] = None
        elif key == "choices":
            if not isinstance(value, list) or not all(
                isinstance(v, str | int | float) and not isinstance(v, bool) for v in value
            ):
                raise ValueError("choices must be a list of strings or numbers")
            out["choices"] = tuple(str(v) for v in value)
        elif key == "range":
            out["range"] = _bounds(value, "range", float)
        elif key == "length":
            out["length"] = _bounds(value, "length", int)
        elif key == "pattern":
            if not isinstance(value, str):
                raise ValueError("pattern must be a string")
            check_pattern(value)  # PatternError (a ValueError) says why it cannot be used
            out["pattern"] = value
        elif key == "help":
            if not isinstance(value, str):
                raise ValueError("help must be a string")
            out["help"] = value
        elif key == "aliases":
            out["aliases"] = _str_list(value, "aliases")
        elif key == "position":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError("position must be an integer of at least 0")
            out["position"] = value
        elif key == "secret":
            if not isinstance(value, str) or not _SECRET_NAME.match(value):
                raise ValueError('secret must name a secret, like "AD_SVC"')
            out["secret"] = value
        elif key == "choices_from":
            out["choices_from"] = validate_directive("choices_from", value)
            if not isinstance(out["choices_from"], str):
                raise ValueError("a parameter's choices_from is one command name")
    return out


def _read_params(value: object, lines: _Lines, problems: list[Problem]) -> list[ParamOverride]:
    tables: list[tuple[str, Mapping[str, Any]]] = []
    if isinstance(value, list):  # [[params]] with name = "..."
        for table in value:
            if not isinstance(table, dict) or not isinstance(table.get("name"), str):
                problems.append(Problem(lines.key("params"), "each [[params]] needs a name"))
                continue
            tables.append((table["name"], table))
    elif isinstance(value, dict):  # [params.<name>]
        for name, table in value.items():
            if not isinstance(table, dict):
                problems.append(Problem(lines.param(name), f"params.{name} must be a table"))
                continue
            tables.append((name, table))
    else:
        problems.append(
            Problem(lines.key("params"), "params must be [[params]] or [params.<name>]")
        )
    out = []
    for name, table in tables:
        line = lines.param(name)
        try:
            out.append(ParamOverride(name, MappingProxyType(_param_fields(table)), line))
        except ValueError as e:
            problems.append(Problem(line, f"parameter '{name}': {e}"))
    return out


def _command_fields(
    data: Mapping[str, Any], lines: _Lines, problems: list[Problem]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in COMMAND_KEYS & data.keys():
        value = data[key]
        line = lines.key(key)
        if key in ("examples", "links"):
            try:
                out[key] = _str_list(value, key)
            except ValueError as e:
                problems.append(Problem(line, str(e)))
        elif not isinstance(value, str):
            problems.append(Problem(line, f"{key} must be a string"))
        elif key == "argv":
            try:
                out[key] = ArgvStyle(value)
            except ValueError:
                known = " or ".join(f'"{a.value}"' for a in ArgvStyle)
                problems.append(Problem(line, f"argv must be {known}, not {value!r}"))
        elif key == "name":
            name = normalize_name(value)
            if not is_valid_name(name):
                problems.append(Problem(line, f"not a valid command name: {value!r}"))
            else:
                out[key] = name
        else:
            out[key] = value
    return out


def read_sidecar(text: str) -> Sidecar:
    """Parse and validate one `<file>.opsroom.toml`."""
    data, problems = _load(text)
    lines = _Lines(text)
    for key in data:
        if key not in COMMAND_KEYS and key not in DIRECTIVE_KEYS and key != "params":
            problems.append(Problem(lines.key(key), f"unknown key '{key}' in sidecar"))
    fields = _command_fields(data, lines, problems)
    params = _read_params(data["params"], lines, problems) if "params" in data else []
    directives = _directives(
        {k: v for k, v in data.items() if k in DIRECTIVE_KEYS}, lines, problems, folder=False
    )
    return Sidecar(MappingProxyType(fields), tuple(params), directives, tuple(problems))


def apply_params(
    params: tuple[ParamSpec, ...], overrides: tuple[ParamOverride, ...]
) -> tuple[ParamSpec, ...]:
    """The parameters after a sidecar's overrides; unknown names are added at the end."""
    result = list(params)
    for override in overrides:
        for i, p in enumerate(result):
            if p.name == override.name:
                result[i] = dataclasses.replace(p, **override.fields)
                break
        else:
            result.append(ParamSpec(name=override.name, line=override.line, **override.fields))
    return tuple(result)


@dataclass(frozen=True, slots=True)
class CredentialMapping:
    """A script's credential parameters after its sidecar's `[params.<Name>] secret = "..."`."""

    credentials: tuple[CredentialParam, ...]  # mapped ones only; unmapped optional ones drop
    overrides: tuple[ParamOverride, ...]  # the sidecar's other parameter overrides
    problems: tuple[Problem, ...]  # in the script: a mandatory one left unmapped
    sidecar_problems: tuple[Problem, ...]  # in the sidecar: a secret for no such parameter


def map_credentials(
    found: tuple[CredentialParam, ...], overrides: tuple[ParamOverride, ...], sidecar_name: str
) -> CredentialMapping:
    """Match `[pscredential]`/`[securestring]` parameters with the secrets a sidecar maps."""
    by_name = {c.name.lower(): c for c in found}
    mapped: dict[str, CredentialParam] = {}
    rest: list[ParamOverride] = []
    sidecar_problems: list[Problem] = []
    for override in overrides:
        target = by_name.get(override.name.lower())
        if "secret" not in override.fields:
            if target is not None:
                sidecar_problems.append(
                    Problem(
                        override.line,
                        f"parameter '{override.name}' is a [{target.kind}]: "
                        'map it to a secret (`secret = "NAME"`), nothing else',
                    )
                )
            else:
                rest.append(override)
        elif target is None:
            sidecar_problems.append(
                Problem(
                    override.line,
                    f"parameter '{override.name}': secret maps a [pscredential] or "
                    "[securestring] parameter, and the script has none by that name",
                )
            )
        else:
            mapped[target.name] = dataclasses.replace(target, secret=override.fields["secret"])
    problems = [
        Problem(
            c.line,
            f"mandatory [{c.kind}] parameter ${c.name} cannot be typed in chat: map it to a "
            f'secret in {sidecar_name}:  [params.{c.name}]  secret = "SECRET_NAME"',
        )
        for c in found
        if c.required and c.name not in mapped
    ]
    credentials = tuple(mapped[c.name] for c in found if c.name in mapped)
    return CredentialMapping(credentials, tuple(rest), tuple(problems), tuple(sidecar_problems))
