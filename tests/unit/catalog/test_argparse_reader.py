"""argparse parsers read statically: every literal form of SPEC §3.10, never executed."""

from __future__ import annotations

import textwrap
from pathlib import Path

from opsroom.catalog.parsers.base import ParsedScript
from opsroom.catalog.parsers.python import parse_python
from opsroom.catalog.scan import load_catalog
from opsroom.model.catalog import Severity
from opsroom.model.commands import ArgForm, ArgvSlot, ExclusiveGroup, ParamSpec, ParamType


def read(source: str) -> ParsedScript:
    return parse_python(textwrap.dedent(source))


def param(parsed: ParsedScript, name: str) -> ParamSpec:
    found = [p for p in parsed.params if p.name == name]
    assert found, f"no parameter {name!r} in {[p.name for p in parsed.params]}"
    return found[0]


def messages(parsed: ParsedScript, severity: Severity | None = None) -> list[str]:
    return [p.message for p in parsed.problems if severity is None or p.severity is severity]


def test_every_add_argument_form() -> None:
    parsed = read(
        """\
        '''Do things.'''
        import argparse, pathlib

        p = argparse.ArgumentParser()
        p.add_argument("src", type=pathlib.Path, help="source")
        p.add_argument("rest", nargs="*", help="more")
        p.add_argument("--count", "-c", type=int, default="3", help="n (default %(default)s)")
        p.add_argument("--ratio", type=float, required=True)
        p.add_argument("--name", type=str, metavar="NAME", dest="who")
        p.add_argument("--level", choices=["low", "high"], default="low")
        p.add_argument("--force", action="store_true")
        p.add_argument("--no-cache", action="store_false", dest="cache")
        p.add_argument("--fast", action="store_const", const=9, dest="speed")
        p.add_argument("-v", action="count", dest="verbose", default=0)
        p.add_argument("--tag", action="append")
        p.add_argument("--hosts", nargs="+")
        p.add_argument("--pair", nargs=2, type=int)
        p.add_argument("--maybe", nargs="?", const="x")
        p.add_argument("--version", action="version", version="1.0")
        p.parse_args()
        """
    )
    assert [p.name for p in parsed.params] == [
        "src",
        "rest",
        "count",
        "ratio",
        "name",
        "level",
        "force",
        "no-cache",
        "fast",
        "verbose",
        "tag",
        "hosts",
        "pair",
        "maybe",
    ]
    assert param(parsed, "src") == ParamSpec(
        "src", required=True, help="source", position=0, line=5, argv=ArgvSlot()
    )
    rest = param(parsed, "rest")
    assert (rest.multiple, rest.required, rest.position) == (True, False, 1)
    count = param(parsed, "count")
    assert (count.type, count.default, count.aliases) == (ParamType.INT, 3, ("c",))
    assert count.help == "n (default 3)"
    assert count.argv == ArgvSlot(option="--count")
    assert param(parsed, "ratio").required
    assert param(parsed, "ratio").type is ParamType.FLOAT
    assert param(parsed, "name").argv == ArgvSlot(option="--name")
    assert param(parsed, "level").choices == ("low", "high")
    for flag in ("force", "no-cache", "fast"):
        p = param(parsed, flag)
        assert (p.type, p.argv) == (
            ParamType.SWITCH,
            ArgvSlot(option="--" + flag, form=ArgForm.FLAG),
        )
    verbose = param(parsed, "verbose")
    assert (verbose.type, verbose.range, verbose.aliases) == (ParamType.INT, (0.0, None), ("v",))
    assert verbose.argv == ArgvSlot(option="-v", form=ArgForm.COUNT)
    assert param(parsed, "tag").argv == ArgvSlot(option="--tag", form=ArgForm.APPEND)
    assert param(parsed, "tag").multiple
    assert param(parsed, "hosts").multiple
    assert param(parsed, "hosts").argv == ArgvSlot("--hosts")
    pair = param(parsed, "pair")
    assert (pair.multiple, pair.type, pair.argv.nargs if pair.argv else None) == (
        True,
        ParamType.INT,
        2,
    )
    assert not param(parsed, "maybe").multiple
    assert parsed.read_as == "argparse"
    assert parsed.cli_words == ()
    assert messages(parsed) == []


def test_boolean_optional_action_is_an_on_off_pair() -> None:
    parsed = read(
        """\
        '''x'''
        import argparse
        p = argparse.ArgumentParser()
        p.add_argument("--color", action=argparse.BooleanOptionalAction, default=True)
        p.add_argument("--cache", action=argparse.BooleanOptionalAction)
        p.parse_args()
        """
    )
    color, cache = parsed.params
    assert (color.type, color.default) == (ParamType.BOOL, True)
    assert color.argv == ArgvSlot("--color", form=ArgForm.PAIR, off="--no-color")
    assert (cache.type, cache.default) == (ParamType.SWITCH, None)


def test_choices_from_constants_dicts_and_ranges() -> None:
    parsed = read(
        """\
        '''x'''
        import argparse
        SITES = {"par": 1, "lon": 2}
        LEVELS = ("a",) + ("b", "c")
        p = argparse.ArgumentParser()
        p.add_argument("--site", choices=list(SITES))
        p.add_argument("--level", choices=LEVELS, default=LEVELS[1])
        p.add_argument("--pct", type=int, choices=range(1, 101))
        p.add_argument("--odd", choices=range(1, 8, 2))
        p.add_argument("--env", choices=get_envs())
        p.parse_args()
        """
    )
    assert param(parsed, "site").choices == ("par", "lon")
    assert (param(parsed, "level").choices, param(parsed, "level").default) == (
        ("a", "b", "c"),
        "b",
    )
    pct = param(parsed, "pct")
    assert (pct.choices, pct.range) == ((), (1.0, 100.0))
    assert param(parsed, "odd").choices == ("1", "3", "5", "7")
    assert param(parsed, "env").choices == ()  # computed at run time: any value


def test_defaults_the_script_computes_are_shown_as_text_never_run() -> None:
    parsed = read(
        """\
        '''x'''
        import argparse, os
        p = argparse.ArgumentParser()
        p.add_argument("--token", default=os.environ.get("TOKEN", "t"))
        p.add_argument("--mode", choices=["a", "b"], default="zzz")
        p.add_argument("--when", default=argparse.SUPPRESS)
        p.parse_args()
        """
    )
    token = param(parsed, "token")
    assert (token.default, token.default_text) == (None, 'os.environ.get("TOKEN", "t")')
    mode = param(parsed, "mode")  # argparse accepts an odd default; the catalog must too
    assert (mode.default, mode.default_text) == (None, '"zzz"')
    assert param(parsed, "when").default is None
    assert messages(parsed, Severity.ERROR) == []


def test_a_required_option_with_a_default_loses_the_default_argparse_ignores() -> None:
    parsed = read(
        """\
        '''x'''
        import argparse
        p = argparse.ArgumentParser()
        p.add_argument("--zone", required=True, default="eu")
        p.add_argument("host", default="h")
        p.parse_args()
        """
    )
    assert [(p.name, p.required, p.default) for p in parsed.params] == [
        ("zone", True, None),
        ("host", True, None),
    ]


def test_parser_in_main_under_main_guard_and_in_a_returning_helper() -> None:
    in_main = """\
        '''x'''
        import argparse
        def main():
            p = argparse.ArgumentParser()
            p.add_argument("--a")
            p.parse_args()
        if __name__ == "__main__":
            main()
        """
    under_guard = """\
        '''x'''
        import argparse
        if __name__ == "__main__":
            p = argparse.ArgumentParser()
            p.add_argument("--a")
            args = p.parse_args()
        """
    helper = """\
        '''x'''
        import argparse, sys
        def build():
            p = argparse.ArgumentParser()
            p.add_argument("--a")
            return p
        def main(argv=None):
            return build().parse_args(argv)
        sys.exit(main())
        """
    for source in (in_main, under_guard, helper):
        parsed = read(source)
        assert [p.name for p in parsed.params] == ["a"], source
        assert parsed.read_as == "argparse"


def test_a_helper_extends_the_parser_it_is_handed_and_parents_are_inherited() -> None:
    parsed = read(
        """\
        '''x'''
        from argparse import ArgumentParser as AP

        def add_auth(parser, required=False):
            parser.add_argument("--user", required=required)
            parser.add_argument("--password-file")

        def add_output(group):
            group.add_argument("--json", action="store_true")

        def main():
            base = AP(add_help=False)
            base.add_argument("--debug", action="store_true")
            p = AP(parents=[base])
            add_auth(p, required=True)
            add_output(p.add_argument_group("output"))
            p.add_argument("target")
            p.parse_args()

        if __name__ == "__main__":
            main()
        """
    )
    assert [(p.name, p.required) for p in parsed.params] == [
        ("debug", False),
        ("user", True),
        ("password-file", False),
        ("json", False),
        ("target", True),
    ]


def test_mutually_exclusive_groups_are_kept_and_shown_in_help() -> None:
    parsed = read(
        """\
        '''x'''
        import argparse
        p = argparse.ArgumentParser()
        out = p.add_mutually_exclusive_group(required=True)
        out.add_argument("--json", action="store_true", help="JSON out")
        out.add_argument("--csv", action="store_true")
        quiet = p.add_argument_group("noise").add_mutually_exclusive_group()
        quiet.add_argument("-q", "--quiet", action="store_true")
        quiet.add_argument("--verbose", action="store_true")
        p.parse_args()
        """
    )
    assert parsed.exclusive == (
        ExclusiveGroup(("json", "csv"), required=True),
        ExclusiveGroup(("quiet", "verbose")),
    )
    assert param(parsed, "json").help == "JSON out (exactly one of --json, --csv)"
    assert param(parsed, "quiet").help == "(not with --verbose)"


def test_sub_commands_each_get_the_parents_options_first() -> None:
    parsed = read(
        """\
        '''Manage VMs.'''
        import argparse
        def common(sp):
            sp.add_argument("--region", default="eu")
        parser = argparse.ArgumentParser()
        parser.add_argument("-v", "--verbose", action="store_true")
        subs = parser.add_subparsers(dest="cmd", required=True)
        start = subs.add_parser("start", help="Start a VM", aliases=["up"])
        start.add_argument("name")
        common(start)
        for word in ("stop", "kill"):
            sp = subs.add_parser(word, description="Stop it.\\n\\nLonger.")
            sp.add_argument("--force", action="store_true")
        snap = subs.add_parser("snapshot_vm")
        snap_subs = snap.add_subparsers()
        snap_subs.add_parser("list").add_argument("--all", action="store_true")
        parser.parse_args()
        """
    )
    assert parsed.params == ()
    by_words = {s.chat_words: s for s in parsed.subcommands}
    assert list(by_words) == [
        ("start",),
        ("stop",),
        ("kill",),
        ("snapshot-vm", "list"),
    ]
    start = by_words[("start",)]
    assert (start.words, start.summary, start.aliases) == (("start",), "Start a VM", (("up",),))
    assert [(p.name, p.argv.stage if p.argv else None, p.position) for p in start.params] == [
        ("verbose", 0, None),
        ("name", 1, 0),
        ("region", 1, None),
    ]
    stop = by_words[("stop",)]
    assert (stop.summary, stop.description) == ("Stop it.", "Longer.")
    deep = by_words[("snapshot-vm", "list")]
    assert deep.words == ("snapshot_vm", "list")
    assert [(p.name, p.argv.stage if p.argv else None) for p in deep.params] == [
        ("verbose", 0),
        ("all", 2),
    ]


def test_sub_commands_become_commands_named_after_the_file(tmp_path: Path) -> None:
    (tmp_path / "vm").mkdir()
    (tmp_path / "vm" / "ctl.py").write_text(
        textwrap.dedent(
            """\
            '''Manage VMs.'''
            # opsroom: aliases = ["vmc"]
            import argparse
            parser = argparse.ArgumentParser()
            subs = parser.add_subparsers()
            subs.add_parser("start", help="Start one", aliases=["up"]).add_argument("name")
            subs.add_parser("list_all")
            parser.parse_args()
            """
        ),
        encoding="utf-8",
    )
    catalog = load_catalog(tmp_path)
    assert catalog.errors == ()
    specs = {c.name: c for c in catalog.commands}
    assert sorted(specs) == ["vm ctl list-all", "vm ctl start"]
    start = specs["vm ctl start"]
    assert (start.summary, start.cli_words, start.path) == ("Start one", ("start",), "vm/ctl.py")
    assert start.aliases == ("vmc start", "vm ctl up")
    assert specs["vm ctl list-all"].cli_words == ("list_all",)
    assert specs["vm ctl list-all"].summary == "Manage VMs."


def test_class_based_and_loop_built_and_keyword_dict_parsers() -> None:
    parsed = read(
        """\
        '''x'''
        import argparse
        OPTS = {"--retries": {"type": int, "default": 2}}
        class Tool:
            def __init__(self):
                self.parser = argparse.ArgumentParser()
                for name in ("--src", "--dst"):
                    self.parser.add_argument(name, required=True)
                for flag, kw in OPTS.items():
                    self.parser.add_argument(flag, **kw)
            def run(self):
                return self.parser.parse_args()
        if __name__ == "__main__":
            Tool().run()
        """
    )
    assert [(p.name, p.type, p.required, p.default) for p in parsed.params] == [
        ("src", ParamType.STRING, True, None),
        ("dst", ParamType.STRING, True, None),
        ("retries", ParamType.INT, False, 2),
    ]


def test_conflict_handler_resolve_keeps_the_last_definition() -> None:
    parsed = read(
        """\
        '''x'''
        import argparse
        p = argparse.ArgumentParser(conflict_handler="resolve")
        p.add_argument("--n", type=int, default=1)
        p.add_argument("--n", type=int, default=2)
        p.parse_args()
        """
    )
    assert [(p.name, p.default) for p in parsed.params] == [("n", 2)]


def test_short_only_options_take_their_dest_as_name_and_clashes_are_left_out() -> None:
    parsed = read(
        """\
        '''x'''
        import argparse
        p = argparse.ArgumentParser()
        p.add_argument("-o", dest="output")
        p.add_argument("-n")
        p.add_argument("-N")
        p.add_argument("-v", action="store_true")
        p.add_argument("-V", action="store_true", dest="vv")
        p.parse_args()
        """
    )
    assert [(p.name, p.aliases) for p in parsed.params] == [
        ("output", ("o",)),
        ("n", ()),
        ("v", ()),
        ("vv", ()),  # `V` would clash with `v`: its dest names it, without the alias
    ]
    assert param(parsed, "vv").argv == ArgvSlot("-V", form=ArgForm.FLAG)
    warnings = messages(parsed, Severity.WARNING)
    assert warnings == [
        "parameter 'N' clashes with 'n' (chat names match case-insensitively): left out"
    ]


def test_unreadable_arguments_are_left_out_with_a_warning_not_guessed() -> None:
    parsed = read(
        """\
        '''x'''
        import argparse
        NAMES = load_names()
        p = argparse.ArgumentParser()
        p.add_argument("--ok")
        p.add_argument(NAMES[0])
        p.add_argument("pos", "--mixed")
        p.add_argument(*NAMES)
        extra.register(p)
        p.parse_args()
        """
    )
    assert [p.name for p in parsed.params] == ["ok"]
    assert messages(parsed, Severity.WARNING) == [
        "the parser is handed to extra.register(), which is not in this file: "
        "the arguments it adds are not read",
        "add_argument with a name that is not a literal string: left out",
        "add_argument mixes option and positional names ['pos', '--mixed']: left out",
        "add_argument with a name that is not a literal string: left out",
    ]


def test_a_main_with_real_parameters_keeps_the_main_convention() -> None:
    parsed = read(
        """\
        '''x'''
        import argparse
        def main(host: str, port: int = 22):
            pass
        if __name__ == "__main__":
            p = argparse.ArgumentParser()
            p.add_argument("host")
            main(p.parse_args().host)
        """
    )
    assert parsed.read_as == "main"
    assert parsed.cli_words is None
    assert [p.name for p in parsed.params] == ["host", "port"]


def test_main_that_takes_the_namespace_hands_over_to_argparse() -> None:
    parsed = read(
        """\
        '''x'''
        import argparse, sys
        def main(args):
            print(args.host)
        if __name__ == "__main__":
            p = argparse.ArgumentParser()
            p.add_argument("host")
            sys.exit(main(p.parse_args()))
        """
    )
    assert (parsed.read_as, [p.name for p in parsed.params]) == ("argparse", ["host"])


def test_a_parser_in_a_main_nobody_calls_is_not_offered_and_says_why() -> None:
    parsed = read(
        """\
        '''Console-script entry point.'''
        import argparse
        def main():
            p = argparse.ArgumentParser()
            p.add_argument("--a")
            p.parse_args()
        """
    )
    assert parsed.read_as == "main"
    assert parsed.cli_words is None
    assert parsed.params == ()
    assert messages(parsed, Severity.WARNING) == [
        "the script never calls main() itself, so its argparse arguments are not offered "
        "(opsroom calls main() with none)"
    ]


def test_a_parser_no_top_level_code_runs_is_an_error_nothing_would_run() -> None:
    parsed = read(
        """\
        '''x'''
        import argparse
        def cli():
            p = argparse.ArgumentParser()
            p.add_argument("--a")
            p.parse_args()
        """
    )
    assert messages(parsed, Severity.ERROR) == [
        "the argparse parser is never run by the script's own top-level code "
        '(call it under `if __name__ == "__main__":`): running it would do nothing'
    ]


def test_description_gives_the_summary_when_there_is_no_docstring() -> None:
    parsed = read(
        """\
        import argparse
        p = argparse.ArgumentParser(description="Purge the cache.\\n\\nAll of it.")
        p.parse_args()
        """
    )
    assert (parsed.summary, parsed.description) == ("Purge the cache.", "All of it.")
    assert messages(parsed) == []


def test_a_docstring_wins_over_the_description_and_doc_is_the_docstring() -> None:
    parsed = read(
        """\
        '''Real summary.

        Details.
        '''
        import argparse
        p = argparse.ArgumentParser(description=__doc__)
        p.parse_args()
        """
    )
    assert (parsed.summary, parsed.description) == ("Real summary.", "Details.")
    assert parsed.read_as == "argparse"


def test_fromfile_prefix_chars_keep_chat_values_from_naming_files() -> None:
    parsed = read(
        """\
        '''x'''
        import argparse
        p = argparse.ArgumentParser(fromfile_prefix_chars="@")
        p.add_argument("target", help="where")
        p.add_argument("--hosts", nargs="+")
        p.add_argument("--name")
        p.parse_args()
        """
    )
    target, hosts, name = parsed.params
    assert target.pattern == hosts.pattern == "(?s)(?:[^@].*)?"
    assert target.help == "where (may not start with @)"
    assert name.pattern is None  # passed as `--name=@x`: argparse reads no file for it
