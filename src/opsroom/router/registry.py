"""Commands by their words: longest-match lookup, did-you-mean and search (SPEC §4.2, §4.3).

Lookup cost depends on the longest command name (in words), never on how many commands
there are: names and aliases are indexed by their tuple of lower-cased words. Suggestions
for unknown words come from a trigram index that narrows 10,000 names to a few dozen
candidates before difflib compares them.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Final

from opsroom.errors import UnknownCommand
from opsroom.model.commands import CommandSpec, Language

__all__ = ["Registry"]

_MAX_SUGGESTIONS: Final = 3
_CANDIDATES: Final = 40  # names compared by difflib after trigram narrowing
_CUTOFF: Final = 0.6


def _words(label: str) -> tuple[str, ...]:
    """The lookup key of a name or alias: its lower-cased words."""
    return tuple(label.casefold().split())


def _trigrams(text: str) -> set[str]:
    """Character trigrams of a name, padded so short words still have some."""
    padded = f"  {text} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def _ratio(query: str, target: str) -> float:
    """difflib's similarity, skipping the full comparison when it cannot reach the cutoff."""
    matcher = difflib.SequenceMatcher(None, query, target)
    if matcher.real_quick_ratio() < _CUTOFF or matcher.quick_ratio() < _CUTOFF:
        return 0.0
    return matcher.ratio()


def _similarity(queries: list[str], label: str) -> tuple[bool, float]:
    """How close the typed words are to a name: (matches the whole name, best score).

    Comparing with the name's leading words too lets `!netwrok` find `network status`;
    such partial matches rank after any whole-name match.
    """
    label_words = label.split()
    whole = partial = 0.0
    for query in queries:
        whole = max(whole, _ratio(query, label))
        n = query.count(" ") + 1
        if n < len(label_words):
            partial = max(partial, _ratio(query, " ".join(label_words[:n])))
    if whole >= _CUTOFF:
        return True, whole
    return False, partial


class Registry:
    """Catalog commands and built-ins, looked up by the words a person typed."""

    def __init__(self, specs: Iterable[CommandSpec]) -> None:
        self._specs: list[CommandSpec] = []
        self._by_words: dict[tuple[str, ...], CommandSpec] = {}
        self._prefixes: set[tuple[str, ...]] = set()  # proper leading parts of names
        self._max_words = 0
        self._scripts = 0  # counted once: `!version` says it on every call
        # Suggestion index over visible names and aliases.
        self._labels: list[str] = []
        self._label_spec: list[CommandSpec] = []
        self._by_trigram: dict[str, list[int]] = {}
        self._children: dict[tuple[str, ...], list[int]] = {}
        # Search rows: (spec, name and aliases, everything searchable), visible commands only.
        self._search_rows: list[tuple[CommandSpec, str, str]] = []

        names: set[str] = set()
        for spec in specs:
            if spec.name.casefold() in names:
                raise ValueError(f"duplicate command name {spec.name!r}")
            names.add(spec.name.casefold())
            self._specs.append(spec)
            self._scripts += spec.language is not Language.BUILTIN
            for label in (spec.name, *spec.aliases):
                self._index(spec, label)
            if not spec.hidden:
                labels = " ".join((spec.name, *spec.aliases)).casefold()
                hay = "\n".join((labels, spec.summary.casefold(), spec.description.casefold()))
                self._search_rows.append((spec, labels, hay))

    def _index(self, spec: CommandSpec, label: str) -> None:
        """Add one name or alias to the lookup and suggestion indexes."""
        key = _words(label)
        if not key:
            raise ValueError(f"command {spec.name!r} has an empty name or alias")
        other = self._by_words.get(key)
        if other is not None:
            if other is spec:
                return
            raise ValueError(
                f"{' '.join(key)!r} is claimed by both {other.name!r} and {spec.name!r}"
            )
        self._by_words[key] = spec
        self._max_words = max(self._max_words, len(key))
        for n in range(1, len(key)):
            self._prefixes.add(key[:n])
        if spec.hidden:
            return
        idx = len(self._labels)
        joined = " ".join(key)
        self._labels.append(joined)
        self._label_spec.append(spec)
        for gram in _trigrams(joined):
            self._by_trigram.setdefault(gram, []).append(idx)
        for n in range(1, len(key)):
            self._children.setdefault(key[:n], []).append(idx)

    def __iter__(self) -> Iterator[CommandSpec]:
        """Every command, in the order given."""
        return iter(self._specs)

    def __len__(self) -> int:
        """How many commands (not counting aliases)."""
        return len(self._specs)

    @property
    def scripts(self) -> int:
        """How many of the commands are the catalog's (not built-ins)."""
        return self._scripts

    def get(self, name: str) -> CommandSpec | None:
        """The command with this exact name or alias (case and spacing ignored)."""
        return self._by_words.get(_words(name))

    def lookup(self, tokens: list[str]) -> tuple[CommandSpec, list[str]]:
        """The command named by the longest run of leading tokens, and the tokens after it."""
        for n in range(min(self._max_words, len(tokens)), 0, -1):
            spec = self._by_words.get(tuple(t.casefold() for t in tokens[:n]))
            if spec is not None:
                return spec, list(tokens[n:])
        words, suggestions = self._suggest(tokens)
        raise UnknownCommand(words, suggestions)

    def _suggest(self, tokens: list[str]) -> tuple[str, tuple[str, ...]]:
        """What to call the unknown words, and up to three close command names."""
        folded = [t.casefold() for t in tokens[: max(self._max_words, 1)]]
        known = 0
        while known < len(folded) and tuple(folded[: known + 1]) in self._prefixes:
            known += 1
        shown = " ".join(tokens[: known + 1])
        if not folded:
            return shown, ()
        if known == len(folded):
            # Only a group was typed (`!network`): offer what lives under it.
            under = self._children.get(tuple(folded), [])
            return shown, tuple(sorted(self._labels[i] for i in under)[:_MAX_SUGGESTIONS])

        queries = [" ".join(folded[:n]) for n in range(1, len(folded) + 1)]
        counts: Counter[int] = Counter()
        for query in queries:
            for gram in _trigrams(query):
                counts.update(self._by_trigram.get(gram, ()))
        scored: dict[str, tuple[bool, float]] = {}
        for idx, _ in counts.most_common(_CANDIDATES):
            score = _similarity(queries, self._labels[idx])
            if score[1] >= _CUTOFF:
                name = self._label_spec[idx].name
                scored[name] = max(scored.get(name, score), score)
        ranked = sorted(scored, key=lambda name: (not scored[name][0], -scored[name][1], name))
        return shown, tuple(ranked[:_MAX_SUGGESTIONS])

    def search(self, words: list[str], limit: int = 20) -> list[CommandSpec]:
        """Visible commands whose name, summary or description contain all the words."""
        terms = [w.casefold() for w in words if w.strip()]
        in_name: list[CommandSpec] = []
        elsewhere: list[CommandSpec] = []
        for spec, labels, hay in self._search_rows:
            if all(t in labels for t in terms):
                in_name.append(spec)
            elif all(t in hay for t in terms):
                elsewhere.append(spec)
        in_name.sort(key=lambda s: s.name)
        elsewhere.sort(key=lambda s: s.name)
        return (in_name + elsewhere)[:limit]
