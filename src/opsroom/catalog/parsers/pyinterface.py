"""The part of a Python script that declares its interface, for a fast `ast.parse`.

Building the syntax tree is most of the cost of reading a Python script, and most of a
script is the work it does: helper functions that neither define `main()` nor build a
parser. This finds the top-level statements with a few C-speed text searches and blanks the
function and class definitions that cannot matter — none of argparse, click, typer, Enum,
`main` appear in them and nothing kept refers to them — keeping every line in its place, so
line numbers stay exact. Module-level statements are always kept.

It is an optimisation only: when the reduced text does not parse, the whole file is parsed
(and a syntax error is reported where Python reports it). A syntax error inside a function
that was left out shows when the script runs, not at load (issue 10: a file with an error
somewhere still yields what can be read).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator

# Words that make a definition part of the interface.
_INTERFACE_WORDS = (
    "argparse",
    "ArgumentParser",
    "add_argument",
    "add_parser",
    "add_subparsers",
    "parse_args",
    "parse_known_args",
    "click",
    "typer",
    "Typer",
    "Option(",
    "Argument(",
    "Enum",
    "def main",
    # a typer app's or click group's commands: `@app.command()`, `app.command()(greet)`
    ".command(",
    ".callback(",
    ".group(",
)
_INTERFACE = re.compile("|".join(map(re.escape, _INTERFACE_WORDS)))
# A top-level definition, its decorators first: where a chunk that may be left out starts.
# (Matched from the newline before it: a pattern led by a literal is scanned for far faster
# than `^` in MULTILINE mode; the source gets a newline in front.)
_DEFINITION_START = re.compile(r"\n(?:@|(?:async[ \t]+)?def[ \t]|class[ \t])")
# A line that starts a top-level statement: anything at column 0 but blanks, comments and
# the closing brackets of a statement continued over several lines.
_TOP = re.compile(r"\n[^\s#)\]}]")
_CONTINUES = re.compile(r"(?:else|elif|except|finally)\b")
_DEFINITION = re.compile(r"(?:async\s+def|def|class)\s+([A-Za-z_]\w*)")
_MIN_SAVING = 40  # lines: below this, parsing the whole file is as cheap


def _string_spans(source: str) -> tuple[list[int], list[int]]:
    """Starts and ends of triple-quoted strings (a quote inside another string fools it;
    then the reduced text may not parse, and the whole file is parsed instead)."""
    quotes: list[tuple[int, str]] = []
    for quote in ('"""', "'''"):
        at = source.find(quote)
        while at >= 0:
            quotes.append((at, quote))
            at = source.find(quote, at + 3)
    quotes.sort()
    starts: list[int] = []
    ends: list[int] = []
    opened: str | None = None
    for at, quote in quotes:
        if opened is None:
            opened = quote
            starts.append(at)
        elif quote == opened and at >= starts[-1] + 3:
            ends.append(at + 3)
            opened = None
    if opened is not None:
        ends.append(len(source))
    return starts, ends


def _inside_string(pos: int, starts: list[int], ends: list[int]) -> bool:
    i = bisect.bisect_right(starts, pos) - 1
    return i >= 0 and pos < ends[i]


def _definitions(source: str) -> list[tuple[int, int, str]]:
    """(start, end, name) of each top-level function or class, decorators included."""
    starts, ends = _string_spans(source)
    out: list[tuple[int, int, str]] = []
    end = 0
    text = "\n" + source  # positions in `text` are one past those in `source`
    for m in _DEFINITION_START.finditer(text):
        start = m.start()  # the line's start in `source` (the newline's in `text`)
        if start < end or _inside_string(start, starts, ends):
            continue  # inside the previous definition, or text inside a string
        name: str | None = None
        if source[start] != "@":
            own = _DEFINITION.match(source, start)
            if own is None:
                continue
            name = own.group(1)
        end = len(source)
        for top in _TOP.finditer(text, start + 1):
            at = top.start()  # likewise
            if at == start or _inside_string(at, starts, ends):
                continue
            if name is None:  # still in the decorators: the definition line comes next
                if source[at] == "@":
                    continue
                found = _DEFINITION.match(source, at)
                if found is None:
                    break  # a decorator on nothing that defines: keep it all (end stays)
                name = found.group(1)
                continue
            if _CONTINUES.match(source, at):
                continue
            end = at
            break
        if name is None:  # decorators over nothing that defines: not one to leave out
            end = start
            continue
        out.append((start, end, name))
    return out


def _mentions(text: str, name: str) -> Iterator[int]:
    """Where `name` appears in `text` as a whole word."""
    at = text.find(name)
    while at >= 0:
        stop = at + len(name)
        before = text[at - 1] if at else " "
        after = text[stop] if stop < len(text) else " "
        if not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_"):
            yield at
        at = text.find(name, stop)


def interface_source(source: str) -> str | None:
    """The source with the definitions that cannot matter blanked, or None when nothing
    worth leaving out was found.

    A definition matters when it holds one of the interface words, refers to a definition
    that matters (`def setup(p): add_common(p)`), or is named by top-level code
    (`typer.run(greet)`, `sys.exit(run())`).
    """
    if source.count("\n") < _MIN_SAVING:
        return None
    found = _definitions(source)
    if not found:
        return None
    names = {name: i for i, (_, _, name) in enumerate(found)}  # a name defined twice: the last
    matters = {
        i for i, (start, end, _) in enumerate(found) if _INTERFACE.search(source, start, end)
    }
    matters |= {i for i in range(len(found)) if names[found[i][2]] != i}  # shadowed: kept
    if len(matters) == len(found):
        return None
    # Named by top-level code (everything outside the definitions).
    outside = []
    at = 0
    for start, end, _ in found:
        outside.append(source[at:start])
        at = end
    outside.append(source[at:])
    top_level = "\n".join(outside)
    for name, i in names.items():
        if i not in matters and next(_mentions(top_level, name), None) is not None:
            matters.add(i)
    # Refers to a definition that matters: follow each name that matters to where it is used.
    offsets = [start for start, _, _ in found]
    frontier = [found[i][2] for i in matters]
    while frontier:
        for pos in _mentions(source, frontier.pop()):
            k = bisect.bisect_right(offsets, pos) - 1
            if k >= 0 and pos < found[k][1] and k not in matters:
                matters.add(k)
                frontier.append(found[k][2])
    left_out = [found[i] for i in range(len(found)) if i not in matters]
    if sum(source.count("\n", start, end) for start, end, _ in left_out) < _MIN_SAVING // 2:
        return None
    parts: list[str] = []
    at = 0
    for start, end, _ in left_out:
        parts.append(source[at:start])
        parts.append("\n" * source.count("\n", start, end))
        at = end
    parts.append(source[at:])
    return "".join(parts)
