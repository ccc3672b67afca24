"""catalog/diff.py: what an announcement says changed."""

from __future__ import annotations

from opsroom.catalog.diff import Changed, diff_catalogs, spec_changes
from opsroom.model.catalog import Catalog
from opsroom.model.commands import CommandSpec, Language, ParamSpec


def spec(name: str, **kw: object) -> CommandSpec:
    return CommandSpec(name=name, path=f"{name}.py", language=Language.PYTHON, **kw)  # type: ignore[arg-type]


def test_added_changed_and_removed_commands_by_name() -> None:
    old = Catalog("/a", (spec("a"), spec("b", summary="B"), spec("c")))
    new = Catalog("/b", (spec("a"), spec("b", summary="Bee"), spec("d")))
    diff = diff_catalogs(old, new)
    assert diff.added == ("d",)
    assert diff.removed == ("c",)
    assert diff.changed == (Changed("b", ("help",)),)
    assert diff.lines() == ["added: d", "changed: b (help)", "removed: c"]
    assert diff_catalogs(old, old).empty


def test_what_changed_is_named_as_people_see_it() -> None:
    base = spec("x", params=(ParamSpec("n", line=3),), script_hash="1")
    assert spec_changes(base, spec("x", params=(ParamSpec("n", line=9),), script_hash="2")) == (
        "script",
    ), "a parameter that moved down a line did not change"
    assert spec_changes(base, spec("x", params=(ParamSpec("m"),), script_hash="2")) == (
        "parameters",
    )
    assert spec_changes(
        base, spec("x", params=base.params, script_hash="2", timeout=60.0, approval="leads")
    ) == ("directives",)
    assert spec_changes(
        base, spec("x", params=base.params, script_hash="2", requires=("requests",))
    ) == ("dependencies",)
    assert spec_changes(base, spec("x", params=(), description="d", script_hash="2")) == (
        "parameters",
        "help",
    )
