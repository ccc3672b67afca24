"""Parameter patterns (SPEC §3.4), matched in time linear in the value.

A pattern comes from a script (`[ValidatePattern()]`) or a sidecar (`pattern = ...`), and the
value from anyone in a chat room. Python's `re` backtracks: `(a+)+$` against a long run of
`a`s takes years, and the bot matches on its event loop. RE2 runs in time linear in the value
and never backtracks, so a pattern may only use what RE2 supports; a backreference or a
lookaround (which need backtracking) is refused when the catalog is loaded, with the reason.

RE2's linear time has a factor that grows with the compiled pattern in rare shapes whose
DFA explodes (`[ab]*a[ab]{20}$`): there RE2 falls back to simulating the pattern, and a 50 KB
value costs tens of milliseconds, hundreds for a pattern ten times that size (see
bench/bench_patterns.py). Submatches are never asked for, which keeps RE2 on its fastest path.

Two dialects, as the script's own language would match (kept from the `re` days):
- PowerShell `[ValidatePattern()]` is `-match`: a case-insensitive *search*, so the pattern's
  own anchors decide.
- Everywhere else the pattern must match the whole value, case-sensitively.

RE2 differs from `re` in small ways that only ever refuse more: `$` matches at the very end
(never before a trailing newline) and `\\d`, `\\w`, `\\s` are ASCII.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from opsroom.errors import OpsroomError

__all__ = ["PatternError", "check_pattern", "pattern_matches"]

# What each construct RE2 refuses is, for the catalog's author. Keys are the start of the
# operator RE2 names in its error ("invalid perl operator: (?=").
_UNSUPPORTED = (
    ("(?=", "a lookahead"),
    ("(?!", "a lookahead"),
    ("(?<=", "a lookbehind"),
    ("(?<!", "a lookbehind"),
    ("(?>", "an atomic group"),
    ("(?(", "a conditional group"),
)
_BACKREFERENCE = re.compile(r"\\(?:[1-9]|g)")  # `\1`, `\g<name>`
_POSSESSIVE = re.compile(r"(?:[*+?]|\{[0-9,]*\})\+")  # `a++`, `a{2}+`


class PatternError(OpsroomError, ValueError):
    """A pattern opsroom will not match; the message says why, for the catalog's author."""


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str, ignore_case: bool) -> Any:
    # Imported here: only commands with a pattern need RE2 (`opsroom --help` stays fast).
    import re2

    options = re2.Options()
    options.case_sensitive = not ignore_case
    options.log_errors = False  # RE2 would print every refused pattern on stderr
    options.never_capture = True  # only "does it match" is asked: no submatch work
    try:
        return re2.compile(pattern, options)
    except re2.error as e:
        raise PatternError(_reason(pattern, e)) from None


def _reason(pattern: str, error: Exception) -> str:
    """Why RE2 refused `pattern`, in words: a construct it cannot match, or a plain mistake."""
    raw = error.args[0] if error.args else ""
    detail = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    construct = _construct(pattern, detail)
    if construct is not None:
        return f"pattern {pattern!r} uses {construct}, which opsroom cannot match in linear time"
    try:
        re.compile(pattern)
    except re.error as e:
        return f"pattern {pattern!r} is not a valid regular expression: {e}"
    except (RecursionError, OverflowError):
        pass
    hint = " (write \\z for the end of the value)" if detail.endswith("\\Z") else ""
    return f"pattern {pattern!r} is not supported by opsroom's linear-time matcher: {detail}{hint}"


def _construct(pattern: str, detail: str) -> str | None:
    operator = detail.partition(": ")[2]
    for start, what in _UNSUPPORTED:
        if operator.startswith(start):
            return what
    if operator.startswith("(?P"):  # RE2 names only `(?P` for `(?P=name)` and `(?P>name)`
        if "(?P=" in pattern:
            return "a backreference"
        if "(?P>" in pattern:
            return "a recursive pattern"
    if detail.startswith("invalid escape sequence") and _BACKREFERENCE.fullmatch(operator):
        return "a backreference"
    if detail.startswith("bad repetition operator") and _POSSESSIVE.fullmatch(operator):
        return "a possessive quantifier"
    return None


def check_pattern(pattern: str, *, ignore_case: bool = False) -> None:
    """Raise PatternError when `pattern` cannot be matched in linear time (or is invalid)."""
    _compile(pattern, ignore_case)


def pattern_matches(pattern: str, value: str, *, search: bool, ignore_case: bool) -> bool:
    """Whether `value` matches: found anywhere (`search`) or as a whole. PatternError if bad.

    Linear in len(value) whatever the pattern, never backtracking: safe to call on the event
    loop for a value that came in one chat message.
    """
    compiled = _compile(pattern, ignore_case)
    try:
        found = compiled.search(value) if search else compiled.fullmatch(value)
    except UnicodeEncodeError:
        return False  # a lone surrogate: not text any pattern is meant to accept
    return found is not None
