"""click and typer commands read statically (SPEC §3.10): decorators and signatures.

click: `@click.command`/`@click.group` (and `@group.command`, `group.add_command`) with
`@click.option`/`@click.argument` — types `int`, `float`, `click.Choice`, `click.IntRange`,
`is_flag`, `--x/--no-x`, `count`, `multiple`, `nargs`. typer: `typer.run(main)` or
`app = typer.Typer()` with `@app.command()`; parameters from the signature, with
`typer.Option`/`typer.Argument` as defaults or inside `Annotated[...]`. A group gives one
command per sub-command. Nothing is imported or run.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from opsroom.catalog.parsers.base import Problem, SubCommand
from opsroom.catalog.parsers.pycli import (
    UNKNOWN,
    CliRead,
    Draft,
    Frame,
    Func,
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

_MAX_DEPTH = 4
_SCALARS = {
    "int": ParamType.INT,
    "float": ParamType.FLOAT,
    "bool": ParamType.BOOL,
    "click.INT": ParamType.INT,
    "click.FLOAT": ParamType.FLOAT,
    "click.BOOL": ParamType.BOOL,
    "click.types.INT": ParamType.INT,
    "click.types.FLOAT": ParamType.FLOAT,
    "click.types.BOOL": ParamType.BOOL,
}
_SUFFIXES = ("command", "cmd", "group", "grp")


@dataclass(frozen=True, slots=True)
class _ClickType:
    """A click type object: `click.Choice([...])`, `click.IntRange(1, 5)`, `click.Path()`."""

    type: ParamType = ParamType.STRING
    choices: tuple[str, ...] = ()
    range: tuple[float | None, float | None] | None = None
    items: tuple[_ClickType, ...] = ()  # click.Tuple([...])


@dataclass(eq=False)
class _Decl:
    """One `@click.option(...)`/`@click.argument(...)` (or typer.Option/Argument) call."""

    kind: str  # "option" | "argument" | "confirmation" | "password"
    args: list[object]
    kw: dict[str, object]
    node: ast.Call | None
    line: int


@dataclass(eq=False)
class _ClickCmd:
    """A click command or group: its function, its params, its sub-commands."""

    func: ast.FunctionDef | ast.AsyncFunctionDef
    is_group: bool
    name: str
    kw: dict[str, object]
    params: list[_Decl]
    children: list[tuple[str, _ClickCmd]] = field(default_factory=list)
    has_parent: bool = False


@dataclass(eq=False)
class _TyperApp:
    line: int
    kw: dict[str, object]
    commands: list[tuple[str | None, Func, dict[str, object]]] = field(default_factory=list)
    callback: Func | None = None
    callback_kw: dict[str, object] = field(default_factory=dict)
    groups: list[tuple[str | None, _TyperApp, dict[str, object]]] = field(default_factory=list)
    has_parent: bool = False


class _Interpreter(Interpreter):
    def __init__(self, tree: ast.Module, names: Names, docstring: str) -> None:
        super().__init__(tree, names, docstring)
        self.click: list[_ClickCmd] = []
        self.apps: list[_TyperApp] = []
        self.entries: list[object] = []  # what the script's own code calls: cli(), app()
        self.typer_run: list[Func] = []

    # -------------------------------------------------------------- decorators

    def stmt(self, stmt: ast.stmt, scope: Scope, frame: Frame | None) -> None:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and stmt.decorator_list:
            scope.vars[stmt.name] = self._decorated(stmt, scope)
            return
        super().stmt(stmt, scope, frame)

    def _decorated(self, fn: ast.FunctionDef | ast.AsyncFunctionDef, scope: Scope) -> object:
        func = Func(fn, scope)
        made: _ClickCmd | None = None
        params: list[_Decl] = []
        for deco in fn.decorator_list:  # top to bottom: click's order of parameters
            call = deco if isinstance(deco, ast.Call) else None
            target = call.func if call is not None else deco
            qual = self.names.qual(target) if dotted(target) else None
            if qual in ("click.option", "click.argument", "click.decorators.option"):
                args, kw = self.arguments(call, scope, 0) if call else ([], {})
                kind = "argument" if qual.endswith("argument") else "option"
                params.append(_Decl(kind, args, kw, call, deco.lineno))
                continue
            if qual in ("click.confirmation_option", "click.password_option"):
                args, kw = self.arguments(call, scope, 0) if call else ([], {})
                kind = "confirmation" if "confirmation" in qual else "password"
                params.append(_Decl(kind, args, kw, call, deco.lineno))
                continue
            if qual in ("click.command", "click.group"):
                args, kw = self.arguments(call, scope, 0) if call else ([], {})
                made = self._click_cmd(fn, qual.endswith("group"), args, kw)
                continue
            if isinstance(target, ast.Attribute) and target.attr in ("command", "group"):
                owner = self.eval(target.value, scope)
                args, kw = self.arguments(call, scope, 0) if call else ([], {})
                if isinstance(owner, _ClickCmd) and owner.is_group:
                    made = self._click_cmd(fn, target.attr == "group", args, kw)
                    made.has_parent = True
                    owner.children.append((made.name, made))
                elif isinstance(owner, _TyperApp) and target.attr == "command":
                    name = args[0] if args and isinstance(args[0], str) else kw.get("name")
                    owner.commands.append((name if isinstance(name, str) else None, func, kw))
                continue
            if isinstance(target, ast.Attribute) and target.attr == "callback":
                owner = self.eval(target.value, scope)
                if isinstance(owner, _TyperApp):
                    owner.callback = func
                    owner.callback_kw = self.arguments(call, scope, 0)[1] if call else {}
                continue
        if made is not None:
            made.params = params
            return made
        return func

    def _click_cmd(
        self,
        fn: ast.FunctionDef | ast.AsyncFunctionDef,
        is_group: bool,
        args: list[object],
        kw: dict[str, object],
    ) -> _ClickCmd:
        name = args[0] if args and isinstance(args[0], str) else kw.get("name")
        if not isinstance(name, str) or not name:
            name = fn.name.lower().replace("_", "-")
            left, sep, suffix = name.rpartition("-")
            if sep and suffix in _SUFFIXES:  # click 8.2+ drops these suffixes
                name = left
        cmd = _ClickCmd(fn, is_group, name, kw, [])
        self.click.append(cmd)
        return cmd

    # ------------------------------------------------------------------ calls

    def library_call(self, qual: str, node: ast.Call, scope: Scope, depth: int) -> object:
        if qual in ("typer.Typer", "typer.main.Typer"):
            app = _TyperApp(node.lineno, self.arguments(node, scope, depth)[1])
            self.apps.append(app)
            return app
        if qual == "typer.run":
            args, _ = self.arguments(node, scope, depth)
            if args and isinstance(args[0], Func):
                self.typer_run.append(args[0])
            return UNKNOWN
        kind = qual.rpartition(".")[2]
        if qual.startswith("click.") and kind in (
            "Choice",
            "IntRange",
            "FloatRange",
            "Path",
            "File",
            "DateTime",
            "Tuple",
            "STRING",
        ):
            args, kw = self.arguments(node, scope, depth)
            return _click_type(kind, args, kw)
        return NotImplemented

    def method(
        self, receiver: object, name: str, node: ast.Call, scope: Scope, depth: int
    ) -> object:
        if isinstance(receiver, _ClickCmd):
            args, kw = self.arguments(node, scope, depth)
            if name == "add_command" and receiver.is_group and args:
                child = args[0]
                if isinstance(child, _ClickCmd):
                    alias = args[1] if len(args) > 1 else kw.get("name")
                    child.has_parent = True
                    receiver.children.append(
                        (alias if isinstance(alias, str) and alias else child.name, child)
                    )
            elif name == "main":
                self.entries.append(receiver)
            return UNKNOWN
        if isinstance(receiver, _TyperApp):
            args, kw = self.arguments(node, scope, depth)
            if name == "add_typer" and args and isinstance(args[0], _TyperApp):
                sub_name = kw.get("name")
                args[0].has_parent = True
                receiver.groups.append(
                    (sub_name if isinstance(sub_name, str) else None, args[0], kw)
                )
            elif name == "command":  # `app.command()(greet)`: registers what it is called on
                word = args[0] if args and isinstance(args[0], str) else kw.get("name")
                return _Register(receiver, word if isinstance(word, str) else None, kw)
            return UNKNOWN
        return super().method(receiver, name, node, scope, depth)

    def call(self, node: ast.Call, scope: Scope, depth: int) -> object:
        if isinstance(node.func, ast.Name):
            target = scope.get(node.func.id)
            if isinstance(target, _ClickCmd | _TyperApp):
                self.arguments(node, scope, depth)
                self.entries.append(target)
                return UNKNOWN
        if isinstance(node.func, ast.Call):
            register = self.eval(node.func, scope, depth)  # evaluated once, here
            args, _ = self.arguments(node, scope, depth)
            if isinstance(register, _Register) and args and isinstance(args[0], Func):
                register.app.commands.append((register.name, args[0], register.kw))
                return args[0]
            return UNKNOWN
        return super().call(node, scope, depth)


@dataclass(eq=False)
class _Register:
    """`app.command(...)` not used as a decorator: registers the function it is called on."""

    app: _TyperApp
    name: str | None
    kw: dict[str, object]


def _click_type(kind: str, args: list[object], kw: dict[str, object]) -> _ClickType:
    if kind == "Choice":
        choices, _ = choices_of(args[0] if args else kw.get("choices"))
        return _ClickType(ParamType.STRING, choices=choices)
    if kind in ("IntRange", "FloatRange"):
        lo = args[0] if args else kw.get("min")
        hi = args[1] if len(args) > 1 else kw.get("max")
        bounds = (
            float(lo) if isinstance(lo, int | float) and not isinstance(lo, bool) else None,
            float(hi) if isinstance(hi, int | float) and not isinstance(hi, bool) else None,
        )
        clamp = kw.get("clamp") is True  # clamped values are never refused
        kind_type = ParamType.INT if kind == "IntRange" else ParamType.FLOAT
        return _ClickType(kind_type, range=None if clamp or bounds == (None, None) else bounds)
    if kind == "Tuple" and args and isinstance(args[0], list | tuple):
        return _ClickType(items=tuple(_scalar_type(t) for t in args[0]))
    return _ClickType()


def _scalar_type(value: object) -> _ClickType:
    if isinstance(value, _ClickType):
        return value
    if isinstance(value, Ref):
        return _ClickType(_SCALARS.get(value.name, ParamType.STRING))
    return _ClickType()


# ------------------------------------------------------------------------ click


def read_click(tree: ast.Module, source: str, names: Names, docstring: str) -> CliRead | None:
    """The click command or group, or typer app, a script runs, read statically; or None."""
    interp = _Interpreter(tree, names, docstring)
    try:
        return _read_click(interp, source)
    finally:
        interp.close()


def _read_click(interp: _Interpreter, source: str) -> CliRead | None:
    interp.run_module()
    if interp.apps or interp.typer_run:
        return _read_typer(interp, source)
    if not interp.click:
        return None
    entry = next((e for e in interp.entries if isinstance(e, _ClickCmd)), None)
    reached = entry is not None
    if entry is None:
        entry = next((c for c in interp.click if not c.has_parent), interp.click[0])
    problems: list[Problem] = []
    reader = _ClickReader(source, problems)
    summary, description = _command_help(entry.func, entry.kw)
    if entry.is_group:
        subs = reader.group(entry, (), (), [], 0)
        return CliRead("click", subcommands=tuple(subs), reached=reached, problems=tuple(problems))
    drafts = reader.drafts(entry, 0)
    params, exclusive = finish(drafts, [], problems)
    command = SubCommand(
        summary=summary,
        description=description,
        params=params,
        exclusive=exclusive,
        line=entry.func.lineno,
    )
    return CliRead("click", command=command, reached=reached, problems=tuple(problems))


def _command_help(
    fn: ast.FunctionDef | ast.AsyncFunctionDef, kw: dict[str, object]
) -> tuple[str, str]:
    text = kw.get("help")
    if not isinstance(text, str) or not text.strip():
        text = ast.get_docstring(fn, clean=True) or ""
    summary, description = first_line_summary(text)
    short = kw.get("short_help")
    if isinstance(short, str) and short.strip():
        if summary and not description:
            description = summary
        summary = " ".join(short.split())
    return summary, description


class _ClickReader:
    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        self.said: set[tuple[int, str]] = set()

    def warn(self, line: int, message: str) -> None:
        if (line, message) not in self.said:
            self.said.add((line, message))
            self.problems.append(Problem(line, message, Severity.WARNING))

    def group(
        self,
        group: _ClickCmd,
        words: tuple[str, ...],
        chat: tuple[str, ...],
        outer: list[Draft],
        depth: int,
    ) -> list[SubCommand]:
        """One command per sub-command of a group (nested groups followed)."""
        if depth >= _MAX_DEPTH:
            return []
        mine = self.drafts(group, depth)
        out: list[SubCommand] = []
        for name, child in group.children:
            if not usable_word(name):
                self.warn(child.func.lineno, f"sub-command name {name!r} cannot be a chat word")
                continue
            sub_words = (*words, name)
            sub_chat = (*chat, chat_word(name))
            above = [*outer, *mine]
            if child.is_group:
                out.extend(self.group(child, sub_words, sub_chat, above, depth + 1))
                continue
            own = self.drafts(child, depth + 1)
            own_names = {d.name for d in own}
            drafts = [d for d in above if d.name not in own_names] + own
            params, exclusive = finish(drafts, [], self.problems)
            summary, description = _command_help(child.func, child.kw)
            out.append(
                SubCommand(
                    words=sub_words,
                    chat_words=sub_chat,
                    summary=summary,
                    description=description,
                    params=params,
                    exclusive=exclusive,
                    line=child.func.lineno,
                )
            )
        return out

    def drafts(self, cmd: _ClickCmd, stage: int) -> list[Draft]:
        out = []
        for decl in cmd.params:
            draft = self.draft(decl, stage)
            if draft is not None:
                out.append(draft)
        return out

    def draft(self, decl: _Decl, stage: int) -> Draft | None:
        strings = [a for a in decl.args if isinstance(a, str)]
        if len(strings) != len(decl.args):
            self.warn(decl.line, "a click parameter whose name is not a literal string: left out")
            return None
        kw = decl.kw
        if decl.kind == "confirmation":
            strings = strings or ["--yes"]
            decl_kw: dict[str, object] = {"is_flag": True, **kw}
            return self._option(strings, decl_kw, decl, stage)
        if decl.kind == "password":
            strings = strings or ["--password"]
            return self._option(strings, {"prompt": True, **kw}, decl, stage)
        if decl.kind == "argument":
            return self._argument(strings, kw, decl, stage)
        return self._option(strings, kw, decl, stage)

    def _argument(
        self, strings: list[str], kw: dict[str, object], decl: _Decl, stage: int
    ) -> Draft | None:
        if len(strings) != 1:
            self.warn(decl.line, "click.argument needs exactly one name: left out")
            return None
        name = strings[0]
        nargs = kw.get("nargs", 1)
        ctype = _type_from(kw.get("type"), kw.get("default"))
        draft = Draft(name=name, slot=ArgvSlot(stage=stage), line=decl.line)
        _apply_type(draft, ctype)
        if nargs == -1 or (type(nargs) is int and nargs > 1):
            draft.multiple = True
            draft.slot = ArgvSlot(
                stage=stage, nargs=nargs if type(nargs) is int and nargs > 1 else 0
            )
        required = kw.get("required")
        if required is None:
            required = "default" not in kw and nargs != -1
        draft.required = required is True
        if not draft.required:
            _set_default(draft, kw, decl.node, self.source)
        draft.help = _text(kw.get("help"))
        return draft

    def _option(
        self, strings: list[str], kw: dict[str, object], decl: _Decl, stage: int
    ) -> Draft | None:
        opts: list[str] = []
        secondary: list[str] = []
        ident: str | None = None
        for s in strings:
            if s.isidentifier():
                ident = s
                continue
            first, sep, second = s.partition("/")
            first, second = first.strip(), second.strip()
            if sep:
                if first:
                    opts.append(first)
                if second:
                    secondary.append(second)
            elif s:
                opts.append(s)
        if not opts:
            self.warn(decl.line, f"click.option {strings} has no option name: left out")
            return None
        longs = [o for o in opts if o.startswith("--")]
        shorts = [o for o in opts if o not in longs]
        names = [o.lstrip("-/") for o in (*longs, *shorts)]
        if not all(names):
            self.warn(decl.line, f"click.option {strings} is not understood: left out")
            return None
        option = (longs or shorts)[0]
        separate = not option.startswith("--")
        # `-s` declared as `shout`: chat calls it `shout`, with `s` as an alias
        name = names[0] if longs or not ident else ident
        draft = Draft(
            name=name,
            slot=ArgvSlot(option=option, stage=stage, separate=separate),
            aliases=[n for n in names if n != name],
            fallback_names=[n for n in (ident, names[0]) if n and n != name],
            line=decl.line,
        )
        draft.help = _text(kw.get("help"))
        if secondary:
            default = kw.get("default")
            draft.type = ParamType.BOOL if default is True else ParamType.SWITCH
            draft.slot = ArgvSlot(option=option, form=ArgForm.PAIR, off=secondary[0], stage=stage)
            if default is True:
                draft.default = True
            draft.required = kw.get("required") is True
            return draft
        if kw.get("is_flag") is True or ("flag_value" in kw and kw.get("is_flag") is not False):
            draft.type = ParamType.SWITCH
            draft.slot = ArgvSlot(option=option, form=ArgForm.FLAG, stage=stage)
            return draft
        if kw.get("count") is True:
            draft.type = ParamType.INT
            draft.range = (0.0, None)
            draft.slot = ArgvSlot(option=option, form=ArgForm.COUNT, stage=stage)
            return draft
        ctype = _type_from(kw.get("type"), kw.get("default"))
        _apply_type(draft, ctype)
        nargs = kw.get("nargs", 1)
        if kw.get("multiple") is True:
            draft.multiple = True
            draft.slot = ArgvSlot(
                option=option, form=ArgForm.APPEND, stage=stage, separate=separate
            )
        elif type(nargs) is int and nargs > 1:
            draft.multiple = True
            draft.slot = ArgvSlot(option=option, stage=stage, separate=True, nargs=nargs)
        prompt = kw.get("prompt")
        # No terminal in a job: a prompting option must come from chat.
        draft.required = kw.get("required") is True or (bool(prompt) and prompt is not UNKNOWN)
        if not draft.required:
            _set_default(draft, kw, decl.node, self.source)
        return draft


def _type_from(value: object, default: object) -> _ClickType:
    if isinstance(value, _ClickType):
        return value
    if isinstance(value, Ref):
        return _ClickType(_SCALARS.get(value.name, ParamType.STRING))
    if isinstance(value, list | tuple):  # click's shorthand for a Tuple type
        return _ClickType(items=tuple(_scalar_type(v) for v in value))
    if value is None and default is not None:
        # click infers the type from a literal default
        sample = default[0] if isinstance(default, list | tuple) and default else default
        if isinstance(sample, bool):
            return _ClickType(ParamType.BOOL)
        if isinstance(sample, int):
            return _ClickType(ParamType.INT)
        if isinstance(sample, float):
            return _ClickType(ParamType.FLOAT)
    return _ClickType()


def _apply_type(draft: Draft, ctype: _ClickType) -> None:
    if ctype.items:
        draft.multiple = True
        draft.type = (
            ctype.items[0].type if len({t.type for t in ctype.items}) == 1 else ParamType.STRING
        )
        draft.slot = ArgvSlot(
            option=draft.slot.option,
            stage=draft.slot.stage,
            separate=True,
            nargs=len(ctype.items),
        )
        return
    draft.type = ctype.type
    draft.choices = ctype.choices
    draft.range = ctype.range


def _set_default(draft: Draft, kw: dict[str, object], node: ast.Call | None, source: str) -> None:
    if "default" not in kw:
        return
    value = kw["default"]
    if value is None:
        return
    if value is UNKNOWN or isinstance(value, Ref | Func | Klass):
        expr = None
        if node is not None:
            expr = next((k.value for k in node.keywords if k.arg == "default"), None)
        draft.default_text = source_text(source, expr)
        return
    default, ok = literal_default(value)
    if not ok:
        return
    if draft.choices and default is not None:
        items = default if isinstance(default, tuple) else (default,)
        if any(str(v) not in draft.choices for v in items):
            draft.default_text = str(value)
            return
    draft.default = default


def _text(value: object) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


# ------------------------------------------------------------------------ typer


def _read_typer(interp: _Interpreter, source: str) -> CliRead | None:
    problems: list[Problem] = []
    reader = _TyperReader(interp, source, problems)
    entry_app = next((e for e in interp.entries if isinstance(e, _TyperApp)), None)
    if interp.typer_run:
        func = interp.typer_run[0]
        return CliRead(
            "typer", command=reader.command(func, {}, (), (), 0, []), problems=tuple(problems)
        )
    reached = entry_app is not None
    app = entry_app or next((a for a in interp.apps if not a.has_parent), interp.apps[0])
    if _single(app):
        _name, func, kw = app.commands[0]
        command = reader.command(func, kw, (), (), 0, [])
        return CliRead("typer", command=command, reached=reached, problems=tuple(problems))
    subs = reader.group(app, (), (), [], 0)
    return CliRead("typer", subcommands=tuple(subs), reached=reached, problems=tuple(problems))


def _single(app: _TyperApp) -> bool:
    # typer runs the only command of an app directly, without its name
    return len(app.commands) == 1 and app.callback is None and not app.groups


class _TyperReader:
    def __init__(self, interp: _Interpreter, source: str, problems: list[Problem]) -> None:
        self.interp = interp
        self.source = source
        self.problems = problems
        self.said: set[tuple[int, str]] = set()

    def warn(self, line: int, message: str) -> None:
        if (line, message) not in self.said:
            self.said.add((line, message))
            self.problems.append(Problem(line, message, Severity.WARNING))

    def command(
        self,
        func: Func,
        kw: dict[str, object],
        words: tuple[str, ...],
        chat: tuple[str, ...],
        stage: int,
        above: list[Draft],
    ) -> SubCommand:
        own = self.drafts(func, stage)
        own_names = {d.name for d in own}
        drafts = [d for d in above if d.name not in own_names] + own
        params, exclusive = finish(drafts, [], self.problems)
        summary, description = _command_help(func.node, kw)
        return SubCommand(
            words=words,
            chat_words=chat,
            summary=summary,
            description=description,
            params=params,
            exclusive=exclusive,
            line=func.node.lineno,
        )

    def group(
        self,
        app: _TyperApp,
        words: tuple[str, ...],
        chat: tuple[str, ...],
        outer: list[Draft],
        depth: int,
    ) -> list[SubCommand]:
        if depth >= _MAX_DEPTH:
            return []
        above = list(outer)
        if app.callback is not None:
            above += self.drafts(app.callback, depth)
        out = []
        for name, func, kw in app.commands:
            cmd_word = name or func.node.name.lower().replace("_", "-")
            if not usable_word(cmd_word):
                self.warn(func.node.lineno, f"sub-command name {cmd_word!r} cannot be a chat word")
                continue
            sub_words, sub_chat = (*words, cmd_word), (*chat, chat_word(cmd_word))
            out.append(self.command(func, kw, sub_words, sub_chat, depth + 1, above))
        for name, sub, _kw in app.groups:
            own_name = sub.kw.get("name")
            word: str | None = name or (own_name if isinstance(own_name, str) else None)
            if word is None and sub.callback is not None:
                word = sub.callback.node.name.lower().replace("_", "-")
            if word is None:
                self.warn(sub.line, "a typer sub-app added without a name: left out")
                continue
            if not usable_word(word):
                self.warn(sub.line, f"sub-command name {word!r} cannot be a chat word")
                continue
            out.extend(self.group(sub, (*words, word), (*chat, chat_word(word)), above, depth + 1))
        return out

    def drafts(self, func: Func, stage: int) -> list[Draft]:
        fn = func.node
        out: list[Draft] = []
        params = [*fn.args.posonlyargs, *fn.args.args]
        defaults: list[ast.expr | None] = [None] * (len(params) - len(fn.args.defaults))
        defaults += list(fn.args.defaults)
        entries = list(zip(params, defaults, strict=True))
        entries += list(zip(fn.args.kwonlyargs, fn.args.kw_defaults, strict=True))
        for arg, default in entries:
            draft = self.draft(arg, default, func.scope, stage)
            if draft is not None:
                out.append(draft)
        return out

    def draft(
        self, arg: ast.arg, default_node: ast.expr | None, scope: Scope, stage: int
    ) -> Draft | None:
        interp = self.interp
        annotation = arg.annotation
        info: _Decl | None = None
        if isinstance(annotation, ast.Subscript) and interp.names.qual(annotation.value) in (
            "typing.Annotated",
            "typing_extensions.Annotated",
        ):
            parts = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else []
            annotation = parts[0] if parts else None
            for meta in parts[1:]:
                info = info or self._info(meta, scope, annotated=True)
        default: object = UNKNOWN if default_node is None else interp.eval(default_node, scope)
        has_default = default_node is not None
        if default_node is not None and info is None:
            info = self._info(default_node, scope, annotated=False)
            if info is not None:
                default = info.kw.get("default", UNKNOWN)
                has_default = default is not Ellipsis and "default" in info.kw
        kind = annotation_kind(annotation, interp, scope) if annotation is not None else None
        if kind is not None and kind.context:
            return None
        if kind is None:
            kind = _Annotation(ParamType.STRING)
            if annotation is None and has_default:
                sample, _ = literal_default(default)
                if isinstance(sample, bool):
                    kind = _Annotation(ParamType.BOOL, flag=True)
                elif isinstance(sample, int):
                    kind = _Annotation(ParamType.INT)
                elif isinstance(sample, float):
                    kind = _Annotation(ParamType.FLOAT)
        is_option = info.kind == "option" if info is not None else has_default
        kw = info.kw if info is not None else {}
        decls = [a for a in (info.args if info is not None else []) if isinstance(a, str)]
        if default is Ellipsis:
            has_default = False
        help_text = _text(kw.get("help"))
        if not is_option:
            draft = Draft(name=arg.arg, slot=ArgvSlot(stage=stage), line=arg.lineno)
            _apply_annotation(draft, kind)
            draft.required = not has_default
            if draft.multiple:
                draft.slot = ArgvSlot(stage=stage, nargs=kind.nargs)
        else:
            flag_name = arg.arg.replace("_", "-")
            if not decls:
                decls = [f"--{flag_name}/--no-{flag_name}"] if kind.flag else [f"--{flag_name}"]
            opts: list[str] = []
            secondary: list[str] = []
            for d in decls:
                first, sep, second = d.partition("/")
                if first.strip():
                    opts.append(first.strip())
                if sep and second.strip():
                    secondary.append(second.strip())
            if not opts:
                self.warn(arg.lineno, f"typer option '{arg.arg}' has no option name: left out")
                return None
            longs = [o for o in opts if o.startswith("--")]
            shorts = [o for o in opts if o not in longs]
            names = [o.lstrip("-") for o in (*longs, *shorts)]
            option = (longs or shorts)[0]
            separate = not option.startswith("--")
            # `-v` only: typer's parameter name (`verbose`) names it, `v` is an alias
            name = names[0] if longs and names[0] else arg.arg
            draft = Draft(
                name=name,
                slot=ArgvSlot(option=option, stage=stage, separate=separate),
                aliases=[n for n in names if n and n != name],
                fallback_names=[n for n in (arg.arg,) if n != name],
                line=arg.lineno,
            )
            if kind.flag:
                bool_default = default if isinstance(default, bool) else False
                draft.type = ParamType.BOOL if bool_default else ParamType.SWITCH
                if secondary:
                    draft.slot = ArgvSlot(
                        option=option, form=ArgForm.PAIR, off=secondary[0], stage=stage
                    )
                else:
                    draft.slot = ArgvSlot(option=option, form=ArgForm.FLAG, stage=stage)
                if bool_default:
                    draft.default = True
                draft.help = help_text
                draft.required = not has_default
                return draft
            if kw.get("count") is True:
                draft.type = ParamType.INT
                draft.range = (0.0, None)
                draft.slot = ArgvSlot(option=option, form=ArgForm.COUNT, stage=stage)
                draft.help = help_text
                return draft
            _apply_annotation(draft, kind)
            if draft.multiple and kind.nargs:
                draft.slot = ArgvSlot(option=option, stage=stage, separate=True, nargs=kind.nargs)
            elif draft.multiple:
                draft.slot = ArgvSlot(
                    option=option, form=ArgForm.APPEND, stage=stage, separate=separate
                )
            prompt = kw.get("prompt")
            draft.required = not has_default or (bool(prompt) and prompt is not UNKNOWN)
        lo, hi = kw.get("min"), kw.get("max")
        if (
            draft.type in (ParamType.INT, ParamType.FLOAT)
            and (_number(lo) is not None or _number(hi) is not None)
            and kw.get("clamp") is not True
        ):
            draft.range = (_number(lo), _number(hi))
        draft.help = help_text
        if not draft.required and has_default:
            _set_default(draft, {"default": default}, None, self.source)
            if draft.default is None and draft.default_text is None and default is not None:
                draft.default_text = source_text(self.source, default_node)
        return draft

    def _info(self, node: ast.expr, scope: Scope, *, annotated: bool) -> _Decl | None:
        if not isinstance(node, ast.Call):
            return None
        qual = self.interp.names.qual(node.func) if dotted(node.func) else None
        if qual not in (
            "typer.Option",
            "typer.Argument",
            "typer.params.Option",
            "typer.params.Argument",
        ):
            return None
        args, kw = self.interp.arguments(node, scope, 0)
        if not annotated and args:
            kw.setdefault("default", args[0])
            args = args[1:]
        elif annotated and args and not isinstance(args[0], str):
            args = args[1:]
        kind = "argument" if qual.endswith("Argument") else "option"
        if not annotated and "default" not in kw:
            kw["default"] = Ellipsis if kind == "argument" else None
        return _Decl(kind, args, kw, node, node.lineno)


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


@dataclass(frozen=True, slots=True)
class _Annotation:
    type: ParamType
    multiple: bool = False
    choices: tuple[str, ...] = ()
    flag: bool = False
    nargs: int = 0
    context: bool = False  # typer.Context / click.Context: not a parameter


def annotation_kind(
    node: ast.expr, interp: Interpreter, scope: Scope, depth: int = 0
) -> _Annotation:
    """The chat type of a typer annotation: scalars, Optional, lists, tuples, Enums, Literal."""
    if depth > 8:
        return _Annotation(ParamType.STRING)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            inner = ast.parse(node.value, mode="eval").body
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return _Annotation(ParamType.STRING)
        return annotation_kind(inner, interp, scope, depth + 1)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        for side in (node.left, node.right):
            if not (isinstance(side, ast.Constant) and side.value is None):
                return annotation_kind(side, interp, scope, depth + 1)
    qual = interp.names.qual(node) if dotted(node) else None
    if isinstance(node, ast.Subscript):
        head = interp.names.qual(node.value) if dotted(node.value) else None
        head = (head or "").rpartition(".")[2]
        elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if head in ("Optional", "Union"):
            rest = [e for e in elts if not (isinstance(e, ast.Constant) and e.value is None)]
            if rest:
                return annotation_kind(rest[0], interp, scope, depth + 1)
        if head in ("List", "list", "Sequence", "Set", "set", "FrozenSet", "frozenset"):
            item = annotation_kind(elts[0], interp, scope, depth + 1)
            return _Annotation(item.type if not item.flag else ParamType.BOOL, True, item.choices)
        if head in ("Tuple", "tuple"):
            kinds = [annotation_kind(e, interp, scope, depth + 1) for e in elts]
            if len(kinds) == 2 and isinstance(elts[1], ast.Constant) and elts[1].value is Ellipsis:
                return _Annotation(kinds[0].type, True, kinds[0].choices)
            same = len({k.type for k in kinds}) == 1
            return _Annotation(kinds[0].type if same else ParamType.STRING, True, nargs=len(kinds))
        if head == "Literal":
            values = [e.value for e in elts if isinstance(e, ast.Constant)]
            choices, _ = choices_of(values)
            return _Annotation(ParamType.STRING, choices=choices)
        return _Annotation(ParamType.STRING)
    if qual is None:
        return _Annotation(ParamType.STRING)
    short = qual.rpartition(".")[2]
    if qual in ("typer.Context", "click.Context", "click.core.Context") or short == "Context":
        return _Annotation(ParamType.STRING, context=True)
    if qual == "bool":
        return _Annotation(ParamType.BOOL, flag=True)
    if qual in ("int", "float"):
        return _Annotation(_SCALARS[qual])
    bound = scope.get(qual) if "." not in qual else UNKNOWN
    if isinstance(bound, Klass) and any(
        b.rpartition(".")[2] in ("Enum", "StrEnum", "IntEnum") for b in interp.class_bases(bound)
    ):
        return _Annotation(ParamType.STRING, choices=_enum_values(bound, interp))
    return _Annotation(ParamType.STRING)


def _enum_values(klass: Klass, interp: Interpreter) -> tuple[str, ...]:
    values: list[object] = []
    for stmt in klass.node.body:
        if not isinstance(stmt, ast.Assign):
            continue
        target = stmt.targets[0]
        if isinstance(target, ast.Name) and not target.id.startswith("_"):
            values.append(interp.eval(stmt.value, klass.scope))
    choices, _ = choices_of(values)
    return choices


def _apply_annotation(draft: Draft, kind: _Annotation) -> None:
    draft.type = ParamType.BOOL if kind.flag else kind.type
    draft.multiple = kind.multiple
    draft.choices = kind.choices
