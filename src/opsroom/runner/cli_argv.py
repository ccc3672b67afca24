"""The argv of a Python script that parses its own command line (argparse, click, typer).

SPEC §3.10: `python script.py <sub-command words> <values>`, never through a shell. Each
parameter carries where it goes (`ParamSpec.argv`): positionals in order, options as
`--name=value` (one word, so a value starting with `-` stays a value; click's short options
take it as the next word), flags bare, a count as a repeated flag, an append option once per
value, and the options of a parent parser before the sub-command word that leaves it.

When a positional value starts with `-`, the options go first and `--` before the
positionals: argparse and click read everything after `--` as values. argparse before
Python 3.12 drops a value that is exactly `--` wherever it appears, so no such value is
passed to any of these scripts: the request is refused instead of reaching the script
changed.
"""

from __future__ import annotations

import re

from opsroom.errors import RefusedError
from opsroom.model.commands import (
    ArgForm,
    ArgvSlot,
    CommandSpec,
    Invocation,
    ParamSpec,
    ParamValue,
    Scalar,
)

# argparse reads these as numbers, not options (ArgumentParser._negative_number_matcher).
_NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")


def _text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _looks_like_option(text: str) -> bool:
    return len(text) > 1 and text.startswith("-")


def _items(value: ParamValue) -> tuple[Scalar, ...]:
    return value if isinstance(value, tuple) else (value,)


def _option_words(spec: CommandSpec, p: ParamSpec, slot: ArgvSlot, value: ParamValue) -> list[str]:
    option = slot.option
    items = _items(value)
    if slot.form is ArgForm.FLAG:
        return [option] if items and items[0] is True else []
    if slot.form is ArgForm.PAIR:
        if items and items[0] is True:
            return [option]
        return [slot.off] if slot.off else []
    if slot.form is ArgForm.COUNT:
        times = items[0] if items else 0
        if isinstance(times, bool) or not isinstance(times, int) or times < 0:
            raise RefusedError(f"{spec.name}: --{p.name} counts, and takes a whole number")
        return [option] * times
    texts = [_text(v) for v in items]
    if slot.form is ArgForm.APPEND:
        out: list[str] = []
        for text in texts:
            out += [option, text] if slot.separate else [f"{option}={text}"]
        return out
    if slot.nargs and len(texts) != slot.nargs:
        raise RefusedError(
            f"{spec.name}: --{p.name} takes exactly {slot.nargs} values, "
            f"{len(texts)} given; nothing was run"
        )
    if not p.multiple or (len(texts) == 1 and not slot.nargs):
        if slot.separate:
            return [option, texts[0]]
        return [f"{option}={texts[0]}"]
    if not slot.separate:
        # `--hosts a -b`: argparse would read `-b` as an option of its own.
        bad = [t for t in texts if _looks_like_option(t) and not _NEGATIVE_NUMBER.match(t)]
        if bad:
            raise RefusedError(
                f"{spec.name}: --{p.name}: {bad[0]!r} starts with '-', which this script "
                "would read as an option when several values are given; nothing was run"
            )
    return [option, *texts]


def cli_argv(spec: CommandSpec, invocation: Invocation) -> tuple[str, ...]:
    """The words after `python script.py` for this invocation; RefusedError if inexpressible."""
    words = spec.cli_words or ()
    last = len(words)
    options: list[list[str]] = [[] for _ in range(last + 1)]
    positionals: list[list[tuple[ParamSpec, ParamValue | None]]] = [[] for _ in range(last + 1)]
    for p in spec.params:
        # A parameter a sidecar added has no slot: an option named like it.
        slot = p.argv or ArgvSlot(option="--" + p.name.replace("_", "-"))
        stage = min(max(slot.stage, 0), last)
        value = invocation.params.get(p.name)
        for item in _items(value) if value is not None else ():
            if isinstance(item, str) and item == "--":
                raise RefusedError(
                    f"{spec.name}: {p.name}: a value of exactly '--' cannot reach this "
                    "script's parser unchanged; nothing was run"
                )
        if not slot.option:
            positionals[stage].append((p, value))
        elif value is not None:
            options[stage] += _option_words(spec, p, slot, value)
    out: list[str] = []
    for stage in range(last + 1):
        out += _stage(spec, options[stage], positionals[stage], final=stage == last)
        if stage < last:
            out.append(words[stage])
    return tuple(out)


def _stage(
    spec: CommandSpec,
    options: list[str],
    positionals: list[tuple[ParamSpec, ParamValue | None]],
    *,
    final: bool,
) -> list[str]:
    """One parser's words: its positionals in order, then its options (or the reverse, with
    `--` between, when a positional value starts with `-`)."""
    ordered = sorted(positionals, key=lambda pv: pv[0].position or 0)
    texts: list[str] = []
    pending: list[ParamSpec] = []  # earlier positionals left without a value
    for p, value in ordered:
        if value is None:
            pending.append(p)
            continue
        for gap in pending:
            if gap.default is None:
                raise RefusedError(
                    f"{spec.name}: {p.name} is given but {gap.name} is not; the script "
                    "reads its positional values in order; nothing was run"
                )
            # the script's own default, written out so that later values land in place
            texts += [_text(v) for v in _items(gap.default)]
        pending = []
        texts += [_text(v) for v in _items(value)]
    if not any(_looks_like_option(t) for t in texts):
        return texts + options
    if not final:
        raise RefusedError(
            f"{spec.name}: a value before the sub-command may not start with '-'; nothing was run"
        )
    return [*options, "--", *texts]
