"""Bounded, escaped forms of what people send: for error replies and audit entries.

Hostile input must not turn into hostile output. A chat message is refused above
`MAX_MESSAGE_BYTES` before it is tokenised; an error quotes at most `MAX_ERROR_CHARS`
characters of it; the audit log keeps a text or value up to `AUDIT_HEAD_BYTES` whole and of a
longer one its first bytes, its length and its sha256 — never the megabyte itself, once per
entry. Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final

from opsroom.errors import RefusedError
from opsroom.model.commands import CommandSpec, ParamSpec
from opsroom.model.languages import language_support
from opsroom.router.parser import option_name

MAX_MESSAGE_BYTES: Final = 64 * 1024
AUDIT_HEAD_BYTES: Final = 1024
MAX_ERROR_CHARS: Final = 400
PARAMS_ENV: Final = "OPSROOM_PARAMS"  # the runner's JSON of every value, for every language
_POINTER: Final = 8  # execve counts a pointer per argument and environment string
# Room left for what the runner adds after the check: secrets, the job id and token.
EXEC_HEADROOM: Final = 4096


class AuditedRefusal(RefusedError):
    """A refusal whose audit entry has already been written: not recorded a second time."""


def size_of(text: str) -> int:
    """Bytes of `text` in UTF-8 (lone surrogates from undecodable input count as three)."""
    return len(text.encode("utf-8", "surrogatepass"))


def too_long(text: str) -> bool:
    """Is this chat message over MAX_MESSAGE_BYTES?"""
    # Most characters are one byte: only a borderline message pays for the encoding.
    return len(text) > MAX_MESSAGE_BYTES or (
        len(text) * 4 > MAX_MESSAGE_BYTES and size_of(text) > MAX_MESSAGE_BYTES
    )


def escaped(text: str) -> str:
    """`text` with backslashes doubled and every unprintable character as an escape.

    Control characters (ANSI, BEL, NUL), format characters (bidi overrides, zero-width
    spaces), separators other than the space, and lone surrogates become `\\x1b`, `\\u202e`,
    `\\udcff`: a log reader sees what was sent, and a terminal showing it is not steered.
    """
    if text.isprintable() and "\\" not in text:
        return text
    out: list[str] = []
    for c in text:
        if c == "\\":
            out.append("\\\\")
        elif c.isprintable():
            out.append(c)
        else:
            code = ord(c)
            out.append(
                f"\\x{code:02x}"
                if code < 0x100
                else f"\\u{code:04x}"
                if code < 0x10000
                else f"\\U{code:08x}"
            )
    return "".join(out)


def _head(text: str, limit: int) -> str:
    """The longest start of `text` whose UTF-8 form fits in `limit` bytes."""
    raw = text[:limit].encode("utf-8", "surrogatepass")[:limit]
    return raw.decode("utf-8", "ignore")


def _long_form(text: str, *, escape: bool) -> dict[str, Any]:
    raw = text.encode("utf-8", "surrogatepass")
    head = _head(text, AUDIT_HEAD_BYTES)
    return {
        "head": escaped(head) if escape else head,
        "bytes": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
    }


def sent_form(text: str) -> str | dict[str, Any]:
    """How the audit log records a text someone sent: escaped, and bounded.

    Up to AUDIT_HEAD_BYTES it is the escaped text; beyond, `{"head", "bytes", "sha256"}`:
    the escaped first bytes, the length in bytes and the hash of the whole text.
    """
    if size_of(text) <= AUDIT_HEAD_BYTES:
        return escaped(text)
    return _long_form(text, escape=True)


def bounded_value(value: Any) -> Any:
    """A parameter value for the audit log: strings over AUDIT_HEAD_BYTES become their head."""
    if isinstance(value, str):
        if not _is_text(value):
            # Lone surrogates (undecodable input) cannot be stored as UTF-8: keep them escaped.
            return sent_form(value)
        return value if size_of(value) <= AUDIT_HEAD_BYTES else _long_form(value, escape=False)
    if isinstance(value, list | tuple):
        return [bounded_value(v) for v in value]
    return value


def _is_text(value: str) -> bool:
    """Whether `value` is valid Unicode text (no lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def bounded_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` with every long string value bounded (see `bounded_value`)."""
    return {k: bounded_value(v) for k, v in params.items()}


def shorten(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """`text` cut to about `limit` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters in all)"


# --------------------------------------------------------------------------- exec limits


def exec_limits() -> tuple[int | None, int | None]:
    """(longest single argument or environment string, all of them together) on this host.

    Linux refuses one string over 32 pages (MAX_ARG_STRLEN, 128 KiB with 4 KiB pages), and
    all of them with their pointers over ARG_MAX (a quarter of the stack limit). None where
    the host has no such limit or does not say.
    """
    string_max: int | None = None
    total_max: int | None = None
    if sys.platform.startswith("linux"):
        string_max = os.sysconf("SC_PAGESIZE") * 32
    if hasattr(os, "sysconf"):
        try:
            found = os.sysconf("SC_ARG_MAX")
        except (ValueError, OSError):
            found = -1
        total_max = found if found > 0 else None
    return string_max, total_max


def exec_limit_problem(
    spec: CommandSpec,
    params: Mapping[str, Any],
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    env_param: Mapping[str, ParamSpec],
    string_max: int | None,
    total_max: int | None,
) -> str | None:
    """Why the OS would refuse to start this process, naming the value and the limit; or None.

    `env_param` maps the runner's per-parameter variable names (`OPSROOM_ARG_NOTES`) to
    their parameters; `params` are the values as the runner encodes them.
    """
    support = language_support(spec.language)
    kind = support.kind if support is not None else "a script"
    if string_max is not None:
        for name, value in env.items():
            used = size_of(f"{name}={value}") + 1
            if used <= string_max:
                continue
            room = string_max - size_of(name) - 2
            param = env_param.get(name)
            if param is not None:
                return (
                    f"{option_name(param)} is {size_of(value):,} bytes; {kind}'s "
                    f"value can be at most {room:,} bytes (the operating system's limit for one "
                    "argument); nothing was run"
                )
            if name == PARAMS_ENV:
                return _params_problem(spec, params, value, kind, room)
            return f"{name} is {used:,} bytes, over the limit of {string_max:,}; nothing was run"
        for arg in argv:
            if size_of(arg) + 1 > string_max:
                return (
                    f"an argument is {size_of(arg):,} bytes; the operating system allows at "
                    f"most {string_max - 1:,}; nothing was run"
                )
    if total_max is not None:
        strings = [*argv, *(f"{k}={v}" for k, v in env.items())]
        total = sum(size_of(s) + 1 + _POINTER for s in strings) + EXEC_HEADROOM
        if total > total_max:
            return (
                f"the values of {spec.name} come to {total:,} bytes with the environment; "
                f"{kind} can be started with at most {total_max:,} bytes on this host "
                "(the operating system's ARG_MAX); nothing was run"
            )
    return None


def _params_problem(
    spec: CommandSpec, params: Mapping[str, Any], encoded: str, kind: str, room: int
) -> str:
    """The message for a JSON of all values that is too long: the biggest value named."""

    def weight(item: tuple[str, Any]) -> int:
        return len(json.dumps(item[1]))

    biggest = max(params.items(), key=weight, default=None)
    whole = f"{size_of(encoded):,} bytes as JSON"
    if biggest is None:
        return f"the values are {whole}; {kind} takes at most {room:,}; nothing was run"
    name, value = biggest
    param = spec.param(name)
    shown = option_name(param) if param is not None else name
    raw = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return (
        f"{shown} is {size_of(raw):,} bytes ({weight(biggest):,} as JSON); "
        f"{kind}'s values can be at most {room:,} bytes together as JSON (the operating "
        "system's limit for one environment string); nothing was run"
    )
