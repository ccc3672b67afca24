"""Secret values, and the forms they take when encoded, replaced by `********` (SPEC §6.4).

A Masker is built from the secret values of a run and applied at every sink: chat, logs,
the store, the web console. Besides the plain value it masks the encodings a script is
likely to print: base64 (standard and URL-safe, padded or not, and the stable middle of the
value when it sits inside a longer base64 string at any byte offset, also percent-encoded as
in a URL), URL-encoding (`quote`, `quote_plus`, either case of percent escapes), JSON string
escaping, hex (either case), and each line of a multi-line value. Overlapping occurrences
are masked as one.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from typing import TypeAlias, TypeVar, cast
from urllib.parse import quote, quote_plus

MASK = "********"
MIN_LENGTH = 4  # shorter values would mask ordinary words and digits everywhere

_T = TypeVar("_T")
_Node: TypeAlias = "dict[str, _Node]"
_PERCENT = re.compile(r"%[0-9A-F]{2}")


def _base64_forms(raw: bytes) -> set[str]:
    forms: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(raw).decode("ascii")
        forms.update((whole, whole.rstrip("=")))
        for offset in (0, 1, 2):
            # Inside a longer string the value's bits start `offset` bytes into a 3-byte
            # group; only characters made wholly of its bits are stable, whatever surrounds it.
            text = encode(bytes(offset) + raw).decode("ascii")
            start = -(-offset * 8 // 6)
            end = (offset + len(raw)) * 8 // 6
            forms.add(text[start:end])
    return forms


def _lower_escapes(forms: set[str]) -> set[str]:
    return {_PERCENT.sub(lambda m: m.group(0).lower(), f) for f in forms}


def _url_forms(value: str) -> set[str]:
    forms = {quote(value), quote(value, safe=""), quote_plus(value), quote_plus(value, safe="/")}
    return forms | _lower_escapes(forms)


def forms_of(value: str) -> set[str]:
    """Every form of `value` the masker looks for (forms shorter than MIN_LENGTH dropped)."""
    raw = value.encode("utf-8")
    forms = {value, raw.hex(), raw.hex().upper()}
    in_base64 = _base64_forms(raw)
    # A token in a URL query string: its base64 with `+`, `/` and `=` percent-encoded.
    quoted = {quote(f, safe="") for f in in_base64}
    forms |= in_base64 | quoted | _lower_escapes(quoted)
    forms |= _url_forms(value)
    forms |= {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    if "\n" in value:
        forms |= {line.rstrip("\r") for line in value.split("\n")}
    if (password := _credential_password(value)) is not None and password != value:
        forms |= forms_of(password)  # a PowerShell credential's script may print the password
    return {f for f in forms if len(f) >= MIN_LENGTH}


def _credential_password(value: str) -> str | None:
    """The password of a credential secret: `user:password` or JSON with a `password`."""
    if value.lstrip().startswith("{"):
        try:
            data = json.loads(value)
        except ValueError:
            return None
        password = data.get("password") if isinstance(data, dict) else None
        return password if isinstance(password, str) else None
    user, colon, password = value.partition(":")
    return password if colon and user else None


def _trie_pattern(words: Iterable[str]) -> str:
    """One regex for `words` as a character trie: no backtracking over shared prefixes."""
    root: _Node = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # end of a word

    def emit(node: _Node) -> str:
        # Runs of single-child nodes are written as one literal, so a long value (a PEM key)
        # recurses only at the points where forms differ.
        literal: list[str] = []
        while len(node) == 1 and "" not in node:
            char, child = next(iter(node.items()))
            literal.append(char)
            node = child
        head = re.escape("".join(literal))
        branches = [re.escape(char) + emit(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return head
        body = "(?:" + "|".join(branches) + ")"
        # Greedy: at a word's end the longer words are tried first, so the longest form wins.
        return head + body + ("?" if "" in node else "")

    return emit(root)


class Masker:
    """Masks a fixed set of secret values (given as name → value) in text and nested data."""

    __slots__ = ("_longest", "_match", "_search", "_short")

    def __init__(self, secrets: Mapping[str, str]) -> None:
        forms: set[str] = set()
        self._short = tuple(sorted(n for n, v in secrets.items() if len(v) < MIN_LENGTH))
        for value in secrets.values():
            if len(value) >= MIN_LENGTH:
                forms |= forms_of(value)
        self._longest = max((len(f) for f in forms), default=0)
        pattern = re.compile(_trie_pattern(forms), re.DOTALL) if forms else None
        self._search = pattern.search if pattern else None
        self._match = pattern.match if pattern else None

    @property
    def longest(self) -> int:
        """Length of the longest form masked; a stream holds back one less than this."""
        return self._longest

    def too_short(self) -> tuple[str, ...]:
        """Names of secrets too short to mask (fewer than MIN_LENGTH characters): warn on them."""
        return self._short

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Start and end of every masked stretch of `text`, overlapping occurrences merged."""
        search, match = self._search, self._match
        if search is None or match is None:
            return []
        spans: list[tuple[int, int]] = []
        pos = 0
        while m := search(text, pos):
            start, end = m.span()
            # A second secret may begin inside this one and run past its end.
            i = start + 1
            while i < end:
                inner = match(text, i)
                if inner is not None and inner.end() > end:
                    end = inner.end()
                i += 1
            spans.append((start, end))
            pos = end
        return spans

    def mask(self, text: str) -> str:
        """`text` with every secret form replaced by `********`."""
        if self._search is None or self._search(text) is None:
            return text
        out: list[str] = []
        pos = 0
        for start, end in self.spans(text):
            out.append(text[pos:start])
            out.append(MASK)
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def mask_obj(self, obj: _T) -> _T:
        """`obj` with strings masked inside nested dicts, lists and tuples (keys included)."""
        if isinstance(obj, str):
            return cast("_T", self.mask(obj))
        if isinstance(obj, dict):
            return cast(
                "_T",
                {self.mask_obj(k): self.mask_obj(v) for k, v in obj.items()},
            )
        if isinstance(obj, list):
            return cast("_T", [self.mask_obj(v) for v in obj])
        if isinstance(obj, tuple):
            return cast("_T", tuple(self.mask_obj(v) for v in obj))
        return obj

    def stream(self) -> StreamMasker:
        """A StreamMasker over this masker's secrets."""
        return StreamMasker(self)


class StreamMasker:
    """Masks a stream written in chunks, so a secret split across two writes is still masked.

    It holds back at most `masker.longest - 1` characters; `flush()` at the end of the
    stream returns them. The concatenated output equals `masker.mask()` of the whole stream.
    """

    __slots__ = ("_done", "_masker", "_raw")

    def __init__(self, masker: Masker) -> None:
        self._masker = masker
        self._raw = ""  # a tail of the stream, kept to recognise secrets that span writes
        self._done = 0  # how much of _raw has already been returned

    def feed(self, chunk: str) -> str:
        """The masked text that is now safe to pass on."""
        if self._masker.longest == 0:
            return chunk
        self._raw += chunk
        # No secret can start before `safe` without already being wholly in _raw.
        safe = len(self._raw) - (self._masker.longest - 1)
        return self._emit(max(safe, self._done))

    def flush(self) -> str:
        """Whatever is still held back, masked; the stream may then be fed again."""
        out = self._emit(len(self._raw))
        self._raw, self._done = "", 0
        return out

    def _emit(self, upto: int) -> str:
        raw, done = self._raw, self._done
        out: list[str] = []
        pos = done
        for start, end in self._masker.spans(raw):
            if end <= done:
                continue
            if start >= upto:
                break
            if start < done:
                # Its beginning went out masked already; the rest is part of the same mask.
                pos = max(pos, end)
            else:
                out.append(raw[pos:start])
                out.append(MASK)
                pos = end
            upto = max(upto, end)  # a complete span crossing the cut goes out whole
        if pos < upto:
            out.append(raw[pos:upto])
        self._done = max(upto, pos)
        keep = min(self._done, len(raw) - (self._masker.longest - 1))
        if keep > 0:
            self._raw = raw[keep:]
            self._done -= keep
        return "".join(out)
