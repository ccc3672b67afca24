"""Parse and dispatch time of one chat message, with 500 and 10,000 commands loaded.

Times the router's hot path for a message, in-process: `strip_trigger` + `tokenize`, then
`Registry.lookup` (longest command-name match), then `bind_arguments` (validation and
conversion against the spec). It stops before policy and the runner, which do not depend
on the size of the catalog. Peers for comparison (research/peer-performance.md, same
machine kind): Errbot 0.25 ms a 'pong' at 500 commands, opsdroid 36 ms (it ranks every
matcher for every message).
"""

from __future__ import annotations

import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path

from figures import Figure
from generate import generate_catalog

BUDGET_BUILTIN_US = 100.0  # 0.1 ms


def _mean_us(fn: Callable[[], object], repeat: int = 5) -> float:
    """Per-call mean in µs of the fastest of `repeat` batches (the least disturbed one)."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()  # enough calls for a batch of at least 0.2 s
    best = min(timer.repeat(repeat=repeat, number=number))
    return best / number * 1e6


def measure(n: int, repeat: int = 5) -> list[Figure]:
    """Load a generated catalog of `n` scripts and time four kinds of message against it."""
    from opsroom.catalog.scan import load_catalog
    from opsroom.errors import UserError
    from opsroom.router.builtins import BUILTIN_SPECS
    from opsroom.router.parser import bind_arguments, strip_trigger, tokenize
    from opsroom.router.registry import Registry

    with tempfile.TemporaryDirectory(prefix="opsroom-bench-") as tmp:
        root = Path(tmp) / "catalog"
        generate_catalog(root, n, seed=n)
        catalog = load_catalog(root)
    specs = (*BUILTIN_SPECS, *catalog.commands)
    build_us = _mean_us(lambda: Registry(specs), repeat=min(repeat, 3))
    registry = Registry(specs)
    # A generated command whose first parameter is a required positional value.
    target = next(s for s in catalog.commands if s.params and s.params[0].required and not s.hidden)

    def dispatch(text: str) -> Callable[[], object]:
        def once() -> object:
            body = strip_trigger(text, prefix="!", bot_names=("ops",), direct=False)
            assert body is not None
            spec, rest = registry.lookup(tokenize(body))
            return bind_arguments(spec, rest, text=body)

        return once

    def unknown() -> object:
        body = strip_trigger("!restrat the printer", prefix="!", bot_names=("ops",), direct=False)
        assert body is not None
        try:
            registry.lookup(tokenize(body))
        except UserError as e:
            return e
        raise AssertionError("an unknown command was found")

    label = f"{n:,} cmds"
    messages = {
        "!version": dispatch("!version"),
        f"!help {target.name}": dispatch(f"!help {target.name}"),
        f"!{target.name} example-01": dispatch(f"!{target.name} example-01"),
    }
    out = []
    for text, fn in messages.items():
        fn()  # fail loudly here, not inside timeit
        budget = BUDGET_BUILTIN_US if text.startswith(("!version", "!help")) else None
        shown = text if len(text) <= 40 else text[:37] + "..."
        out.append(
            Figure(
                f"parse+dispatch `{shown}`, {label}",
                _mean_us(fn),
                "µs",
                budget,
                "strip+tokenize, Registry.lookup, bind_arguments",
            )
        )
    out.append(
        Figure(
            f"unknown command + did-you-mean, {label}",
            _mean_us(unknown),
            "µs",
            None,
            "lookup raising UnknownCommand with suggestions",
        )
    )
    out.append(
        Figure(
            f"Registry build, {label}",
            build_us / 1000,
            "ms",
            None,
            f"{len(specs):,} specs incl. built-ins; once per catalog (re)load",
        )
    )
    return out


def run(quick: bool = False) -> list[Figure]:
    """The dispatch figures at 500 and 10,000 commands (100 and 500 with `quick`)."""
    sizes = (100, 500) if quick else (500, 10_000)
    return [figure for n in sizes for figure in measure(n, repeat=2 if quick else 5)]


if __name__ == "__main__":
    for figure in run(quick="--quick" in sys.argv):
        print(f"{figure.name}: {figure.shown} [{figure.verdict}] {figure.note}")
