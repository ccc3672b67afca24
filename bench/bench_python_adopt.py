"""Loading Python as teams already write it: 500 argparse, click and typer scripts, cold.

SPEC §3.10: scripts without opsroom's `def main(...)` convention, whose own command-line
parser is read statically. The files follow what operations collections do: a docstring,
a few helper functions doing the work (subprocess, logging, retries), and a parser built
at module level, in `main()`, in a `build_parser()` helper, under `if __name__ ==
"__main__":`, extended by `add_common(parser)` or `parents=[...]`, with a mutually
exclusive group; one in twenty has sub-commands, one in ten is click, one in ten typer.
Measured like bench_catalog: a fresh interpreter imports the loader and loads once.
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

from bench_catalog import cold_load
from figures import Figure, median
from generate import ACTIONS, AREAS, NOUNS, TEAMS, VERBS

BUDGET_S = 0.5

_HELPER = '''
def {name}(target, retries=3, timeout=30):
    """{verb} {noun} on one target, retrying on failure."""
    last_error = None
    for attempt in range(1, retries + 1):
        try:
            log.info("%s %s (attempt %d)", "{verb}", target, attempt)
            done = subprocess.run(
                ["echo", "{verb}", str(target)], capture_output=True, text=True, timeout=timeout
            )
            if done.returncode == 0:
                return {{"target": target, "output": done.stdout.strip(), "attempts": attempt}}
            last_error = done.stderr.strip()
        except subprocess.TimeoutExpired as exc:
            last_error = str(exc)
        time.sleep(min(2 ** attempt, 10) * 0)
    raise RuntimeError(f"{{target}}: {{last_error}}")
'''


def _helpers(rng: random.Random, verb: str, noun: str) -> str:
    count = rng.randint(2, 7)
    return "\n".join(
        _HELPER.format(name=f"{verb.lower()}_{noun.lower()}_{i}", verb=verb, noun=noun)
        for i in range(count)
    )


def _arguments(rng: random.Random, var: str, noun: str) -> list[str]:
    lines = [f'{var}.add_argument("{noun.lower()}", help="the {noun.lower()} to act on")']
    choices = rng.sample(["dev", "test", "staging", "prod", "dr"], k=3)
    options = [
        f'{var}.add_argument("--env", choices={choices!r}, default="{choices[0]}",'
        ' help="environment")',
        f'{var}.add_argument("-n", "--count", type=int, default={rng.randint(1, 9)},'
        ' help="how many")',
        f'{var}.add_argument("--timeout", type=float, default=30.0,'
        ' help="seconds (default: %(default)s)")',
        f'{var}.add_argument("--tag", action="append", default=[], help="tags (repeatable)")',
        f'{var}.add_argument("--hosts", nargs="+", help="hosts to include")',
        f'{var}.add_argument("--owner", default=os.environ.get("USER"), help="who asked")',
        f'{var}.add_argument("--retries", type=int, choices=range(0, 6), default=3)',
    ]
    lines += rng.sample(options, k=rng.randint(2, len(options)))
    return lines


def argparse_script(rng: random.Random, summary: str, verb: str, noun: str) -> str:
    """One argparse script in one of the shapes operations collections use."""
    head = [
        "#!/usr/bin/env python3",
        f'"""{summary}\n\nGenerated for the benchmark; it changes nothing.\n"""',
        "import argparse",
        "import logging",
        "import os",
        "import subprocess",
        "import sys",
        "import time",
        "",
        "log = logging.getLogger(__name__)",
    ]
    common = [
        "def add_common(parser):",
        '    parser.add_argument("-v", "--verbose", action="count", default=0)',
        '    parser.add_argument("--dry-run", action="store_true", help="change nothing")',
    ]
    mutex = [
        "    out = parser.add_mutually_exclusive_group()",
        '    out.add_argument("--json", action="store_true")',
        '    out.add_argument("--csv", action="store_true")',
    ]
    shape = rng.random()
    args = _arguments(rng, "parser", noun)
    if shape < 0.05:  # sub-commands
        parser = [
            "def build_parser():",
            "    parser = argparse.ArgumentParser(description=__doc__)",
            "    add_common(parser)",
            '    subs = parser.add_subparsers(dest="command", required=True)',
            '    for name in ("list", "show", "purge"):',
            '        sub = subs.add_parser(name, help=f"{name} them")',
            *("        " + a.replace("parser.", "sub.") for a in args),
            "    return parser",
        ]
        tail = ["if __name__ == '__main__':", "    sys.exit(main())"]
        main = [
            "def main(argv=None):",
            "    args = build_parser().parse_args(argv)",
            "    return 0",
        ]
    elif shape < 0.35:  # build_parser() + main(argv=None)
        parser = [
            "def build_parser():",
            "    parser = argparse.ArgumentParser(description=__doc__)",
            *("    " + a for a in args),
            *mutex,
            "    add_common(parser)",
            "    return parser",
        ]
        main = [
            "def main(argv=None):",
            "    args = build_parser().parse_args(argv)",
            "    return 0",
        ]
        tail = ["if __name__ == '__main__':", "    sys.exit(main())"]
    elif shape < 0.65:  # everything in main()
        parser = []
        main = [
            "def main():",
            "    common = argparse.ArgumentParser(add_help=False)",
            '    common.add_argument("--config", default="/etc/ops.ini")',
            "    parser = argparse.ArgumentParser(description=__doc__, parents=[common])",
            *("    " + a for a in args),
            *mutex,
            "    add_common(parser)",
            "    args = parser.parse_args()",
            "    logging.basicConfig(level=logging.WARNING - 10 * args.verbose)",
            "    return 0",
        ]
        tail = ["if __name__ == '__main__':", "    sys.exit(main())"]
    else:  # module level, under the guard
        parser = []
        main = []
        tail = [
            "if __name__ == '__main__':",
            "    parser = argparse.ArgumentParser(description=__doc__)",
            *("    " + a for a in args),
            "    add_common(parser)",
            "    args = parser.parse_args()",
        ]
    body = [*head, "", _helpers(rng, verb, noun), "", *common, "", *parser, "", *main, "", *tail]
    return "\n".join(body) + "\n"


def click_script(rng: random.Random, summary: str, verb: str, noun: str) -> str:
    """A click command with options, a choice and a flag."""
    return (
        f'"""{summary}"""\nimport logging\nimport subprocess\nimport time\n\nimport click\n\n'
        "log = logging.getLogger(__name__)\n" + _helpers(rng, verb, noun) + "\n\n@click.command()\n"
        f'@click.argument("{noun.lower()}")\n'
        '@click.option("--env", type=click.Choice(["dev", "prod"]), default="dev")\n'
        f'@click.option("--count", "-n", type=click.IntRange(1, 10), default={rng.randint(1, 9)})\n'
        '@click.option("--tag", multiple=True)\n'
        '@click.option("--force", is_flag=True, help="no questions")\n'
        f"def cli({noun.lower()}, env, count, tag, force):\n"
        f'    """{summary}"""\n\n\nif __name__ == "__main__":\n    cli()\n'
    )


def typer_script(rng: random.Random, summary: str, verb: str, noun: str) -> str:
    """A typer function with annotated options."""
    return (
        f'"""{summary}"""\nimport logging\nimport subprocess\nimport time\n'
        "from typing import Annotated, List, Optional\n\nimport typer\n\n"
        "log = logging.getLogger(__name__)\n"
        + _helpers(rng, verb, noun)
        + f"\n\ndef main(\n    {noun.lower()}: str,\n"
        '    env: Annotated[str, typer.Option(help="environment")] = "dev",\n'
        '    count: Annotated[int, typer.Option("--count", "-n", min=1, max=9)]'
        f" = {rng.randint(1, 9)},\n"
        "    force: bool = False,\n"
        "    tags: Annotated[Optional[List[str]], typer.Option()] = None,\n"
        f'):\n    """{summary}"""\n\n\nif __name__ == "__main__":\n    typer.run(main)\n'
    )


def generate_scripts(root: Path, n: int, seed: int = 0) -> int:
    """`n` Python scripts under `root`; returns how many commands they declare."""
    rng = random.Random(seed)
    folders = [(t, a) for t in TEAMS for a in AREAS]
    names: set[str] = set()
    commands = 0
    for i in range(n):
        team, area = folders[i % len(folders)]
        verb, noun = rng.choice(VERBS), rng.choice(NOUNS)
        stem = f"{area}_{verb.lower()}_{noun.lower()}"  # never `test_*.py` (SPEC §3.1)
        name, suffix = stem, 2
        while name in names:
            name, suffix = f"{stem}_{suffix}", suffix + 1
        names.add(name)
        summary = f"{ACTIONS[verb]} a {noun.lower()} in the {area} estate ({team} team)."
        kind = rng.random()
        if kind < 0.1:
            text = click_script(rng, summary, verb, noun)
        elif kind < 0.2:
            text = typer_script(rng, summary, verb, noun)
        else:
            text = argparse_script(rng, summary, verb, noun)
        commands += 3 if "add_subparsers" in text else 1
        path = root / team / area / f"{name}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return commands


def measure(n: int, runs: int) -> list[Figure]:
    """Generate `n` scripts and load them `runs` times cold; medians reported."""
    with tempfile.TemporaryDirectory(prefix="opsroom-bench-py-") as tmp:
        root = Path(tmp) / "catalog"
        expected = generate_scripts(root, n, seed=n)
        lines = sum(len(p.read_text().splitlines()) for p in root.rglob("*.py"))
        samples = [cold_load(root) for _ in range(runs)]
    load = median([s["load_s"] for s in samples])
    wall = median([s["wall_s"] for s in samples])
    last = samples[-1]
    if int(last["errors"]) or int(last["commands"]) != expected:
        raise RuntimeError(f"expected {expected} commands and no error, got {last}")
    note = (
        f"load_catalog; whole child process {wall:.2f} s; {n} files of {lines // n} lines"
        f" on average, {int(last['commands'])} commands (median of {runs})"
    )
    return [Figure(f"catalog load, {n} argparse/click/typer scripts", load, "s", BUDGET_S, note)]


def run(quick: bool = False) -> list[Figure]:
    """The figure: 500 scripts, median of 5 cold loads (of 3 with `quick`)."""
    return measure(500, runs=3 if quick else 5)


if __name__ == "__main__":
    for figure in run(quick="--quick" in sys.argv):
        print(f"{figure.name}: {figure.shown} [{figure.verdict}] {figure.note}")
