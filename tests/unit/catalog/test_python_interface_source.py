"""Reading only the part of a Python script that declares its interface gives exactly what
reading the whole script gives (catalog.parsers.pyinterface), with line numbers intact."""

from __future__ import annotations

import ast
import textwrap

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsroom.catalog.parsers.pyinterface import interface_source
from opsroom.catalog.parsers.python import parse_python
from support import FIXTURES

SCRIPTS = sorted((FIXTURES / "python_adopt").rglob("*.py"))
SOURCES = [p.read_text(encoding="utf-8") for p in SCRIPTS]

# Work code of the kinds scripts carry, with the shapes that fool a naive line scanner:
# text at column 0 inside strings, closing brackets at column 0, decorators, nested defs.
HELPERS = [
    '''
def render_report(rows, width=80):
    """Render rows as text.

Column 0 text inside a docstring: def fake(): pass
class NotAClass:
    """
    lines = []
    for row in rows:
        lines.append(" | ".join(str(c) for c in row)[:width])
    return "\\n".join(lines)
''',
    """
@functools.lru_cache(maxsize=None)
@retry(
    times=3,
)
def lookup_owner(host):
    data = {
        "host": host,
        "owner": OWNERS.get(host, "nobody"),
}
    return data["owner"]
""",
    """
class Inventory:
    '''Hosts, read from the CMDB.'''

    def __init__(self, path):
        self.path = path

    def hosts(self):
        def parse(line):
            return line.split(",")[0]
        with open(self.path) as f:
            return [parse(l) for l in f]
""",
    """
USAGE = '''
usage: tool [options]
parser.add_argument("--not-real")
'''
""",
    """
async def poll(url, tries=5):
    for _ in range(tries):
        try:
            return await fetch(url)
        except OSError:
            await asyncio.sleep(1)
    raise TimeoutError(url)
""",
    """
def summarise(results):
    ok = [r for r in results if r["ok"]]
    failed = [r for r in results if not r["ok"]]
    if failed:
        log.warning("%d failed", len(failed))
    else:
        log.info("all %d fine", len(ok))
    return len(failed)
""",
]


def _insert(source: str, helpers: list[str], at: list[int]) -> str:
    """Insert helper definitions before some top-level lines of a script."""
    lines = source.splitlines(keepends=True)
    tree = ast.parse(source)
    tops = sorted(
        min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))]) - 1
        for node in tree.body
    ) or [len(lines)]
    chosen = [(tops[where % len(tops)], helper) for helper, where in zip(helpers, at, strict=False)]
    for i, helper in sorted(chosen, key=lambda c: c[0], reverse=True):  # bottom up: indices hold
        lines.insert(i, helper.lstrip("\n") + "\n")
    return "".join(lines)


def test_scripts_of_the_fixtures_read_the_same_either_way() -> None:
    for source in SOURCES:
        assert parse_python(source) == parse_python(source, whole=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(range(len(SOURCES))),
    st.lists(st.sampled_from(HELPERS), min_size=1, max_size=8),
    st.lists(st.integers(min_value=0, max_value=50), min_size=8, max_size=8),
)
def test_scripts_with_work_code_around_read_the_same_either_way(
    index: int, helpers: list[str], at: list[int]
) -> None:
    source = _insert(SOURCES[index], helpers, at)
    ast.parse(source)  # the mixture is valid Python
    assert parse_python(source) == parse_python(source, whole=True)


def test_work_code_is_left_out_and_lines_stay_in_place() -> None:
    source = _insert(SOURCES[0], HELPERS, list(range(6)))
    reduced = interface_source(source)
    assert reduced is not None
    assert reduced.count("\n") == source.count("\n")
    assert "def summarise" not in reduced
    assert "lookup_owner" not in reduced
    assert "import argparse" in reduced
    for kept, whole in zip(reduced.splitlines(), source.splitlines(), strict=True):
        assert kept in ("", whole)


def test_definitions_reached_from_the_interface_are_kept() -> None:
    source = (
        textwrap.dedent(
            '''\
        """Tool."""
        import argparse, sys, typer

        def add_common(p):
            p.add_argument("--v")

        def setup(p):
            add_common(p)

        def greet(name: str):
            pass

        def unused_work():
            return 1
        '''
        )
        + "\n" * 60
        + "def more_work():\n"
        + "    x = 1\n" * 30
        + textwrap.dedent(
            """\
        def main():
            setup(argparse.ArgumentParser())

        if __name__ == "__main__":
            typer.run(greet)
        """
        )
    )
    reduced = interface_source(source)
    assert reduced is not None
    for kept in ("def add_common", "def setup", "def greet", "def main"):
        assert kept in reduced
    assert "def more_work" not in reduced


def test_a_syntax_error_in_kept_code_is_reported_where_it_is() -> None:
    source = (
        '"""Tool."""\nimport argparse\n\n'
        + "def work():\n"
        + "    x = 1\n" * 60
        + "\ndef main():\n    p = argparse.ArgumentParser(\n\nmain()\n"
    )
    parsed = parse_python(source)
    assert [(p.line, p.message) for p in parsed.problems] == [
        (67, "syntax error: '(' was never closed")
    ]


def test_typer_and_click_commands_without_library_words_are_kept() -> None:
    work = "\n".join(f"def work_{i}():\n    return {i}\n" for i in range(30))
    source = (
        '"""Tool."""\nimport typer\napp = typer.Typer()\n\n'
        + work
        + "\n@app.command()\ndef hello(name: str):\n    pass\n\n"
        + "def bye(name: str):\n    pass\n\napp.command()(bye)\n\n"
        + "@app.callback()\ndef top(region: str = 'eu'):\n    pass\n\napp()\n"
    )
    reduced = interface_source(source)
    assert reduced is not None
    assert "def work_3" not in reduced
    for kept in ("def hello", "def bye", "def top"):
        assert kept in reduced
    parsed = parse_python(source)
    assert parsed == parse_python(source, whole=True)
    assert [s.chat_words for s in parsed.subcommands] == [("hello",), ("bye",)]
