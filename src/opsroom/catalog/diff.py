"""What a new version of the catalog changes: commands added, changed (and how), removed."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from opsroom.model.catalog import Catalog
from opsroom.model.commands import CommandSpec

# CommandSpec fields by what a person would call the change; the rest are directives.
_HELP = frozenset({"summary", "description", "examples", "notes", "links"})
_PARAMS = frozenset({"params"})
_SCRIPT = frozenset({"script_hash", "path", "language"})
_DEPENDENCIES = frozenset({"requires", "requires_python"})
_IGNORED = frozenset({"name", "line"})  # the key itself; where the help starts in the file
_KINDS = ("parameters", "help", "directives", "dependencies", "script")


@dataclass(frozen=True, slots=True)
class Changed:
    """One command that is in both versions, and what about it changed."""

    name: str
    what: tuple[str, ...]  # some of: parameters, help, directives, dependencies, script


@dataclass(frozen=True, slots=True)
class CatalogDiff:
    """Commands added, changed and removed between two versions, by name."""

    added: tuple[str, ...] = ()
    changed: tuple[Changed, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """Nothing a person would notice changed."""
        return not (self.added or self.changed or self.removed)

    def lines(self) -> list[str]:
        """`added: a, b` / `changed: c (parameters, help)` / `removed: d`, the ones that apply."""
        out = []
        if self.added:
            out.append("added: " + ", ".join(self.added))
        if self.changed:
            out.append(
                "changed: " + ", ".join(f"{c.name} ({', '.join(c.what)})" for c in self.changed)
            )
        if self.removed:
            out.append("removed: " + ", ".join(self.removed))
        return out


def diff_catalogs(old: Catalog, new: Catalog) -> CatalogDiff:
    """How `new` differs from `old`, command by command."""
    before = {s.name: s for s in old.commands}
    after = {s.name: s for s in new.commands}
    changed = []
    for name in sorted(before.keys() & after.keys()):
        what = spec_changes(before[name], after[name])
        if what:
            changed.append(Changed(name, what))
    return CatalogDiff(
        added=tuple(sorted(after.keys() - before.keys())),
        changed=tuple(changed),
        removed=tuple(sorted(before.keys() - after.keys())),
    )


def spec_changes(old: CommandSpec, new: CommandSpec) -> tuple[str, ...]:
    """What changed between two specs of one command, in the order of `_KINDS`."""
    if old is new or old == new:
        return ()  # an unchanged script's spec comes from the parse cache: the same object
    kinds: set[str] = set()
    for f in dataclasses.fields(CommandSpec):
        if f.name in _IGNORED:
            continue
        a, b = getattr(old, f.name), getattr(new, f.name)
        if f.name in _PARAMS:
            a, b = _without_lines(a), _without_lines(b)
        if a == b:
            continue
        if f.name in _HELP:
            kinds.add("help")
        elif f.name in _PARAMS:
            kinds.add("parameters")
        elif f.name in _SCRIPT:
            kinds.add("script")
        elif f.name in _DEPENDENCIES:
            kinds.add("dependencies")
        else:
            kinds.add("directives")
    if kinds - {"script"}:
        kinds.discard("script")  # the file changed, of course: say only how it shows
    return tuple(k for k in _KINDS if k in kinds)


def _without_lines(params: object) -> object:
    """Parameters compared as people see them: moving a line down is no change."""
    if not isinstance(params, tuple):
        return params
    return tuple(dataclasses.replace(p, line=0) if hasattr(p, "line") else p for p in params)
