"""Chat text → tokens → a validated Invocation (SPEC §4.1, §4.2). Pure functions, no I/O.

The dispatcher composes them: `normalize` → `strip_trigger` → `tokenize` →
`Registry.lookup` → `bind_arguments`.

Normalisation (`normalize`), because chat clients "improve" what people type:

- Smart quotes become ASCII quotes: ‘ ’ ‚ ‛ ‹ › ＇ → `'` and “ ” „ ‟ « » ＂ → `"`. One
  exception: a ’ between two letters or digits is an apostrophe inside a word (`don’t`), not a
  quote, and is kept — otherwise `!say don’t` would be an unterminated quote.
- Non-breaking and other Unicode spaces (U+00A0, U+1680, U+2000–U+200A, U+202F, U+205F,
  U+3000) become a space; U+2028/U+2029 become a newline.
- Invisible characters clients insert (U+200B zero-width space, U+2060 word joiner, U+FEFF,
  U+180E) are removed. U+200C/U+200D (ZWNJ/ZWJ) are kept: they carry meaning in emoji and
  in Persian or Indic text.
- A long dash (— – ‒ ― or the minus sign −) at the *start of a token, outside quotes*, is what
  a client made of `--`: it becomes `--` (`—force` → `--force`, a lone `—` → `--`), except
  before a digit, where it is a minus sign (`−5` → `-5`). Dashes anywhere else, and every dash
  inside quotes, are left alone.

Tokenising (`tokenize`) follows the POSIX shell's quoting rules and nothing else: no
expansion (`$`, backticks, globs, `~` stay literal), no operators (`;`, `|`, `&&` are ordinary
characters), no `#` comments (`#1234` is a ticket number in chat).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Final, NoReturn, TypeAlias

from opsroom.errors import ParseError
from opsroom.model.commands import (
    CommandSpec,
    Invocation,
    ParamSpec,
    ParamType,
    ParamValue,
    Scalar,
    parse_iso_datetime,
)
from opsroom.model.languages import language_support
from opsroom.model.patterns import PatternError, pattern_matches
from opsroom.router.dates import RELATIVE_FORMS, resolve_relative

__all__ = [
    "MissingParameters",
    "bind_arguments",
    "normalize",
    "strip_trigger",
    "tokenize",
    "usage_line",
]

# --------------------------------------------------------------------------- normalize

_SINGLE_QUOTES: Final = "\u2018\u2019\u201a\u201b\u2039\u203a\uff07"
_DOUBLE_QUOTES: Final = "\u201c\u201d\u201e\u201f\u00ab\u00bb\uff02"
_SPACES: Final = "\u00a0\u1680\u202f\u205f\u3000" + "".join(map(chr, range(0x2000, 0x200B)))
_NEWLINES: Final = "\u2028\u2029"
_INVISIBLE: Final = "\u200b\u2060\ufeff\u180e"
_LONG_DASHES: Final = "\u2014\u2013\u2012\u2015\u2212"
_APOSTROPHE: Final = "\u2019"
_SHELL_SPACE: Final = frozenset(" \t\n\r\f\v")

_CHAR_MAP: Final = str.maketrans(
    {
        **dict.fromkeys(_SINGLE_QUOTES, "'"),
        **dict.fromkeys(_DOUBLE_QUOTES, '"'),
        **dict.fromkeys(_SPACES, " "),
        **dict.fromkeys(_NEWLINES, "\n"),
        **dict.fromkeys(_INVISIBLE, None),
    }
)


def normalize(text: str) -> str:
    """Undo what chat clients do to typed text: smart quotes, odd spaces, long dashes."""
    # Mark in-word apostrophes first so the blanket quote mapping leaves them alone.
    kept = {
        i
        for i, c in enumerate(text)
        if c == _APOSTROPHE
        and 0 < i < len(text) - 1
        and text[i - 1].isalnum()
        and text[i + 1].isalnum()
    }
    if kept:
        parts = [c if i in kept else c.translate(_CHAR_MAP) for i, c in enumerate(text)]
        text = "".join(parts)
    else:
        text = text.translate(_CHAR_MAP)
    if any(d in text for d in _LONG_DASHES):
        text = _fix_leading_dashes(text)
    return text


def _fix_leading_dashes(text: str) -> str:
    """Turn a long dash at the start of an unquoted token into `--` (or `-` before a digit)."""
    out: list[str] = []
    quote: str | None = None
    at_token_start = True
    i = 0
    while i < len(text):
        c = text[i]
        if quote == "'":
            if c == "'":
                quote = None
        elif quote == '"':
            if c == "\\" and i + 1 < len(text):
                out.append(c + text[i + 1])
                i += 2
                continue
            if c == '"':
                quote = None
        elif c == "\\" and i + 1 < len(text):
            out.append(c + text[i + 1])
            at_token_start = False
            i += 2
            continue
        elif c in "'\"":
            quote = c
            at_token_start = False
        elif c in _SHELL_SPACE:
            at_token_start = True
        elif c in _LONG_DASHES and at_token_start:
            nxt = text[i + 1] if i + 1 < len(text) else ""
            out.append("-" if nxt.isdigit() or nxt == "." else "--")
            at_token_start = False
            i += 1
            continue
        else:
            at_token_start = False
        out.append(c)
        i += 1
    return "".join(out)


# --------------------------------------------------------------------------- tokenize

_DQUOTE_ESCAPABLE: Final = frozenset('"\\$`\n')


def tokenize(text: str) -> list[str]:
    """Split text into words like a POSIX shell does, without expanding anything."""
    tokens: list[str] = []
    buf: list[str] = []
    in_word = False
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _SHELL_SPACE:
            if in_word:
                tokens.append("".join(buf))
                buf.clear()
                in_word = False
            i += 1
        elif c == "\\":
            if i + 1 == n:
                # bash keeps a trailing backslash literally; so do we.
                buf.append(c)
                in_word = True
                i += 1
            elif text[i + 1] == "\n":
                i += 2  # line continuation
            else:
                buf.append(text[i + 1])
                in_word = True
                i += 2
        elif c == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise ParseError(_unterminated("'", text, i))
            buf.append(text[i + 1 : end])
            in_word = True
            i = end + 1
        elif c == '"':
            in_word = True
            j = i + 1
            while True:
                if j >= n:
                    raise ParseError(_unterminated('"', text, i))
                d = text[j]
                if d == '"':
                    break
                if d == "\\" and j + 1 < n and text[j + 1] in _DQUOTE_ESCAPABLE:
                    if text[j + 1] != "\n":
                        buf.append(text[j + 1])
                    j += 2
                    continue
                buf.append(d)
                j += 1
            i = j + 1
        else:
            buf.append(c)
            in_word = True
            i += 1
    if in_word:
        tokens.append("".join(buf))
    return tokens


def _unterminated(quote: str, text: str, at: int) -> str:
    """The message for a quote that is never closed, pointing at where it opened."""
    after = text[at + 1 : at + 21]
    more = "…" if len(text) > at + 21 else ""
    return f"unterminated quote: the {quote} before {after!r}{more} is never closed"


# --------------------------------------------------------------------------- trigger


def strip_trigger(
    text: str, *, prefix: str, bot_names: tuple[str, ...], direct: bool
) -> str | None:
    """The message body if the bot is addressed (prefix, mention, or DM), else None.

    `@ops`, `@ops:`, `@ops,`, `ops:` and `ops,` address the bot (case-insensitive); a bare
    `ops` does not, it is too often just a word. A name given with a leading `@` or `<`
    (e.g. Slack's `<@U024BE7LH>`) is matched literally. In a room, a prefix followed by
    a space or nothing (`! oops`) is not a command.
    """
    body = text.lstrip()
    mentioned = _strip_mention(body, bot_names)
    if mentioned is not None:
        rest = mentioned.lstrip()
        if prefix and rest.startswith(prefix):
            rest = rest[len(prefix) :].lstrip()
        return rest.rstrip()
    if prefix and body.startswith(prefix):
        rest = body[len(prefix) :]
        if not direct and (not rest or rest[0].isspace() or rest.startswith(prefix)):
            return None
        return rest.strip()
    if direct:
        return body.rstrip()
    return None


def _strip_mention(body: str, bot_names: tuple[str, ...]) -> str | None:
    """The text after a leading mention of one of `bot_names`, or None."""
    folded = body.casefold()
    for raw in bot_names:
        name = raw.strip()
        if not name:
            continue
        literal = name.startswith(("@", "<"))
        forms = [name] if literal else ["@" + name, name]
        for form in forms:
            if not folded.startswith(form.casefold()):
                continue
            rest = body[len(form) :]
            if rest[:1] in (":", ","):
                return rest[1:]
            needs_punctuation = not literal and not form.startswith("@")
            if not needs_punctuation and (not rest or rest[0].isspace()):
                return rest
    return None


# --------------------------------------------------------------------------- usage

_MAX_CHOICES_SHOWN: Final = 6


def option_name(p: ParamSpec) -> str:
    """How a parameter is written in chat: `--vm-name` for `vm_name`, `--ComputerName`."""
    return "--" + p.name.replace("_", "-")


def _positional_order(spec: CommandSpec) -> list[ParamSpec]:
    """Parameters that take positional values: explicit positions first, then declared order."""
    candidates = [p for p in spec.params if p.type is not ParamType.SWITCH]
    placed = sorted(
        (p for p in candidates if p.position is not None), key=lambda p: p.position or 0
    )
    return placed + [p for p in candidates if p.position is None]


def _choices_text(p: ParamSpec) -> str:
    """`dev|test|prod`, shortened when there are many choices."""
    shown = "|".join(p.choices[:_MAX_CHOICES_SHOWN])
    return shown + ("|…" if len(p.choices) > _MAX_CHOICES_SHOWN else "")


def usage_line(spec: CommandSpec, prefix: str = "!") -> str:
    """One line showing how to call a command: `!net status <site> [--env dev|test]`."""
    parts = [f"{prefix}{spec.name}"]
    switches = [p for p in spec.params if p.type is ParamType.SWITCH]
    for p in _positional_order(spec):
        name = p.name.replace("_", "-")
        dots = "..." if p.multiple else ""
        if p.required:
            inner = f"{name}:{_choices_text(p)}" if p.choices else name
            parts.append(f"<{inner}>{dots}")
        elif p.choices:
            parts.append(f"[{option_name(p)} {_choices_text(p)}]{dots}")
        elif p.type is ParamType.BOOL:
            parts.append(f"[{option_name(p)} true|false]")
        else:
            parts.append(f"[{option_name(p)} <{p.type.value}>]{dots}")
    for p in switches:
        parts.append(option_name(p) if p.required else f"[{option_name(p)}]")
    if spec.dry_run or spec.should_process:
        parts.append("[--dry-run]")
    return " ".join(parts)


# --------------------------------------------------------------------------- binding


class MissingParameters(ParseError):
    """Required parameters were not given; carries what was bound so far (for menus, §5.6)."""

    def __init__(
        self, message: str, *, usage: str, missing: tuple[str, ...], partial: Invocation
    ) -> None:
        super().__init__(message, usage=usage)
        self.missing = missing  # declared parameter names
        self.partial = partial


_BOOL_WORDS: Final = {
    "true": True,
    "yes": True,
    "on": True,
    "1": True,
    "$true": True,
    "false": False,
    "no": False,
    "off": False,
    "0": False,
    "$false": False,
}
_INT_RE: Final = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ASSIGN_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_COMMA_RE: Final = re.compile(r"(?<!\\),")
_DRY_RUN: Final = "dry-run"  # stands for the built-in --dry-run/--whatif switch
_DRY_RUN_KEYS: Final = ("dryrun", "whatif")

_Target: TypeAlias = ParamSpec | str  # a parameter, or _DRY_RUN


def _primary_key(name: str) -> str:
    """Case-insensitive, `-` and `_` equivalent."""
    return name.casefold().replace("_", "-")


def _loose_key(name: str) -> str:
    """Also ignores separators, so `--vm-name` finds PowerShell's `VMName`."""
    return name.casefold().replace("_", "").replace("-", "")


def _quote(value: str) -> str:
    """A value as shown in an error: repr-quoted, a long one cut and its length said."""
    if len(value) <= 60:
        return repr(value)
    return f"{value[:57]!r}… ({len(value):,} characters)"


class _Binder:
    """One binding of tokens to one command spec."""

    def __init__(self, spec: CommandSpec, prefix: str = "!", now: datetime | None = None) -> None:
        self.spec = spec
        self.now = now
        self.usage = usage_line(spec, prefix)
        self.entries: list[tuple[str, str, ParamSpec]] = [
            (_primary_key(label), _loose_key(label), p)
            for p in spec.params
            for label in (p.name, *p.aliases)
        ]
        declared = {loose for _, loose, _ in self.entries}
        self.dry_keys = tuple(k for k in _DRY_RUN_KEYS if k not in declared)

    def fail(self, message: str) -> NoReturn:
        """Raise a ParseError carrying the usage line."""
        raise ParseError(message, usage=self.usage)

    def _unique(self, hits: Sequence[ParamSpec], shown: str) -> ParamSpec | None:
        """The one parameter among hits; an error when they are several distinct ones."""
        distinct = list(dict.fromkeys(hits))
        if len(distinct) > 1:
            names = ", ".join(option_name(p) for p in distinct)
            self.fail(f"{shown} is ambiguous: it could be {names}")
        return distinct[0] if distinct else None

    def exact(self, name: str, shown: str) -> ParamSpec | None:
        """The parameter (or alias) called exactly `name`, ignoring case and separators."""
        primary, loose = _primary_key(name), _loose_key(name)
        hit = self._unique([p for k, _, p in self.entries if k == primary], shown)
        if hit is None:
            hit = self._unique([p for _, k, p in self.entries if k == loose], shown)
        return hit

    def find(self, name: str, shown: str) -> _Target | None:
        """Resolve an option name: exact, then the built-in dry-run, then a unique prefix."""
        hit = self.exact(name, shown)
        if hit is not None:
            return hit
        loose = _loose_key(name)
        if not loose:
            return None
        if loose in self.dry_keys:
            return _DRY_RUN
        hit = self._unique([p for _, k, p in self.entries if k.startswith(loose)], shown)
        if hit is not None:
            return hit
        if len(loose) >= 3 and any(k.startswith(loose) for k in self.dry_keys):
            return _DRY_RUN
        return None

    def unknown(self, shown: str, name: str, *, dash_value: bool) -> NoReturn:
        """Fail for an unknown option, with did-you-mean and a hint for dash-values."""
        labels = {
            _loose_key(lbl): option_name(p)
            for p in self.spec.params
            for lbl in (p.name, *p.aliases)
        }
        close = difflib.get_close_matches(_loose_key(name), list(labels), n=3, cutoff=0.6)
        message = f"unknown parameter {shown}"
        if close:
            message += (
                " — did you mean " + " or ".join(dict.fromkeys(labels[c] for c in close)) + "?"
            )
        elif not self.spec.params:
            message += f" (`{self.spec.name}` takes no parameters)"
        if dash_value:
            message += (
                " (to pass a value starting with '-', write --name=-value or put it after --)"
            )
        self.fail(message)


def _parse_bool(raw: str) -> bool | None:
    """true/false, yes/no, on/off, 1/0, $true/$false — or None."""
    return _BOOL_WORDS.get(raw.strip().casefold())


def bind_arguments(
    spec: CommandSpec,
    tokens: list[str],
    *,
    text: str = "",
    prefix: str = "!",
    now: datetime | None = None,
) -> Invocation:
    """Bind tokens to the spec's parameters, converting and validating every value.

    Only values the user gave are in `Invocation.params` (scripts apply their own defaults).
    Relative dates (`tomorrow`, `+14d`) resolve against `now` (default: the host's clock).
    Raises ParseError (MissingParameters for missing required ones) with the usage line.
    """
    b = _Binder(spec, prefix, now)
    raw: dict[str, list[str]] = {}  # declared name -> raw values, in the order given
    flags: dict[str, bool] = {}  # switch and bool values decided while scanning
    positional: list[str] = []
    dry_run = False
    options_ended = False

    def once(p: ParamSpec) -> None:
        # A scalar given twice is almost always a mistake; arrays collect values instead.
        if not p.multiple and (p.name in raw or p.name in flags):
            b.fail(f"{option_name(p)} was given more than once")

    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if options_ended:
            positional.append(tok)
            continue
        if tok == "--":
            options_ended = True
            continue

        inline: str | None
        if tok.startswith("--"):
            name, sep, value = tok[2:].partition("=")
            inline = value if sep else None
            shown = "--" + name
        elif tok.startswith("-") and len(tok) > 1:
            m = re.match(r"[^:=]*", tok[1:])
            name = m.group(0) if m else ""
            rest = tok[1 + len(name) :]
            inline = rest[1:] if rest else None
            shown = "-" + name
            if _FLOAT_RE.fullmatch(tok) and b.find(name, shown) is None:
                positional.append(tok)  # a negative number, not an option
                continue
        else:
            name, sep, value = tok.partition("=")
            if sep and _ASSIGN_NAME_RE.fullmatch(name):
                assigned = b.exact(name, name)
                if assigned is not None:
                    once(assigned)
                    _take(b, assigned, value, "--" + name, raw, flags)
                    continue
            positional.append(tok)
            continue

        negated = False
        target = b.find(name, shown)
        if target is None:
            key = _primary_key(name)
            if key.startswith("no-"):
                base = b.find(name[3:], shown)
                if base == _DRY_RUN or (
                    isinstance(base, ParamSpec) and base.type in (ParamType.SWITCH, ParamType.BOOL)
                ):
                    target, negated = base, True
            if target is None:
                b.unknown(shown, name, dash_value=not tok.startswith("--"))

        if negated and inline is not None:
            b.fail(f"{shown} takes no value")

        if isinstance(target, str):  # the built-in dry-run switch
            dry_run = not negated and _flag_value(b, shown, inline)
            continue

        p = target
        once(p)
        if p.type is ParamType.SWITCH:
            flags[p.name] = not negated and _flag_value(b, shown, inline)
        elif p.type is ParamType.BOOL and (negated or inline is None):
            # A bool works as a flag, and also takes a following true/false word.
            if negated:
                flags[p.name] = False
            elif i < len(tokens) and (word := _parse_bool(tokens[i])) is not None:
                flags[p.name] = word
                i += 1
            else:
                flags[p.name] = True
        else:
            if inline is None:
                if i >= len(tokens):
                    b.fail(f"{option_name(p)} needs a value")
                inline = tokens[i]
                i += 1
            _take(b, p, inline, option_name(p), raw, flags)

    _assign_positionals(b, positional, raw, flags)

    params: dict[str, ParamValue] = {}
    for p in spec.params:
        if p.name in flags:
            params[p.name] = flags[p.name]
        elif p.name in raw:
            values = tuple(_convert(b, p, v) for v in raw[p.name])
            params[p.name] = values if p.multiple else values[0]

    _check_exclusive(b, params, required=False)
    invocation = Invocation(
        command=spec.name, params=MappingProxyType(params), dry_run=dry_run, text=text
    )
    missing = tuple(p.name for p in spec.params if p.required and p.name not in params)
    if missing:
        names = ", ".join(option_name(p) for p in spec.params if p.name in missing)
        plural = "s" if len(missing) > 1 else ""
        raise MissingParameters(
            f"missing required parameter{plural} {names}",
            usage=b.usage,
            missing=missing,
            partial=invocation,
        )
    _check_exclusive(b, params, required=True)
    return invocation


def _check_exclusive(b: _Binder, params: dict[str, ParamValue], *, required: bool) -> None:
    """At most one parameter of each exclusive group (argparse's mutually exclusive groups);
    with `required`, also at least one of a group that needs one."""
    for group in b.spec.exclusive:
        members = [p for p in b.spec.params if p.name in group.names]
        # a switch turned off (`--no-json`) is as good as not given: nothing reaches the script
        given = [p for p in members if p.name in params and params[p.name] is not False]
        shown = [option_name(p) for p in members]
        if not required and len(given) > 1:
            both = " and ".join(option_name(p) for p in given)
            b.fail(f"{both} cannot be used together (only one of {', '.join(shown)})")
        if required and group.required and not given:
            b.fail(f"one of {', '.join(shown)} is required")


def _flag_value(b: _Binder, shown: str, inline: str | None) -> bool:
    """A switch is true when present; `--force=false` or `-Force:$false` turn it off."""
    if inline is None:
        return True
    value = _parse_bool(inline)
    if value is None:
        b.fail(f"{shown}: {_quote(inline)} is not true or false")
    return value


def _take(
    b: _Binder,
    p: ParamSpec,
    value: str,
    shown: str,
    raw: dict[str, list[str]],
    flags: dict[str, bool],
) -> None:
    """Record one value given by name; arrays also split on unescaped commas."""
    if p.type is ParamType.SWITCH or (p.type is ParamType.BOOL and not p.multiple):
        flags[p.name] = _flag_value(b, shown, value)
        return
    raw.setdefault(p.name, []).extend(_split_items(b, p, value))


def _split_items(b: _Binder, p: ParamSpec, value: str) -> list[str]:
    """`a,b` → [a, b] for arrays; `\\,` is a literal comma; one value otherwise."""
    if not p.multiple:
        return [value]
    if "," not in value:
        return [value]
    items = [part.replace("\\,", ",").strip() for part in _COMMA_RE.split(value)]
    items = [item for item in items if item]
    if not items:
        b.fail(f"{option_name(p)}: {_quote(value)} holds no values")
    return items


def _assign_positionals(
    b: _Binder, values: list[str], raw: dict[str, list[str]], flags: dict[str, bool]
) -> None:
    """Give positional values to parameters not named, in positional order.

    An array parameter takes all remaining values when it is the last open positional
    parameter, otherwise one value (commas give it more).
    """
    open_params = [
        p for p in _positional_order(b.spec) if p.name not in raw and p.name not in flags
    ]
    if b.spec.cli_words is not None:
        # argparse/click/typer: an option is named in chat, as on the script's command line,
        # so `tool web1 vol1 vol2` fills the positionals and a list takes what is left
        open_params = [p for p in open_params if p.position is not None]
    at = 0
    for k, p in enumerate(open_params):
        if at >= len(values):
            return
        take = len(values) - at if p.multiple and k == len(open_params) - 1 else 1
        for value in values[at : at + take]:
            _take(b, p, value, option_name(p), raw, flags)
        at += take
    if at < len(values):
        # A few quoted, the rest counted: 10,000 stray words get one short answer.
        left = values[at:]
        extra = ", ".join(_quote(v) for v in left[:3])
        if len(left) > 3:
            extra += f" and {len(left) - 3:,} more"
        takes = len(_positional_order(b.spec))
        if takes == 0:
            b.fail(f"unexpected value {extra}: `{b.spec.name}` takes no positional values")
        b.fail(f"too many values: {extra} left over (every parameter already has its value)")


def _convert(b: _Binder, p: ParamSpec, value: str) -> Scalar:
    """Check one raw value against the spec and convert it to the parameter's type."""
    shown = option_name(p)
    if p.choices:
        folded = value.casefold()
        match = next((c for c in p.choices if c.casefold() == folded), None)
        if match is None:
            b.fail(f"{shown}: {_quote(value)} is not one of {', '.join(p.choices)}")
        value = match

    result: Scalar
    if p.type is ParamType.INT:
        if not _INT_RE.fullmatch(value.strip()):
            b.fail(f"{shown}: {_quote(value)} is not a whole number")
        try:
            result = int(value.strip())
        except ValueError:  # more digits than Python converts (sys.int_info)
            b.fail(f"{shown}: {_quote(value)} has too many digits")
    elif p.type is ParamType.FLOAT:
        if not _FLOAT_RE.fullmatch(value.strip()):
            b.fail(f"{shown}: {_quote(value)} is not a number")
        result = float(value.strip())
    elif p.type in (ParamType.BOOL, ParamType.SWITCH):
        flag = _parse_bool(value)
        if flag is None:
            b.fail(f"{shown}: {_quote(value)} is not true or false")
        result = flag
    elif p.type is ParamType.DATETIME:
        try:
            relative = resolve_relative(value, b.now or datetime.now().astimezone())
            result = (relative or parse_iso_datetime(value)).isoformat()
        except (ValueError, OverflowError):
            b.fail(
                f"{shown}: {_quote(value)} is not a date or time: use ISO 8601"
                f" (2024-05-01, 2024-05-01T14:30) or {RELATIVE_FORMS}"
            )
    else:
        result = value

    if p.range is not None and isinstance(result, int | float) and not isinstance(result, bool):
        _check_range(b, shown, result, p.range)
    if p.pattern is not None:
        support = language_support(b.spec.language)
        search = support is not None and support.pattern_search
        _check_pattern(b, shown, value, p.pattern, search=search)
    if p.length is not None:
        _check_length(b, shown, value, p.length)
    return result


def _number(x: float) -> str:
    """1.0 → `1`, 2.5 → `2.5`."""
    return str(int(x)) if float(x).is_integer() else str(x)


def _check_range(
    b: _Binder, shown: str, value: float, bounds: tuple[float | None, float | None]
) -> None:
    """Fail when value lies outside the inclusive range."""
    lo, hi = bounds
    if (lo is None or value >= lo) and (hi is None or value <= hi):
        return
    if lo is not None and hi is not None:
        b.fail(f"{shown}: {_number(value)} is not between {_number(lo)} and {_number(hi)}")
    if lo is not None:
        b.fail(f"{shown}: {_number(value)} is less than {_number(lo)}")
    b.fail(f"{shown}: {_number(value)} is more than {_number(hi or 0)}")


def _check_pattern(b: _Binder, shown: str, value: str, pattern: str, *, search: bool) -> None:
    """Match like the script's own language would, in time linear in the value (RE2).

    `search` (the language record's `pattern_search`): PowerShell's [ValidatePattern()] is
    `-match`, a case-insensitive search, so the pattern's own anchors decide. Everywhere else
    a pattern must match the whole value (case-sensitive) — what people mean by a pattern in
    argc or a sidecar.
    """
    # This runs on the event loop, and may: RE2 never backtracks, so the time is linear in
    # the value whatever the pattern, and a value is bounded by the one message it came in.
    # A 50 KB value against `(a+)+$` takes a fraction of a millisecond; see
    # bench/bench_patterns.py for the rare pattern shapes that cost more (model/patterns.py).
    try:
        ok = pattern_matches(pattern, value, search=search, ignore_case=search)
    except PatternError:
        b.fail(f"{shown}: the command's pattern {pattern!r} is invalid; ask its owner to fix it")
    if not ok:
        b.fail(f"{shown}: {_quote(value)} does not match the pattern {pattern}")


def _check_length(
    b: _Binder, shown: str, value: str, bounds: tuple[int | None, int | None]
) -> None:
    """Fail when the value has fewer or more characters than allowed."""
    lo, hi = bounds
    if lo is not None and len(value) < lo:
        b.fail(f"{shown}: {_quote(value)} is too short (at least {lo} characters)")
    if hi is not None and len(value) > hi:
        b.fail(f"{shown}: {_quote(value)} is too long (at most {hi} characters)")
