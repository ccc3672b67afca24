"""router/deployment.py: one reference swapped whole; files kept while anything holds them."""

from __future__ import annotations

from pathlib import Path

from opsroom.model.catalog import Catalog
from opsroom.router.deployment import Deployment, Live
from opsroom.router.registry import Registry


def deployment(name: str, released: list[str]) -> Deployment:
    return Deployment(
        catalog=Catalog(f"/{name}", ()),
        registry=Registry(()),
        root=Path(f"/{name}"),
        commit=name,
        release=lambda: released.append(name),
    )


def test_a_swapped_out_version_is_released_at_once_when_nothing_holds_it() -> None:
    released: list[str] = []
    live = Live(deployment("one", released))
    two = deployment("two", released)
    live.swap(two)
    assert live.current is two
    assert released == ["one"]


def test_a_held_version_is_released_when_its_last_holder_lets_go() -> None:
    released: list[str] = []
    one = deployment("one", released)
    live = Live(one)
    with live.hold(one):
        with live.hold(one):  # a request, and the job it started
            live.swap(deployment("two", released))
            live.swap(deployment("three", released))
            assert released == ["two"], "the held one stays"
            assert live.in_use() == 1
        assert released == ["two"]
    assert released == ["two", "one"]
    assert live.in_use() == 0


def test_the_current_version_is_never_released_by_a_hold_ending() -> None:
    released: list[str] = []
    one = deployment("one", released)
    live = Live(one)
    with live.hold(one):
        pass
    assert released == []
