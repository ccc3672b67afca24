"""argparse parsers read statically (SPEC §3.10): what `ArgumentParser` a script builds.

The script is interpreted symbolically (catalog.parsers.pycli): parsers built at module
level, in `main()`, under `if __name__ == "__main__":`, in a helper that returns one, or
extended by a helper they are handed (`add_common(parser)`); `parents=[...]`, argument
groups, mutually exclusive groups and `add_subparsers` (one command per sub-command). Only
literal arguments of `add_argument` are understood; anything else is left out with a
warning, never guessed.
"""

from __future__ import annotations

import ast
import contextlib
import re
from dataclasses import dataclass, field

from opsroom.catalog.parsers.base import Problem, SubCommand
from opsroom.catalog.parsers.pycli import (
    UNKNOWN,
    CliRead,
    Draft,
    Interpreter,
    Klass,
    Names,
    Ref,
    Scope,
    chat_word,
    choices_of,
    dotted,
    finish,
    first_line_summary,
    literal_default,
    source_text,
    usable_word,
)
from opsroom.model.catalog import Severity
from opsroom.model.commands import ArgForm, ArgvSlot, ParamType

_CONSTRUCTOR = "argparse.ArgumentParser"
_CONSTRUCTOR_ARGS = ("prog", "usage", "description", "epilog", "parents")
_SUPPRESS = "==SUPPRESS=="
_PARSE_METHODS = frozenset(
    {"parse_args", "parse_known_args", "parse_intermixed_args", "parse_known_intermixed_args"}
)
_TYPES = {"int": ParamType.INT, "float": ParamType.FLOAT}
# Things argparse actions can be, by name, that are not parameters in chat.
_NOT_PARAMS = frozenset({"help", "version", "parsers"})
_FLAG_ACTIONS = frozenset({"store_true", "store_false", "store_const", "append_const"})
_MAX_SUB_DEPTH = 4
_COMPLETION = frozenset({"argcomplete.autocomplete"})
_HELP_FIELD = re.compile(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[sdrifgeEx]")


@dataclass(eq=False)
class _Arg:
    """One `add_argument` call, its arguments evaluated."""

    node: ast.Call
    strings: list[object]
    kw: dict[str, object]
    mutex: _Mutex | None = None


@dataclass(eq=False)
class _Mutex:
    parser: _Parser
    required: bool = False


@dataclass(eq=False)
class _Group:
    parser: _Parser


@dataclass(eq=False)
class _SubEntry:
    name: object
    kw: dict[str, object]
    parser: _Parser
    line: int


@dataclass(eq=False)
class _Subs:
    parser: _Parser
    entries: list[_SubEntry] = field(default_factory=list)
    line: int = 1


@dataclass(eq=False)
class _Parser:
    line: int
    kw: dict[str, object]
    reached: bool
    actions: list[_Arg] = field(default_factory=list)
    mutexes: list[_Mutex] = field(default_factory=list)
    subs: _Subs | None = None
    used: bool = False  # parse_args() was called on it
    is_sub: bool = False
    is_parent: bool = False
    handed_out: list[tuple[int, str]] = field(default_factory=list)  # to code not in the file

    @property
    def prefix_chars(self) -> str:
        value = self.kw.get("prefix_chars", "-")
        return value if isinstance(value, str) and value else "-"


class _ArgparseInterpreter(Interpreter):
    def __init__(self, tree: ast.Module, names: Names, docstring: str) -> None:
        super().__init__(tree, names, docstring)
        self.parsers: list[_Parser] = []
        self.reaching = True

    def close(self) -> None:
        super().close()
        for parser in self.parsers:  # a parser and its groups point at each other
            parser.mutexes.clear()
            parser.subs = None
        self.parsers.clear()

    def _parser(self, node: ast.Call, scope: Scope, depth: int) -> _Parser:
        args, kw = self.arguments(node, scope, depth)
        for name, value in zip(_CONSTRUCTOR_ARGS, args, strict=False):
            kw.setdefault(name, value)
        parser = _Parser(node.lineno, kw, self.reaching)
        self._inherit(parser, kw.get("parents"))
        self.parsers.append(parser)
        return parser

    def _inherit(self, parser: _Parser, parents: object) -> None:
        if not isinstance(parents, list | tuple):
            return
        for parent in parents:
            if isinstance(parent, _Parser) and parent is not parser:
                parent.is_parent = True
                parser.actions.extend(parent.actions)
                parser.mutexes.extend(parent.mutexes)

    def opaque_call(self, node: ast.Call, values: list[object]) -> None:
        # `plugin.register(parser)`: arguments added by code outside the file are not read
        name = dotted(node.func) or "a function"
        if self.names.qual(node.func) in _COMPLETION or name.endswith("autocomplete"):
            return  # shell completion reads the parser, adds nothing to it
        for value in values:
            if isinstance(value, _Parser | _Group | _Mutex):
                parser = value if isinstance(value, _Parser) else value.parser
                parser.handed_out.append((node.lineno, name))

    def library_call(self, qual: str, node: ast.Call, scope: Scope, depth: int) -> object:
        if qual == _CONSTRUCTOR:
            return self._parser(node, scope, depth)
        return NotImplemented

    def construct(self, klass: Klass, node: ast.Call, scope: Scope, depth: int) -> object:
        # class MyParser(argparse.ArgumentParser): ... — still an ArgumentParser
        if _CONSTRUCTOR in self.class_bases(klass):
            return self._parser(node, scope, depth)
        return NotImplemented

    def method(
        self, receiver: object, name: str, node: ast.Call, scope: Scope, depth: int
    ) -> object:
        if isinstance(receiver, _Parser | _Group | _Mutex):
            parser = receiver if isinstance(receiver, _Parser) else receiver.parser
            return self._on_parser(parser, receiver, name, node, scope, depth)
        if isinstance(receiver, _Subs):
            if name != "add_parser":
                self.arguments(node, scope, depth)
                return UNKNOWN
            args, kw = self.arguments(node, scope, depth)
            sub = _Parser(node.lineno, kw, self.reaching, is_sub=True)
            self._inherit(sub, kw.get("parents"))
            self.parsers.append(sub)
            receiver.entries.append(
                _SubEntry(args[0] if args else kw.get("name", UNKNOWN), kw, sub, node.lineno)
            )
            return sub
        return super().method(receiver, name, node, scope, depth)

    def _on_parser(
        self,
        parser: _Parser,
        receiver: _Parser | _Group | _Mutex,
        name: str,
        node: ast.Call,
        scope: Scope,
        depth: int,
    ) -> object:
        args, kw = self.arguments(node, scope, depth)
        if name == "add_argument":
            arg = _Arg(node, args, kw, receiver if isinstance(receiver, _Mutex) else None)
            if parser.kw.get("conflict_handler") == "resolve":
                _resolve_conflicts(parser, arg)
            parser.actions.append(arg)
            return arg
        if name == "add_argument_group":
            return _Group(parser)
        if name == "add_mutually_exclusive_group":
            mutex = _Mutex(parser, kw.get("required") is True)
            parser.mutexes.append(mutex)
            return mutex
        if name == "add_subparsers" and isinstance(receiver, _Parser):
            if parser.subs is None:
                parser.subs = _Subs(parser, line=node.lineno)
            return parser.subs
        if name in _PARSE_METHODS and isinstance(receiver, _Parser):
            parser.used = True
        return UNKNOWN


def _resolve_conflicts(parser: _Parser, new: _Arg) -> None:
    strings = {s for s in new.strings if isinstance(s, str)}
    parser.actions = [
        a for a in parser.actions if not strings & {s for s in a.strings if isinstance(s, str)}
    ]


def _root(parsers: list[_Parser]) -> _Parser | None:
    """The parser the script runs: the one parse_args() is called on, else the only one."""
    tops = [p for p in parsers if not p.is_sub and not p.is_parent]
    for group in ([p for p in tops if p.used], tops):
        if group:
            return group[0]
    return None


def read_argparse(tree: ast.Module, source: str, names: Names, docstring: str) -> CliRead | None:
    """The argparse parser a script builds, read statically; None when it builds none."""
    interp = _ArgparseInterpreter(tree, names, docstring)
    try:
        return _read(interp, source)
    finally:
        interp.close()


def _read(interp: _ArgparseInterpreter, source: str) -> CliRead | None:
    interp.run_module()
    root = _root(interp.parsers)
    if root is None:
        interp.reaching = False
        interp.run_uncalled()
        root = _root(interp.parsers)
    if root is None:
        return None
    problems: list[Problem] = []
    if interp.exhausted:
        problems.append(
            Problem(root.line, "the script is too large to read completely", Severity.WARNING)
        )
    reader = _Reader(source, problems, root.kw.get("fromfile_prefix_chars"))
    for parser in interp.parsers:
        for line, name in parser.handed_out:
            reader.warn(
                line,
                f"the parser is handed to {name}(), which is not in this file: "
                "the arguments it adds are not read",
            )
    summary, description = _describe(root.kw)
    subs = reader.subcommands(root, (), (), [], 0)
    command = None
    if not subs:
        drafts, groups = reader.drafts(root, 0)
        params, exclusive = finish(drafts, groups, problems)
        command = SubCommand(
            summary=summary,
            description=description,
            params=params,
            exclusive=exclusive,
            line=root.line,
        )
        if root.subs is not None:
            problems.append(
                Problem(
                    root.subs.line,
                    "sub-commands whose names are not literal strings were not read",
                    Severity.WARNING,
                )
            )
    return CliRead(
        "argparse",
        command=command,
        subcommands=tuple(subs),
        reached=root.reached,
        problems=tuple(problems),
    )


def _describe(kw: dict[str, object]) -> tuple[str, str]:
    description = kw.get("description")
    if not isinstance(description, str) or not description.strip():
        return "", ""
    return first_line_summary(description)


class _Reader:
    """Turns the parsers found into chat parameters."""

    def __init__(self, source: str, problems: list[Problem], fromfile: object = None) -> None:
        self.source = source
        self.problems = problems
        self.said: set[tuple[int, str]] = set()
        self.fromfile = fromfile  # the top parser's: it reads files for every argument

    def warn(self, line: int, message: str) -> None:
        """A warning, once (a parent parser's arguments are read for every sub-command)."""
        if (line, message) not in self.said:
            self.said.add((line, message))
            self.problems.append(Problem(line, message, Severity.WARNING))

    def subcommands(
        self,
        parser: _Parser,
        words: tuple[str, ...],
        chat: tuple[str, ...],
        outer: list[tuple[_Parser, int]],
        depth: int,
    ) -> list[SubCommand]:
        """One command per leaf sub-parser, with the options of every parser above it."""
        if parser.subs is None or depth >= _MAX_SUB_DEPTH:
            return []
        out: list[SubCommand] = []
        chain = [*outer, (parser, depth)]
        for entry in parser.subs.entries:
            if not isinstance(entry.name, str):
                self.warn(entry.line, "a sub-command whose name is not a literal string: skipped")
                continue
            if not usable_word(entry.name):
                self.warn(entry.line, f"sub-command name {entry.name!r} cannot be a chat word")
                continue
            sub_words = (*words, entry.name)
            sub_chat = (*chat, chat_word(entry.name))
            deeper = self.subcommands(entry.parser, sub_words, sub_chat, chain, depth + 1)
            if deeper:
                out.extend(deeper)
                continue
            own, own_groups = self.drafts(entry.parser, depth + 1)
            mine = {d.name for d in own}
            drafts: list[Draft] = []
            groups: list[tuple[object, bool]] = []
            for p, stage in chain:
                level_drafts, level_groups = self.drafts(p, stage)
                # An option the sub-command redefines is the sub-command's (argparse reads
                # it after the sub-command word).
                drafts.extend(d for d in level_drafts if d.name not in mine)
                groups.extend(level_groups)
            drafts.extend(own)
            groups.extend(own_groups)
            params, exclusive = finish(drafts, groups, self.problems)
            summary, description = _sub_description(entry)
            aliases = entry.kw.get("aliases")
            alias_words = tuple(
                (*chat, chat_word(a))
                for a in (aliases if isinstance(aliases, list | tuple) else ())
                if isinstance(a, str) and a.strip()
            )
            out.append(
                SubCommand(
                    words=sub_words,
                    chat_words=sub_chat,
                    aliases=alias_words,
                    summary=summary,
                    description=description,
                    params=params,
                    exclusive=exclusive,
                    line=entry.line,
                )
            )
        return out

    def drafts(self, parser: _Parser, stage: int) -> tuple[list[Draft], list[tuple[object, bool]]]:
        """Draft parameters of one parser's own arguments, and its exclusive groups."""
        out: list[Draft] = []
        prefixes = "".join(
            dict.fromkeys(
                char
                for chars in (self.fromfile, parser.kw.get("fromfile_prefix_chars"))
                if isinstance(chars, str)
                for char in chars
            )
        )
        for arg in parser.actions:
            draft = self.draft(arg, parser, stage)
            if draft is None:
                continue
            separate = not draft.slot.option or (
                draft.multiple and draft.slot.form is ArgForm.VALUE  # `--hosts a b`
            )
            if prefixes and separate:
                # `fromfile_prefix_chars="@"`: argparse reads `@path` as a file of arguments,
                # which would let chat pull any file the job can read into the script.
                draft.pattern = "(?s)(?:[^" + re.escape(prefixes) + "].*)?"
                note = f"(may not start with {' or '.join(prefixes)})"
                draft.help = f"{draft.help} {note}" if draft.help else note
            out.append(draft)
        groups: list[tuple[object, bool]] = [(m, m.required) for m in parser.mutexes]
        return out, groups

    def draft(self, arg: _Arg, parser: _Parser, stage: int) -> Draft | None:
        """One `add_argument` as a draft parameter, or None (with a warning if unreadable)."""
        line = arg.node.lineno
        strings = arg.strings
        if not strings or not all(isinstance(s, str) and s for s in strings):
            self.warn(line, "add_argument with a name that is not a literal string: left out")
            return None
        names: list[str] = [s for s in strings if isinstance(s, str)]
        prefix = parser.prefix_chars
        options = [s for s in names if s[0] in prefix]
        kw = arg.kw
        action = kw.get("action")
        action_name = _action_name(action)
        if action_name in _NOT_PARAMS:
            return None
        if options and len(options) != len(names):
            self.warn(line, f"add_argument mixes option and positional names {names}: left out")
            return None
        if not options and len(names) != 1:
            self.warn(line, f"add_argument with several positional names {names}: left out")
            return None
        dest = kw.get("dest")
        dest_name = dest if isinstance(dest, str) and dest else None
        if options:
            longs = [o for o in options if len(o) > 1 and o[1] in prefix]
            shorts = [o for o in options if o not in longs]
            stripped = [o.lstrip(prefix) for o in (*longs, *shorts)]
            if not all(stripped):
                self.warn(
                    line,
                    f"add_argument with an option of prefix characters only {options}: left out",
                )
                return None
            # `-n` with dest="count": chat calls it `count`, with `n` as an alias
            name = stripped[0] if longs or not dest_name else dest_name
            fallbacks = [n for n in (dest_name, stripped[0]) if n and n != name]
            aliases = [n for n in stripped if n != name]
            option = (longs or shorts)[0]
        else:
            name = names[0]
            fallbacks = []
            aliases = []
            option = ""
        draft = Draft(
            name=name,
            slot=ArgvSlot(option=option, stage=stage),
            aliases=aliases,
            fallback_names=fallbacks,
            group=arg.mutex,
            line=line,
        )
        self._shape(draft, arg, action, action_name, bool(options))
        draft.help = self._help(kw.get("help"), draft, kw)
        return draft

    def _shape(
        self,
        draft: Draft,
        arg: _Arg,
        action: object,
        action_name: str | None,
        is_option: bool,
    ) -> None:
        """Type, multiplicity, requiredness and form from action, nargs, type and choices."""
        kw = arg.kw
        slot = draft.slot
        option = slot.option
        if action_name in _FLAG_ACTIONS:
            draft.type = ParamType.SWITCH
            draft.slot = ArgvSlot(option=option, form=ArgForm.FLAG, stage=slot.stage)
            draft.required = is_option and kw.get("required") is True
            return
        if action_name == "boolean_optional":
            default = kw.get("default")
            draft.type = ParamType.BOOL if default is True else ParamType.SWITCH
            long_opts = [s for s in arg.strings if isinstance(s, str) and s.startswith("--")]
            off = "--no-" + long_opts[0][2:] if long_opts else ""
            form = ArgForm.PAIR if off else ArgForm.FLAG
            draft.slot = ArgvSlot(option=option, form=form, off=off, stage=slot.stage)
            if default is True:
                draft.default = True
            draft.required = kw.get("required") is True
            return
        if action_name == "count":
            draft.type = ParamType.INT
            draft.range = (0.0, None)
            draft.slot = ArgvSlot(option=option, form=ArgForm.COUNT, stage=slot.stage)
            default = kw.get("default")
            if type(default) is int:
                draft.default = default
            draft.required = kw.get("required") is True
            return

        nargs = kw.get("nargs")
        draft.type = _type_of(kw.get("type"))
        choices, value_range = choices_of(kw.get("choices"))
        draft.choices = choices
        if value_range is not None and draft.type in (ParamType.INT, ParamType.FLOAT):
            draft.range = value_range
        elif value_range is not None:
            lo, hi = value_range
            if lo is not None and hi is not None and hi - lo < 50:
                draft.choices = tuple(str(int(v)) for v in range(int(lo), int(hi) + 1))
        count = 0
        if nargs in ("+", "*", "...") or (type(nargs) is int and nargs > 1):
            draft.multiple = True
            count = nargs if type(nargs) is int else 0
        elif nargs not in (None, "?", 1):
            self.warn(arg.node.lineno, f"nargs={nargs!r} not understood: read as one value")
        if action_name in ("append", "extend"):
            draft.multiple = True
            form = ArgForm.APPEND
            if type(nargs) is int and nargs > 1:
                self.warn(
                    arg.node.lineno,
                    f"'{draft.name}': {action_name} with nargs={nargs} gets one value at a time",
                )
            count = 0
        else:
            form = ArgForm.VALUE
        draft.slot = ArgvSlot(option=option, form=form, stage=slot.stage, nargs=count)

        if is_option:
            draft.required = kw.get("required") is True
        else:
            draft.required = nargs not in ("?", "*", "...")
        if not draft.required:
            self._default(draft, arg)

    def _default(self, draft: Draft, arg: _Arg) -> None:
        value = arg.kw.get("default")
        if value is None or value == _SUPPRESS:
            return
        node = next((k.value for k in arg.node.keywords if k.arg == "default"), None)
        if value is UNKNOWN or isinstance(value, Ref):
            draft.default_text = source_text(self.source, node)
            return
        if isinstance(value, str) and draft.type in (ParamType.INT, ParamType.FLOAT):
            # argparse converts a string default with `type`
            with contextlib.suppress(ValueError):
                value = int(value) if draft.type is ParamType.INT else float(value)
        default, ok = literal_default(value)
        if not ok:
            draft.default_text = source_text(self.source, node)
            return
        if draft.choices and default is not None:
            items = default if isinstance(default, tuple) else (default,)
            if any(str(v) not in draft.choices for v in items):
                draft.default_text = source_text(self.source, node)
                return
        draft.default = default

    def _help(self, value: object, draft: Draft, kw: dict[str, object]) -> str:
        if not isinstance(value, str) or value == _SUPPRESS:
            return ""

        def field_text(m: re.Match[str]) -> str:
            key = m.group(1)
            if key == "default":
                shown = draft.default if draft.default is not None else draft.default_text
                if isinstance(shown, tuple):
                    return " ".join(map(str, shown))
                return "None" if shown is None else str(shown)
            if key == "choices":
                return ", ".join(draft.choices)
            if key in ("dest", "metavar"):
                got = kw.get(key)
                return got if isinstance(got, str) else draft.name
            if key == "type":
                return draft.type.value
            return m.group(0)

        text = _HELP_FIELD.sub(field_text, value).replace("%%", "%") if "%" in value else value
        return " ".join(text.split())


def _action_name(action: object) -> str | None:
    if isinstance(action, str):
        return action
    if isinstance(action, Ref):
        if action.name.endswith("BooleanOptionalAction"):
            return "boolean_optional"
        return "custom"
    return None if action is None else "custom"


def _type_of(value: object) -> ParamType:
    # str, pathlib.Path, FileType, a function of the script: a string the script converts
    if isinstance(value, Ref):
        return _TYPES.get(value.name, ParamType.STRING)
    return ParamType.STRING


def _sub_description(entry: _SubEntry) -> tuple[str, str]:
    help_text = entry.kw.get("help")
    summary, description = _describe(entry.kw)
    if isinstance(help_text, str) and help_text.strip() and help_text != _SUPPRESS:
        short = " ".join(help_text.split())
        if not description and summary and summary != short:
            description = summary
        summary = short
    return summary, description
