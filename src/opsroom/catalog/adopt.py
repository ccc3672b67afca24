"""`opsroom catalog adopt FILE`: a first sidecar for a shell script that reads its own options.

A script written before opsroom parses its arguments itself — a `getopts` loop, a
`case "$1" in -f|--file)` loop, a `usage()` text — and declares nothing opsroom can read
(SPEC §3.10). This reads what it can, statically (nothing in the script runs): getopts
letters and whether they take a value, the variables the `case` arms set, the option lines
and synopsis of the usage text, the header comment. It writes a sidecar (SPEC §3.6) with
`argv` set, so the runner passes the values as the script expects them, and TODO comments
where a person has to decide (types, required, help). Pure: text in, text out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from opsroom.catalog.parsers.shell import own_options_line
from opsroom.model.commands import ArgvStyle

_GETOPTS = re.compile(
    r"""^[^#\n]*\bgetopts[ \t]+(?P<q>["']?)(?P<spec>[^"'\s]+)(?P=q)[ \t]+(?P<var>[A-Za-z_]\w*)""",
    re.MULTILINE,
)
_USAGE_START = re.compile(r"^[ \t]*(?:function[ \t]+usage\b|usage[ \t]*\([ \t]*\))", re.MULTILINE)
_CASE = re.compile(r"\bcase[ \t]+\"?\$\{?(?P<var>1|[A-Za-z_]\w*)\}?\"?[ \t]+in\b")
_WORD = re.compile(r"\b(case|esac)\b")
_ASSIGN = re.compile(r"(?<![\w$])(?P<var>[A-Za-z_]\w*)(?P<plus>\+?)=(?P<value>\S*)")
_HEREDOC = re.compile(r"<<-?[ \t]*[\"']?(?P<end>\w+)[\"']?")
_ECHO = re.compile(r"""\b(?:echo|printf)\b(?:[ \t]+-[neE]+)*[ \t]+(?P<q>["'])(?P<text>.*?)(?P=q)""")
# `-f, --file FILE   What it is` in a usage text or a header comment.
_OPTION_HELP = re.compile(
    r"""^[ \t]*(?:-(?P<letter>[A-Za-z0-9])(?![\w-]))?
    (?:[ \t]*[,|/]?[ \t]*--(?P<long>[A-Za-z0-9][\w-]*))?
    (?:(?:[ \t]+|=)(?P<meta><[^>]*>|\[[^\]]*\]|\{[^}]*\}|[A-Z][A-Z0-9_]*))?
    (?:[ \t]*:[ \t]+|[ \t]+-{1,2}[ \t]+|[ \t]{2,}|\t[ \t]*)(?P<help>\S.*?)[ \t]*$""",
    re.VERBOSE,
)
_SYNOPSIS_TOKEN = re.compile(r"\[[^\]]*\]|\{[^}]*\}|<[^>]*>(?:\.\.\.)?|\S+")
_HELP_ARMS = frozenset({"h", "?", "help", "usage"})
_SKIP_HEADER = re.compile(
    r"^(?:opsroom:|shellcheck\b|-\*-|vim?:|usage\b|author\b|copyright\b|license\b|"
    r"spdx-|@|[-=#*~_ ]*$)",
    re.IGNORECASE,
)
_NAME_PREFIX = re.compile(r"^[\w.-]+\.sh[ \t]+[-:–—][ \t]+")


@dataclass(frozen=True, slots=True)
class Option:
    """One option the script reads: `-f`, `--file`, or both."""

    name: str
    letter: str | None
    long: str | None
    takes_value: bool
    multiple: bool = False
    help: str = ""
    line: int = 0
    todo: str = ""


@dataclass(frozen=True, slots=True)
class Positional:
    """One positional argument named in the usage synopsis."""

    name: str
    required: bool
    multiple: bool = False
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Adoption:
    """What `catalog adopt` inferred from one shell script."""

    summary: str = ""
    summary_line: int = 0
    sources: tuple[str, ...] = ()  # what it was read from, for people
    options: tuple[Option, ...] = ()
    positionals: tuple[Positional, ...] = ()
    argv_style: ArgvStyle | None = None
    skipped: tuple[str, ...] = ()  # options seen but left out, and why


def _strip_comment(line: str) -> str:
    return re.sub(r"^[ \t]*#+[ \t]?", "", line).rstrip()


def _summary(lines: list[str]) -> tuple[str, int]:
    """The first meaningful line of the header comment (after the shebang)."""
    for i, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        if i == 1 and stripped.startswith("#!"):
            continue
        if not stripped:
            continue
        if not stripped.startswith("#"):
            break
        text = _strip_comment(raw).strip()
        if not text or _SKIP_HEADER.match(text):
            continue
        text = re.sub(r"^(?:description|summary|purpose)[ \t]*:[ \t]*", "", text, flags=re.I)
        return _NAME_PREFIX.sub("", text).strip(), i
    return "", 0


def _block_end(lines: list[str], start: int) -> int:
    """Index of the line closing the `{ ... }` body that opens at `lines[start]` or after."""
    depth = 0
    opened = False
    for i in range(start, len(lines)):
        depth += lines[i].count("{") - lines[i].count("}")
        opened = opened or "{" in lines[i]
        if opened and depth <= 0:
            return i
    return len(lines) - 1


def _text_lines(lines: list[str]) -> list[str]:
    """What a block of shell prints: heredoc lines as they are, echo/printf strings."""
    out: list[str] = []
    end: str | None = None
    for raw in lines:
        if end is not None:
            if raw.strip() == end:
                end = None
            else:
                out.append(raw.rstrip())
            continue
        if (heredoc := _HEREDOC.search(raw)) is not None:
            end = heredoc.group("end")
            continue
        for echo in _ECHO.finditer(raw):
            text = echo.group("text").replace("\\t", "    ").replace("\\n", "\n")
            out.extend(t.rstrip() for t in text.split("\n"))
    return out


def _usage_lines(source: str, lines: list[str]) -> tuple[list[str], int]:
    """The usage() text (and its line), plus the header comment's lines."""
    header = []
    for raw in lines:
        if raw.strip().startswith("#") or not raw.strip():
            header.append(_strip_comment(raw))
        else:
            break
    m = _USAGE_START.search(source)
    if m is None:
        return header, 0
    start = source.count("\n", 0, m.start())
    body = lines[start : _block_end(lines, start) + 1]
    return [*_text_lines(body), *header], start + 1


def _option_help(text: list[str]) -> dict[str, str]:
    """`-f` / `--file` → its help, from option lines of the usage text."""
    found: dict[str, str] = {}
    for line in text:
        m = _OPTION_HELP.match(line)
        if m is None or not (m.group("letter") or m.group("long")):
            continue
        help_text = m.group("help").strip().strip("\"'").strip()
        letter, long = m.group("letter"), m.group("long")
        for key in (letter and f"-{letter}", long and f"--{long}"):
            if key and help_text:
                found.setdefault(key, help_text)
    return found


def _case_arms(source: str, start: int) -> list[tuple[list[str], str, int]]:
    """The arms of the `case` whose `in` ends at `start`: (patterns, body, line)."""
    depth = 1
    end = len(source)
    for w in _WORD.finditer(source, start):
        depth += 1 if w.group(1) == "case" else -1
        if depth == 0:
            end = w.start()
            break
    arms = []
    pos = start
    for chunk in re.split(r"(;;&?|;&)", source[start:end]):
        # comment lines blanked (newlines kept, so line numbers hold)
        clean = re.sub(r"(?m)^[ \t]*#.*$", "", chunk)
        m = re.match(r"\s*\(?(?P<pat>[^()\n;]*?)\)(?P<body>.*)", clean, re.DOTALL)
        if m is not None:
            line = source.count("\n", 0, pos) + clean.count("\n", 0, m.start("pat")) + 1
            pats = [p.strip().strip("\"'").replace("\\", "") for p in m.group("pat").split("|")]
            arms.append(([p for p in pats if p], m.group("body"), line))
        pos += len(chunk)
    return arms


def _assignment(body: str, value_marks: tuple[str, ...]) -> tuple[str | None, bool]:
    """The variable an arm sets (preferring one set from the value) and whether it appends."""
    first: tuple[str | None, bool] = (None, False)
    for m in _ASSIGN.finditer(body):
        var = m.group("var")
        if var in ("OPTIND", "OPTARG", "IFS"):
            continue
        appends = bool(m.group("plus")) or m.group("value").startswith("(")
        if any(mark in m.group("value") for mark in value_marks):
            return var, appends
        if first[0] is None:
            first = (var, appends)
    return first


def _is_help_arm(patterns: list[str], body: str, var: str | None) -> bool:
    """An arm that shows help (`-h|--help) usage ;;`) rather than setting anything."""
    if var is not None:
        return False
    names = {p.lstrip("-") for p in patterns}
    return bool(names & _HELP_ARMS) or re.search(r"\b(usage|help)\b", body) is not None


class _Names:
    """Parameter names, unique as chat compares them (case-insensitively)."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def pick(self, *candidates: str | None) -> str | None:
        for c in candidates:
            if not c:
                continue
            name = re.sub(r"[^a-z0-9_-]+", "_", c.lower()).strip("_-")
            if name and name[0].isalpha() and name not in self.taken:
                return name
        return None

    def claim(self, *words: str) -> bool:
        lowered = {w.lower() for w in words}
        if lowered & self.taken:
            return False
        self.taken |= lowered
        return True


def _getopts_options(
    source: str, spec: str, var: str, after: int, helps: dict[str, str], skipped: list[str]
) -> list[Option]:
    letters: list[tuple[str, bool]] = []
    body = spec.lstrip(":")
    for i, ch in enumerate(body):
        if ch.isalnum():
            letters.append((ch, body[i + 1 : i + 2] == ":"))
    arms: dict[str, tuple[str, int]] = {}
    for case in _CASE.finditer(source, after):
        if case.group("var") == var:
            for patterns, arm_body, line in _case_arms(source, case.end()):
                for p in patterns:
                    arms.setdefault(p, (arm_body, line))
            break
    names = _Names()
    out = []
    for letter, takes_value in letters:
        arm_body, line = arms.get(letter, ("", 0))
        variable, appends = _assignment(arm_body, ("OPTARG",))
        if _is_help_arm([letter], arm_body, variable):
            skipped.append(f"-{letter}: shows the usage text")
            continue
        name = names.pick(variable, letter)
        words = [w for w in {name, letter} if w]
        if name is None or not names.claim(*words):
            skipped.append(
                f"-{letter}: clashes with another option (chat names ignore case); add it by hand"
            )
            continue
        out.append(
            Option(
                name=name,
                letter=letter,
                long=None,
                takes_value=takes_value,
                multiple=appends and takes_value,
                help=helps.get(f"-{letter}", ""),
                line=line,
            )
        )
    return out


def _loop_options(
    source: str, helps: dict[str, str], skipped: list[str]
) -> tuple[list[Option], ArgvStyle | None, int]:
    """Options of a `while ...; do case "$1" in -f|--file) ...` loop."""
    for case in _CASE.finditer(source):
        arms = [
            (pats, body, line)
            for pats, body, line in _case_arms(source, case.end())
            if any(re.match(r"^--?[A-Za-z]", p) for p in pats)
        ]
        if not arms:
            continue
        names = _Names()
        out = []
        for pats, body, line in arms:
            letter = next((p[1] for p in pats if re.fullmatch(r"-[A-Za-z0-9]", p)), None)
            longs = [p[2:] for p in pats if re.fullmatch(r"--[A-Za-z0-9][\w-]*", p)]
            eq_only = [p[2:-2] for p in pats if re.fullmatch(r"--[A-Za-z0-9][\w-]*=\*", p)]
            long = longs[0] if longs else (eq_only[0] if eq_only else None)
            takes_value = bool(
                re.search(r"\$\{?2\b|\bshift[ \t]+2\b", body) or (eq_only and not longs)
            )
            variable, appends = _assignment(body, ("$2", "${2", "#*="))
            label = "|".join(pats)
            if _is_help_arm(pats, body, variable):
                skipped.append(f"{label}: shows the usage text")
                continue
            if letter is None and long is None:
                continue
            name = names.pick(long, variable, letter)
            words = [w for w in {name, letter} if w]
            if name is None or not names.claim(*words):
                skipped.append(f"{label}: clashes with another option (chat names ignore case)")
                continue
            todo = ""
            if eq_only and not longs:
                todo = f"the script reads --{long}=VALUE; opsroom passes --{long} VALUE"
            out.append(
                Option(
                    name=name,
                    letter=letter,
                    long=long,
                    takes_value=takes_value,
                    multiple=appends and takes_value,
                    help=helps.get(f"--{long}", "") or helps.get(f"-{letter}", ""),
                    line=line,
                    todo=todo,
                )
            )
        if all(o.long for o in out):
            style = ArgvStyle.LONG
        elif all(o.letter for o in out):
            style = ArgvStyle.GETOPTS
        else:
            style = ArgvStyle.LONG
            out = [
                o
                if o.long
                else Option(
                    o.name,
                    o.letter,
                    None,
                    o.takes_value,
                    o.multiple,
                    o.help,
                    o.line,
                    f"the script knows only -{o.letter}; opsroom passes --{o.name}",
                )
                for o in out
            ]
        return out, style, source.count("\n", 0, case.start()) + 1
    return [], None, 0


def _positionals(text: list[str], options: list[Option]) -> list[Positional]:
    """Positional arguments from the first `usage: prog [-v] [-f FILE] HOST [NAME...]` line."""
    line = next((t for t in text if re.search(r"usage:", t, re.I)), None)
    if line is None:
        return []
    synopsis = line[re.search(r"usage:", line, re.I).end() :].strip()  # type: ignore[union-attr]
    program_was_variable = synopsis.startswith(("$", "`"))
    synopsis = re.sub(r"\$\([^)]*\)|`[^`]*`|\$\{[^}]*\}|\$\w+|[\"']", " ", synopsis)
    tokens = _SYNOPSIS_TOKEN.findall(synopsis)
    if tokens and not program_was_variable:
        tokens = tokens[1:]  # the program's own name
    valued = {f"-{o.letter}" for o in options if o.takes_value and o.letter}
    valued |= {f"--{o.long}" for o in options if o.takes_value and o.long}
    out: list[Positional] = []
    names = _Names()
    for o in options:
        names.claim(*(w for w in (o.name, o.letter) if w))
    skip_next = False
    for token in tokens:
        if skip_next:
            skip_next = False
            continue
        if token.startswith("-"):
            skip_next = token.split("=", 1)[0] in valued and "=" not in token
            continue
        optional = token.startswith("[") and token.endswith("]")
        inner = token[1:-1].strip() if optional else token
        if inner.startswith("-") or inner.upper().rstrip(".") in ("OPTIONS", "OPTION"):
            continue
        multiple = inner.endswith("...")
        inner = inner.rstrip(".").strip()
        choices: tuple[str, ...] = ()
        if inner.startswith("{") or "|" in inner:
            choices = tuple(c for c in re.split(r"[|{}()]", inner) if c.strip())
            raw_name = "action"
        elif inner.startswith("<") and inner.endswith(">"):
            raw_name = inner[1:-1]
        elif re.fullmatch(r"[A-Z][A-Z0-9_-]*", inner):
            raw_name = inner
        else:
            continue  # a literal word of the synopsis
        name = names.pick(raw_name)
        if name is None or not names.claim(name):
            continue
        out.append(Positional(name, required=not optional, multiple=multiple, choices=choices))
    # only the last positional can take several values
    return [
        p if i == len(out) - 1 else Positional(p.name, p.required, False, p.choices)
        for i, p in enumerate(out)
    ]


def infer_shell(source: str) -> Adoption:
    """Read a shell script's own option handling into an Adoption (never runs anything)."""
    lines = source.splitlines()
    summary, summary_line = _summary(lines)
    usage_text, usage_line = _usage_lines(source, lines)
    helps = _option_help(usage_text)
    sources: list[str] = []
    skipped: list[str] = []
    options: list[Option] = []
    style: ArgvStyle | None = None
    getopts = _GETOPTS.search(source)
    if getopts is not None:
        line = source.count("\n", 0, getopts.start()) + 1
        sources.append(f'getopts "{getopts.group("spec")}" (line {line})')
        options = _getopts_options(
            source, getopts.group("spec"), getopts.group("var"), getopts.end(), helps, skipped
        )
        style = ArgvStyle.GETOPTS
    else:
        options, style, line = _loop_options(source, helps, skipped)
        if line:
            sources.append(f'the option loop `case "$1"` (line {line})')
    if usage_line:
        sources.append(f"usage() (line {usage_line})")
    if summary_line:
        sources.append(f"the header comment (line {summary_line})")
    positionals = _positionals(usage_text, options)
    if positionals and style is None:
        style = ArgvStyle.LONG
    return Adoption(
        summary=summary,
        summary_line=summary_line,
        sources=tuple(sources),
        options=tuple(options),
        positionals=tuple(positionals),
        argv_style=style,
        skipped=tuple(skipped),
    )


def reads_own_options(source: str) -> bool:
    """Whether the script parses its own arguments (what `catalog adopt` is for)."""
    return own_options_line(source) is not None


def _toml(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes).
    return json.dumps(value, ensure_ascii=False)


def sidecar_text(adoption: Adoption, script: str) -> str:
    """The sidecar for `script` (its file name), with TODOs where a person must decide."""
    a = adoption
    out = [
        f"# Sidecar for {script}, written by `opsroom catalog adopt` from "
        + (", ".join(a.sources) if a.sources else "what little the script shows")
        + ".",
        "# Finish the TODOs, then run `opsroom catalog check`. Keys: docs/adopting.md.",
        "",
    ]
    if a.summary:
        out += [
            "# TODO: check the summary (the one line chat help shows).",
            f"summary = {_toml(a.summary)}",
        ]
    else:
        out += [
            "# TODO: one line saying what the command does (chat help shows it).",
            '# summary = ""',
        ]
    if a.argv_style is not None:
        how = {
            ArgvStyle.GETOPTS: "-x VALUE, a flag as -x",
            ArgvStyle.LONG: "--name VALUE, a flag as --name",
        }[a.argv_style]
        out += [
            f"# opsroom passes the values on the command line: {how}, then the positionals.",
            f"argv = {_toml(a.argv_style.value)}",
        ]
    for o in a.options:
        seen = " ".join(w for w in (o.letter and f"-{o.letter}", o.long and f"--{o.long}") if w)
        kind = "takes a value" if o.takes_value else "a flag"
        out += [
            "",
            f"[params.{o.name}]",
            f"# {seen}: {kind}" + (f" (line {o.line})" if o.line else ""),
        ]
        if o.todo:
            out.append(f"# TODO: {o.todo}")
        aliases = [w for w in (o.letter,) if w and w != o.name]
        if aliases:
            out.append(f"aliases = [{', '.join(_toml(w) for w in aliases)}]")
        if o.takes_value:
            label = "string[]" if o.multiple else "string"
            out.append(f'type = "{label}"  # TODO: "int", "float" or "datetime" if it is one')
            out.append("# required = true  # TODO: uncomment if the script cannot run without it")
        else:
            out.append('type = "switch"')
        if o.help:
            out.append(f"help = {_toml(o.help)}")
        else:
            out.append('# help = ""  # TODO: what it does (no usage line mentions it)')
    for i, p in enumerate(a.positionals):
        out += ["", f"[params.{p.name}]", "# from the usage synopsis: a positional argument"]
        out.append(f"position = {i}")
        label = "string[]" if p.multiple else "string"
        out.append(f'type = "{label}"  # TODO: "int", "float" or "datetime" if it is one')
        out.append(f"required = {'true' if p.required else 'false'}")
        if p.choices:
            out.append(f"choices = [{', '.join(_toml(c) for c in p.choices)}]")
        out.append('# help = ""  # TODO: what it is')
    if a.skipped:
        out += ["", "# Left out:"] + [f"#   {s}" for s in a.skipped]
    return "\n".join(out) + "\n"


_SHELLS = re.compile(r"^#![ \t]*\S*?(?:/env[ \t]+)?\b(?:ba|da|k|z)?sh\b")


def is_shell_script(filename: str, source: str) -> bool:
    """A `.sh` file, or one whose `#!` line names a POSIX-style shell."""
    return filename.lower().endswith(".sh") or _SHELLS.match(source) is not None


def describe(adoption: Adoption, script: str) -> list[str]:
    """What was inferred, for the person who runs `catalog adopt`."""
    a = adoption
    out = [f"read {script}: " + (", ".join(a.sources) if a.sources else "no option handling")]
    out.append(f"summary: {a.summary}" if a.summary else "summary: none found (TODO)")
    if a.argv_style is not None:
        out.append(f'argv = "{a.argv_style.value}"')
    rows = []
    for o in a.options:
        spelled = ", ".join(w for w in (o.letter and f"-{o.letter}", o.long and f"--{o.long}") if w)
        kind = ("values" if o.multiple else "value") if o.takes_value else "flag"
        rows.append((spelled, o.name, kind, o.help or "(no help found)"))
    for i, p in enumerate(a.positionals):
        kind = "required" if p.required else "optional"
        rows.append((f"position {i}", p.name, kind, " | ".join(p.choices)))
    if rows:
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        out += [
            "  " + "  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + f"  {r[3]}"
            for r in rows
        ]
    else:
        out.append("no options or positional arguments found: the sidecar has a summary to fill in")
    out += [f"left out {s}" for s in a.skipped]
    return [line.rstrip() for line in out]
