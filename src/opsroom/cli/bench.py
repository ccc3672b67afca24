"""`opsroom bench`: the benchmark suite of a source checkout, printing its figures.

The benchmarks (bench/ beside src/) are development tools: they generate catalogs, install
peers into a scratch folder and take minutes, so they are not shipped in the package. An
installed opsroom hides the command (`opsroom --help` does not list it) and, asked for it
anyway, says where to find it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

NOT_HERE = (
    "opsroom bench runs the benchmarks of a source checkout (its bench/ folder), and this "
    "installation has none: run it from a clone of the opsroom repository."
)


def checkout_bench() -> Path | None:
    """The bench/ folder of the source checkout this opsroom runs from, if it does."""
    folder = Path(__file__).resolve().parents[3] / "bench"
    return folder if (folder / "run.py").is_file() else None


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--quick", is_flag=True, help="Smaller sizes: a fast sanity check.")
@click.option(
    "--compare",
    is_flag=True,
    help="opsroom beside Errbot and Hubot (installed into the scratch folder), as ratios.",
)
@click.option(
    "--rounds",
    type=click.IntRange(1, 50),
    help="With --compare: rounds of every bot (default 3, with --quick 2).",
)
@click.option(
    "--scratch",
    type=click.Path(file_okay=False),
    help="With --compare: where the peers are installed and run "
    "(default ${XDG_CACHE_HOME:-~/.cache}/opsroom/peerbench).",
)
def bench(quick: bool, compare: bool, rounds: int | None, scratch: str | None) -> None:
    """Run bench/run.py (or, with --compare, bench/peers/compare.py) and print its table."""
    folder = checkout_bench()
    if folder is None:
        click.echo(NOT_HERE, err=True)
        sys.exit(2)
    if not compare and (rounds is not None or scratch is not None):
        raise click.UsageError("--rounds and --scratch apply only with --compare")
    import runpy

    if not compare:
        sys.path.insert(0, str(folder.parent))
        module = runpy.run_path(str(folder / "run.py"), run_name="opsroom_bench")
        sys.exit(module["main"](["--quick"] if quick else []))
    argv = ["--quick"] if quick else []
    argv += ["--rounds", str(rounds)] if rounds is not None else []
    argv += ["--scratch", scratch] if scratch is not None else []
    sys.exit(_compare_module(folder / "peers" / "compare.py").main(argv))


def _compare_module(path: Path) -> Any:
    """bench/peers/compare.py as a module (its dataclasses need it in sys.modules)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("opsroom_bench_compare", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
