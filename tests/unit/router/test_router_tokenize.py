"""Chat text → words: normalisation of what chat clients do, POSIX tokenising, triggers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsroom.errors import ParseError
from opsroom.router.parser import normalize, strip_trigger, tokenize

NORMALIZE_CASES = [
    ("curly-double", "“hello world”", '"hello world"'),
    ("low-double", "„hallo“", '"hallo"'),
    ("guillemets", "«bonjour»", '"bonjour"'),
    ("curly-single", "‘x y’", "'x y'"),
    ("low-single", "‚x‛", "'x'"),
    ("fullwidth-quotes", "＂a＂ ＇b＇", "\"a\" 'b'"),
    ("apostrophe-in-word-kept", "don’t", "don’t"),
    ("apostrophe-closing-quote", "‘it’s’", "'it’s'"),
    ("nbsp", "a\u00a0b", "a b"),
    ("narrow-nbsp", "a\u202fb", "a b"),
    ("figure-space", "a\u2007b", "a b"),
    ("em-space", "a\u2003b", "a b"),
    ("ideographic-space", "a\u3000b", "a b"),
    ("zero-width-removed", "st\u200batus\ufeff", "status"),
    ("word-joiner-removed", "a\u2060b", "ab"),
    ("zwj-emoji-kept", "👩\u200d💻", "👩\u200d💻"),
    ("em-dash-option", "deploy —force", "deploy --force"),
    ("en-dash-option", "deploy –force", "deploy --force"),
    ("horizontal-bar", "deploy ―force", "deploy --force"),
    ("figure-dash", "deploy ‒force", "deploy --force"),
    ("minus-option", "deploy −force", "deploy --force"),
    ("em-dash-first", "—env prod", "--env prod"),
    ("lone-em-dash-ends-options", "a — -b", "a -- -b"),
    ("em-dash-with-value", "—name=x", "--name=x"),
    ("minus-number", "--count −5", "--count -5"),
    ("en-dash-number", "–0.5", "-0.5"),
    ("dash-mid-word-kept", "2020–2021 a—b", "2020–2021 a—b"),
    ("dash-in-single-quotes-kept", "'—force'", "'—force'"),
    ("dash-in-double-quotes-kept", '"x —force"', '"x —force"'),
    ("dash-after-escaped-quote-in-dq", '"a\\" —b"', '"a\\" —b"'),
    ("dash-after-equals-kept", "--text=—x", "--text=—x"),
    ("escaped-dash-kept", "\\—x", "\\—x"),
    ("smart-quoted-dash-kept", "“—force”", '"—force"'),
    ("plain-ascii-unchanged", "network status --env prod", "network status --env prod"),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in NORMALIZE_CASES], ids=[c[0] for c in NORMALIZE_CASES]
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


TOKENIZE_CASES = [
    ("empty", "", []),
    ("spaces-only", "  \t ", []),
    ("words", "network status  site1", ["network", "status", "site1"]),
    ("tabs-newlines", "a\tb\nc", ["a", "b", "c"]),
    ("single-quotes", "'a b' c", ["a b", "c"]),
    ("single-quotes-literal-backslash", r"'a\nb'", [r"a\nb"]),
    ("double-quotes", '"a b" c', ["a b", "c"]),
    ("double-escapes", r'"q\"x\\y\$z\`w"', ['q"x\\y$z`w']),
    ("double-other-backslash-kept", r'"C:\temp\x"', [r"C:\temp\x"]),
    ("double-line-continuation", '"a\\\nb"', ["ab"]),
    ("concatenation", "a'b c'\"d e\"f", ["ab cd ef"]),
    ("empty-single", "''", [""]),
    ("empty-double", '""', [""]),
    ("empty-between", "a '' b", ["a", "", "b"]),
    ("backslash-space", r"a\ b", ["a b"]),
    ("backslash-quote", r"it\'s", ["it's"]),
    ("backslash-backslash", r"a\\b", ["a\\b"]),
    ("backslash-letter", r"C:\temp", ["C:temp"]),
    ("backslash-newline-continuation", "a\\\nb", ["ab"]),
    ("trailing-backslash-literal", "a\\", ["a\\"]),
    ("dollar-literal", "$HOME ${x} $(id)", ["$HOME", "${x}", "$(id)"]),
    ("backticks-literal", "`id`", ["`id`"]),
    ("glob-literal", "*.txt ~ ?", ["*.txt", "~", "?"]),
    ("operators-are-characters", "a;b|c&&d>e", ["a;b|c&&d>e"]),
    ("hash-not-comment", "ticket #1234", ["ticket", "#1234"]),
    (
        "injection-quoted-one-value",
        "--text '$(touch x); $HOME | && id `id`'",
        ["--text", "$(touch x); $HOME | && id `id`"],
    ),
    (
        "injection-double-quoted-one-value",
        '--text "$(touch x); \\$HOME | && id"',
        ["--text", "$(touch x); $HOME | && id"],
    ),
    ("option-with-equals-quoted", "--text='a b'", ["--text=a b"]),
    ("nbsp-is-not-a-separator", "a\u00a0b", ["a\u00a0b"]),
    ("unicode-kept", "héllo 日本 👩\u200d💻", ["héllo", "日本", "👩\u200d💻"]),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in TOKENIZE_CASES], ids=[c[0] for c in TOKENIZE_CASES]
)
def test_tokenize(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected


@pytest.mark.parametrize(
    "text",
    ["'abc", '"abc', "a 'b c", 'x "y\\"', "'it's'"],
    ids=["single", "double", "single-mid", "double-escaped-close", "apostrophe-in-single"],
)
def test_unterminated_quote_is_a_parse_error(text: str) -> None:
    with pytest.raises(ParseError, match="unterminated quote"):
        tokenize(text)


def test_normalized_chat_text_tokenizes_as_typed() -> None:
    typed = "deploy “my app” —env prod\u00a0—tag ‘a b’ —force"
    assert tokenize(normalize(typed)) == [
        "deploy",
        "my app",
        "--env",
        "prod",
        "--tag",
        "a b",
        "--force",
    ]


@given(st.text())
def test_single_quoted_rendering_round_trips(s: str) -> None:
    rendered = "'" + s.replace("'", "'\\''") + "'"
    assert tokenize(rendered) == [s]


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="'")), min_size=1))
def test_several_single_quoted_words_round_trip(words: list[str]) -> None:
    assert tokenize(" ".join(f"'{w}'" for w in words)) == words


TRIGGER_CASES = [
    ("prefix", "!status", False, "status"),
    ("prefix-with-args", "!network status --env prod", False, "network status --env prod"),
    ("prefix-leading-space", "  !status", False, "status"),
    ("plain-text-ignored", "status please", False, None),
    ("prefix-then-space-ignored", "! oops", False, None),
    ("prefix-alone-ignored", "!", False, None),
    ("double-prefix-ignored", "!!!", False, None),
    ("mention", "@ops status", False, "status"),
    ("mention-colon", "@ops: status", False, "status"),
    ("mention-comma", "@ops, status", False, "status"),
    ("mention-case", "@OPS status", False, "status"),
    ("name-colon", "ops: status", False, "status"),
    ("name-comma", "Ops, status", False, "status"),
    ("mention-then-prefix", "@ops !status", False, "status"),
    ("mention-alone", "@ops", False, ""),
    ("bare-name-ignored", "ops status", False, None),
    ("longer-word-ignored", "@opsteam status", False, None),
    ("longer-word-colon-ignored", "opsteam: status", False, None),
    ("literal-slack-mention", "<@U024BE7LH> status", False, "status"),
    ("direct-plain", "status", True, "status"),
    ("direct-prefix", "!status", True, "status"),
    ("direct-mention", "@ops status", True, "status"),
    ("direct-prefix-space", "! status", True, "status"),
    ("other-mention-ignored", "@alice status", False, None),
]


@pytest.mark.parametrize(
    ("text", "direct", "expected"),
    [c[1:] for c in TRIGGER_CASES],
    ids=[c[0] for c in TRIGGER_CASES],
)
def test_strip_trigger(text: str, direct: bool, expected: str | None) -> None:
    body = strip_trigger(text, prefix="!", bot_names=("ops", "<@U024BE7LH>"), direct=direct)
    assert body == expected
