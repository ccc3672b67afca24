"""A hostile value against catastrophic parameter patterns: how long the binder takes.

Times `bind_arguments` — the binder runs on the bot's event loop — for a 50 KB value that
almost matches (`aaa…a!`) against patterns that make a backtracking matcher take for ever:
`(a+)+$`, `^(a|aa)*b$`, `^(a|a?)+$`, `(.*a){20}$`, each as a PowerShell
`[ValidatePattern()]` (case-insensitive search) and as a sidecar pattern (whole value).
Patterns are matched with RE2 (opsroom.model.patterns), linear in the value. Then the
shapes that cost RE2 the most — its DFA explodes and it simulates the pattern instead, at a
cost per character that grows with the pattern: `[ab]*a[ab]{20}$` against 50 KB of random
a/b (budget held) and ten times that pattern (no budget: the known limit). For scale, `(a+)+$`
under Python's backtracking `re` on a value of only 22 characters.
"""

from __future__ import annotations

import re
import sys
import time
import timeit
from collections.abc import Callable

from figures import Figure

BUDGET_MS = 100.0  # issue 9: a 50 KB value against any catalog pattern answers in < 100 ms
PATTERNS = ("(a+)+$", "^(a|aa)*b$", "^(a|a?)+$", "(.*a){20}$")


def _per_call_ms(fn: Callable[[], object], repeat: int) -> float:
    """Per-call mean in ms of the fastest of `repeat` batches (the least disturbed one)."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1000


def measure(size: int, repeat: int = 5) -> list[Figure]:
    """Bind a `size`-character hostile value against each pattern, in both dialects."""
    from opsroom.errors import ParseError
    from opsroom.model.commands import CommandSpec, Language, ParamSpec
    from opsroom.router.parser import bind_arguments

    value = "a" * size + "!"
    out = []
    for pattern in PATTERNS:
        for language, dialect in ((Language.POWERSHELL, "search"), (Language.SHELL, "whole")):
            spec = CommandSpec("x", "x", language, params=(ParamSpec("v", pattern=pattern),))

            def bind(spec: CommandSpec = spec) -> object:
                try:
                    return bind_arguments(spec, ["--v", value])
                except ParseError as e:
                    return e

            assert isinstance(bind(), ParseError), "the hostile value must be refused"
            out.append(
                Figure(
                    f"bind {size // 1000} KB value, `{pattern}` ({dialect})",
                    _per_call_ms(bind, repeat),
                    "ms",
                    BUDGET_MS,
                    "RE2; answer: does not match the pattern",
                )
            )
    return out


def dfa_explosion(size: int, repeat: int) -> list[Figure]:
    """The slowest known shapes for RE2: a counted repetition after an open-ended prefix.

    Cold, as an attacker would make it: a fresh value each time and no states RE2 kept from
    an earlier match (its compiled patterns are cached, with their DFA states, in the bot).
    """
    import random

    import re2

    from figures import median
    from opsroom.model import patterns

    rng = random.Random(0)
    out = []
    for count, budget in ((20, BUDGET_MS), (200, None)):
        pattern = f"[ab]*a[ab]{{{count}}}$"
        for search in (True, False):
            times = []
            for _ in range(repeat):
                value = "".join(rng.choice("ab") for _ in range(size))
                patterns._compile.cache_clear()
                re2.purge()
                started = time.perf_counter()
                patterns.pattern_matches(pattern, value, search=search, ignore_case=search)
                times.append((time.perf_counter() - started) * 1000)
            out.append(
                Figure(
                    f"match {size // 1000} KB a/b, `{pattern}` ({'search' if search else 'whole'})",
                    median(times),
                    "ms",
                    budget,
                    f"cold, median of {repeat}; RE2 leaves its DFA: cost grows with the pattern",
                )
            )
    return out


def backtracking_reference(size: int = 22) -> Figure:
    """Python's `re` on `(a+)+$` with a short almost-matching value: why RE2 is used."""
    value = "a" * size + "!"
    started = time.perf_counter()
    re.search("(a+)+$", value)
    took = (time.perf_counter() - started) * 1000
    return Figure(
        f"for scale: Python re, `(a+)+$`, {size}-char value",
        took,
        "ms",
        None,
        "doubles with each added character; 50 KB would never finish",
    )


def run(quick: bool = False) -> list[Figure]:
    """The pattern figures for a 50 KB value (and the backtracking reference)."""
    repeat = 2 if quick else 5
    return [
        *measure(50_000, repeat),
        *dfa_explosion(50_000, repeat),
        backtracking_reference(20 if quick else 22),
    ]


if __name__ == "__main__":
    for figure in run(quick="--quick" in sys.argv):
        print(f"{figure.name}: {figure.shown} [{figure.verdict}] {figure.note}")
