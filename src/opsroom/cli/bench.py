"""`opsroom bench`: the benchmark suite of a source checkout, printing its figures."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--quick", is_flag=True, help="Smaller sizes: a fast sanity check.")
def bench(quick: bool) -> None:
    """Run bench/run.py from the source checkout and print its table."""
    root = Path(__file__).resolve().parents[3]
    script = root / "bench" / "run.py"
    if not script.is_file():
        click.echo("opsroom bench needs a source checkout (bench/run.py not found).", err=True)
        sys.exit(2)
    import runpy

    sys.path.insert(0, str(root))
    module = runpy.run_path(str(script), run_name="opsroom_bench")
    sys.exit(module["main"](["--quick"] if quick else []))
