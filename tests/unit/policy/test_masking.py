"""Secret values and their encodings never reach a sink unmasked (SPEC §6.4)."""

from __future__ import annotations

import base64
import itertools
import json
import re
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from opsroom.policy.masking import MASK, Masker

SECRET = "s3cr3t/P@ss+wörd=?&"
B = SECRET.encode("utf-8")


HEADER = b"header"  # 6 bytes: the secret then starts `offset` bytes into a 3-byte group


def _inside_base64(offset: int, *, urlsafe: bool = False) -> str:
    """The secret inside a longer base64 string, `offset` bytes after a 3-byte boundary."""
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encode(HEADER + b"x" * offset + B + b":trailer-bytes").decode("ascii")


@pytest.mark.parametrize(
    "shown",
    [
        SECRET,
        base64.b64encode(B).decode(),
        base64.b64encode(B).decode().rstrip("="),
        base64.urlsafe_b64encode(B).decode(),
        base64.urlsafe_b64encode(B).decode().rstrip("="),
        quote(SECRET),
        quote(SECRET, safe=""),
        quote_plus(SECRET),
        re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(SECRET, safe="")),
        re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote_plus(SECRET)),
        json.dumps(SECRET)[1:-1],
        json.dumps(SECRET, ensure_ascii=True)[1:-1],
        B.hex(),
    ],
    ids=[
        "plain",
        "base64",
        "base64-unpadded",
        "base64-urlsafe",
        "base64-urlsafe-unpadded",
        "quote",
        "quote-all",
        "quote-plus",
        "quote-lower-escapes",
        "quote-plus-lower-escapes",
        "json",
        "json-ascii",
        "hex",
    ],
)
def test_every_form_of_the_secret_is_masked(shown: str) -> None:
    masker = Masker({"PW": SECRET})
    out = masker.mask(f"before {shown} after")
    assert out == f"before {MASK} after"


@pytest.mark.parametrize("offset", [0, 1, 2])
@pytest.mark.parametrize("urlsafe", [False, True], ids=["std", "urlsafe"])
def test_secret_inside_a_longer_base64_string_is_masked(offset: int, urlsafe: bool) -> None:
    masker = Masker({"PW": SECRET})
    blob = _inside_base64(offset, urlsafe=urlsafe)
    before = len(HEADER) + offset
    first_whole = -(-before * 8 // 6)  # first character made only of the secret's bits
    end_whole = (before + len(B)) * 8 // 6
    out = masker.mask(blob)
    # Every character carrying only secret bits is gone; the two edge characters, which mix
    # in the neighbours' bits, may go or stay.
    assert any(
        out == blob[:a] + MASK + blob[b:]
        for a in (first_whole - 1, first_whole)
        for b in (end_whole, end_whole + 1)
    ), out


@pytest.mark.parametrize(
    "secret",
    ['quo"te', "back\\slash", 'both\\"mixed', "tab\there", "new\nline"],
    ids=["quote", "backslash", "both", "tab", "newline"],
)
def test_json_escaped_secret_with_quotes_and_backslashes(secret: str) -> None:
    masker = Masker({"PW": secret})
    payload = json.dumps({"password": secret, "n": 1})
    out = masker.mask(payload)
    assert out == json.dumps({"password": "PLACEHOLDER", "n": 1}).replace("PLACEHOLDER", MASK)


def test_secret_with_regex_metacharacters_is_matched_literally() -> None:
    secret = "a.b*c+(d)[e]{2}|^$?\\"
    masker = Masker({"PW": secret})
    assert masker.mask(f"x{secret}y") == f"x{MASK}y"
    # The dot and the star are not wildcards.
    assert masker.mask("aXbbbbc+(d)[e]{2}|^$?\\") == "aXbbbbc+(d)[e]{2}|^$?\\"


def test_overlapping_secrets_are_masked_as_one() -> None:
    masker = Masker({"A": "abcdef", "B": "defghi"})
    assert masker.mask("xxabcdefghiyy") == f"xx{MASK}yy"
    assert masker.mask("xxdefghiabcdefyy") == f"xx{MASK}{MASK}yy"


def test_a_secret_inside_another_is_masked_by_the_longer() -> None:
    masker = Masker({"SHORT": "pass", "LONG": "password123"})
    assert masker.mask("password123 and pass") == f"{MASK} and {MASK}"


def test_text_without_secrets_is_returned_unchanged() -> None:
    masker = Masker({"PW": SECRET})
    text = "nothing to see here: s3cr3t is not the whole secret"
    assert masker.mask(text) is text


def test_short_secrets_are_not_masked_but_reported() -> None:
    masker = Masker({"PIN": "123", "EMPTY": "", "PW": "long-enough"})
    assert masker.too_short() == ("EMPTY", "PIN")
    assert masker.mask("port 1234, pw long-enough") == f"port 1234, pw {MASK}"


def test_lines_of_a_multiline_secret_are_masked_one_by_one() -> None:
    key = "-----BEGIN KEY-----\nMIIEvQIBADANBgkq\n-----END KEY-----"
    masker = Masker({"KEY": key})
    assert masker.mask("line 2 is MIIEvQIBADANBgkq") == f"line 2 is {MASK}"


def test_mask_obj_masks_strings_in_nested_params() -> None:
    masker = Masker({"PW": SECRET})
    params = {
        "user": "bob",
        "password": SECRET,
        "urls": [f"https://h/?p={quote_plus(SECRET)}", 3, None, True],
        "nested": {"pair": ("x", SECRET), SECRET: 1.5},
    }
    assert masker.mask_obj(params) == {
        "user": "bob",
        "password": MASK,
        "urls": [f"https://h/?p={MASK}", 3, None, True],
        "nested": {"pair": ("x", MASK), MASK: 1.5},
    }


@pytest.mark.parametrize(
    "secrets",
    [
        {"PW": SECRET},
        {"A": "abcdef", "B": "defghi"},
        {"A": "aaaa", "B": "aaaaaaab"},
    ],
    ids=["one", "overlapping", "self-similar"],
)
def test_stream_split_at_every_position_masks_like_the_whole(secrets: dict[str, str]) -> None:
    masker = Masker(secrets)
    values = list(secrets.values())
    text = (
        f"start {values[0]} mid {base64.b64encode(values[-1].encode()).decode()} "
        + "".join(values)
        + " aaaaaaaaab end"
    )
    whole = masker.mask(text)
    for cut in range(len(text) + 1):
        stream = masker.stream()
        out = stream.feed(text[:cut]) + stream.feed(text[cut:]) + stream.flush()
        assert out == whole, f"split at {cut}"
        assert all(v not in out for v in values)


def test_stream_fed_one_character_at_a_time() -> None:
    masker = Masker({"PW": SECRET})
    text = f"the password is {SECRET}, again {SECRET}\n"
    stream = masker.stream()
    pieces = [stream.feed(char) for char in text]
    pieces.append(stream.flush())
    assert "".join(pieces) == f"the password is {MASK}, again {MASK}\n"


def test_stream_holds_back_at_most_longest_minus_one() -> None:
    masker = Masker({"PW": "abcdefgh"})
    stream = masker.stream()
    given = "0123456789" * 10
    out = stream.feed(given)
    assert given.startswith(out)
    assert len(given) - len(out) <= masker.longest - 1
    assert out + stream.flush() == given


def test_stream_without_secrets_passes_chunks_through() -> None:
    stream = Masker({}).stream()
    assert stream.feed("abc") == "abc"
    assert stream.flush() == ""


def test_masking_many_lines_with_many_secrets_masks_each() -> None:
    # How fast (a 100-character line against 10 secrets): bench/bench_supervision.py.
    secrets = {f"S{i}": f"Secret-Value-{i:02d}-xyz" for i in range(10)}
    masker = Masker(secrets)
    lines = [f"line {n}: connected with Secret-Value-{n % 10:02d}-xyz; ok" for n in range(1000)]
    assert [masker.mask(line) for line in lines] == [
        f"line {n}: connected with {MASK}; ok" for n in range(1000)
    ]


@settings(max_examples=300, deadline=None)
@given(
    secrets=st.lists(st.text(alphabet="abc=/+", min_size=4, max_size=9), min_size=1, max_size=3),
    text=st.text(alphabet="abc=/+ ", max_size=60),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=6),
)
def test_stream_in_many_chunks_equals_masking_the_whole(
    secrets: list[str], text: str, cuts: list[int]
) -> None:
    masker = Masker({f"S{i}": v for i, v in enumerate(secrets)})
    text = secrets[0] + text + secrets[-1]
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    stream = masker.stream()
    out = "".join(stream.feed(text[a:b]) for a, b in itertools.pairwise(bounds))
    out += stream.flush()
    assert out == masker.mask(text)
    assert not any(v in out for v in secrets)


# --- every encoding, every split (issue 9 §5) ---------------------------------------------

# Filler between secrets: characters that no form of any secret can contain once the
# secret's own characters are excluded (none is a base64, hex, percent or JSON character).
_FILLER = " ;|!<>,"


def _encodings(value: str) -> dict[str, str]:
    """The encodings of `value` a careless script prints, by name."""
    raw = value.encode("utf-8")
    b64, url64 = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    lower = re.compile("%[0-9A-F]{2}")
    return {
        "plain": value,
        "base64": b64,
        "base64-unpadded": b64.rstrip("="),
        "base64-urlsafe": url64,
        "base64-urlsafe-unpadded": url64.rstrip("="),
        "base64-url-encoded": quote(b64, safe=""),
        "base64-url-encoded-lower": lower.sub(lambda m: m.group(0).lower(), quote(b64, safe="")),
        "quote": quote(value),
        "quote-all": quote(value, safe=""),
        "quote-plus": quote_plus(value),
        "quote-lower": lower.sub(lambda m: m.group(0).lower(), quote(value, safe="")),
        "hex": raw.hex(),
        "hex-upper": raw.hex().upper(),
        "json": json.dumps(value)[1:-1],
        "json-unicode": json.dumps(value, ensure_ascii=False)[1:-1],
    }


_ENCODING_NAMES = sorted(_encodings("abcd"))
_secret_text = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=4, max_size=24
)


def _split_and_mask(masker: Masker, text: str, cuts: list[int]) -> str:
    bounds = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    stream = masker.stream()
    out = "".join(stream.feed(text[a:b]) for a, b in itertools.pairwise(bounds))
    return out + stream.flush()


@settings(max_examples=400, deadline=None)
@given(
    secrets=st.lists(_secret_text, min_size=1, max_size=3),
    picks=st.lists(
        st.tuples(st.integers(min_value=0), st.sampled_from(_ENCODING_NAMES)),
        min_size=1,
        max_size=6,
    ),
    fillers=st.lists(st.text(alphabet=_FILLER, min_size=1, max_size=12), min_size=7, max_size=7),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
)
def test_any_encoding_split_anywhere_is_masked_and_nothing_else_is_lost(
    secrets: list[str], picks: list[tuple[int, str]], fillers: list[str], cuts: list[int]
) -> None:
    used = set("".join(secrets))
    fillers = ["".join(c for c in f if c not in used) for f in fillers]
    assume(all(fillers))
    masker = Masker({f"S{i}": v for i, v in enumerate(secrets)})
    shown = [_encodings(secrets[i % len(secrets)])[name] for i, name in picks]
    text = fillers[0] + "".join(s + f for s, f in zip(shown, fillers[1:], strict=False))
    whole = masker.mask(text)
    # Exactly the secrets went: every filler is intact, each secret became one mask.
    assert whole == fillers[0] + "".join(MASK + f for f in fillers[1 : len(shown) + 1])
    # Streamed in random pieces (a line cut, a pipe read), the result is the same.
    assert _split_and_mask(masker, text, cuts) == whole


@settings(max_examples=300, deadline=None)
@given(
    secret=_secret_text,
    before=st.binary(max_size=8),
    after=st.binary(max_size=8),
    urlsafe=st.booleans(),
    in_url=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=5),
)
def test_secret_inside_any_base64_blob_split_anywhere_keeps_no_secret_bits(
    secret: str, before: bytes, after: bytes, urlsafe: bool, in_url: bool, cuts: list[int]
) -> None:
    masker = Masker({"PW": secret})
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    blob = encode(before + secret.encode() + after).decode()
    # Every character carrying only the secret's bits must go, also in a URL's query.
    start = -(-len(before) * 8 // 6)
    end = (len(before) + len(secret.encode())) * 8 // 6
    stable = blob[start:end]
    if in_url:
        blob, stable = quote(blob, safe=""), quote(stable, safe="")
    out = _split_and_mask(masker, f"token={blob}&end", cuts)
    assert out.startswith("token=")
    assert out.endswith("&end")
    assert MASK in out
    assert len(stable) < 4 or stable not in out
