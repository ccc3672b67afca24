"""Parameter patterns match in time linear in the value: a hostile value cannot stall the bot.

Python's backtracking `re` takes exponential time on `(a+)+$` or `(a|aa)*b` against a long
run of `a`s; these values would hang the binder (and the event loop it runs on) for ever.
The time itself is measured in bench/bench_patterns.py; here the answer is what counts.
"""

from __future__ import annotations

import pytest

from opsroom.errors import ParseError
from opsroom.model.commands import CommandSpec, Invocation, Language, ParamSpec
from opsroom.router.parser import bind_arguments

HOSTILE_VALUE = "a" * 50_000 + "!"  # 50 KB that almost matches, then does not
HOSTILE_PATTERNS = ["(a+)+$", "^(a|aa)*b$", "^(a*)*$", "^(a|a?)+$", "(.*a){20}$"]


def _spec(pattern: str, language: Language = Language.PYTHON) -> CommandSpec:
    return CommandSpec("x", "x", language, params=(ParamSpec("v", pattern=pattern),))


def _bind(spec: CommandSpec, value: str) -> Invocation:
    return bind_arguments(spec, ["--v", value])


@pytest.mark.parametrize("language", [Language.PYTHON, Language.SHELL, Language.POWERSHELL])
@pytest.mark.parametrize("pattern", HOSTILE_PATTERNS)
def test_a_50_kb_value_against_a_catastrophic_pattern_gets_its_answer(
    pattern: str, language: Language
) -> None:
    with pytest.raises(ParseError) as refused:
        _bind(_spec(pattern, language), HOSTILE_VALUE)
    message = refused.value.message
    assert message.startswith("--v: 'aaaa")
    assert message.endswith(f" does not match the pattern {pattern}")


@pytest.mark.parametrize("pattern", HOSTILE_PATTERNS[:2])
def test_the_same_patterns_still_accept_what_they_describe(pattern: str) -> None:
    value = "a" * 50_000 + ("b" if "b" in pattern else "")
    assert _bind(_spec(pattern), value).params["v"] == value


def test_powershell_keeps_its_case_insensitive_search() -> None:
    spec = _spec("[A-Z]{3}", Language.POWERSHELL)
    assert _bind(spec, "xabcx").params["v"] == "xabcx"
    long = "a" * 50_000 + "ABC"
    assert _bind(spec, long).params["v"] == long
    with pytest.raises(ParseError, match="does not match"):
        _bind(spec, "ab-12")


def test_elsewhere_the_whole_value_must_match_case_sensitively() -> None:
    spec = _spec("[A-Z]{3}")
    assert _bind(spec, "ABC").params["v"] == "ABC"
    for value in ("abc", "xABCx"):
        with pytest.raises(ParseError, match="does not match"):
            _bind(spec, value)


def test_a_trailing_newline_no_longer_slips_past_an_anchored_pattern() -> None:
    # Python's `$` also matches before a final newline; RE2's matches only at the end.
    spec = _spec("^[a-z]+$", Language.POWERSHELL)
    with pytest.raises(ParseError, match="does not match"):
        _bind(spec, "alice\n")


@pytest.mark.parametrize("pattern", [r"^(\w)\1$", r"^(?=admin)\w+$", r"(?<!x)y"])
def test_a_pattern_that_needs_backtracking_refuses_rather_than_skips(pattern: str) -> None:
    # Only a spec from outside the catalog can carry one: `catalog check` refuses them.
    with pytest.raises(ParseError) as refused:
        _bind(_spec(pattern), "aa")
    assert refused.value.message == (
        f"--v: the command's pattern {pattern!r} is invalid; ask its owner to fix it"
    )


def test_a_value_that_is_not_text_does_not_match() -> None:
    with pytest.raises(ParseError, match="does not match"):
        _bind(_spec(".*", Language.POWERSHELL), "a\ud800b")
