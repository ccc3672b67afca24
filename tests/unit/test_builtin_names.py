"""Built-in names come from one list (`model.commands.Builtin`) that every room reads.

The router answers each one, the catalog refuses a script that would take one's name, and
policy opens a subset of them to every role holder: a built-in added to the list is all
three at once, and none of them can name a built-in the list does not have.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opsroom.catalog.scan import load_catalog
from opsroom.model.commands import Builtin, Language
from opsroom.policy.rbac import OPEN_BUILTINS
from opsroom.router.builtins import BUILTIN_SPECS, HANDLERS
from opsroom.router.registry import Registry


@pytest.mark.parametrize("builtin", list(Builtin), ids=str)
def test_each_builtin_is_answered_by_the_router_and_reserved_in_the_catalog(
    builtin: Builtin, tmp_path: Path
) -> None:
    spec, rest = Registry(BUILTIN_SPECS).lookup([builtin.value.upper(), "42"])
    assert (spec.name, spec.language, rest) == (builtin.value, Language.BUILTIN, ["42"])

    (tmp_path / f"{builtin}.sh").write_text("#!/usr/bin/env bash\n# @describe Shadow it.\n")
    catalog = load_catalog(tmp_path)
    assert [c.name for c in catalog.commands] == []
    assert [str(i) for i in catalog.issues] == [
        f"{builtin}.sh:1: command name '{builtin}' is a built-in"
    ]


def test_the_router_knows_no_builtin_outside_the_list() -> None:
    assert sorted(s.name for s in BUILTIN_SPECS) == sorted(b.value for b in Builtin)
    assert set(HANDLERS) <= set(Builtin)


def test_policy_opens_listed_builtins_and_keeps_schedule_and_reload_behind_allow() -> None:
    assert set(Builtin) >= OPEN_BUILTINS
    assert set(Builtin) - OPEN_BUILTINS == {Builtin.SCHEDULE, Builtin.RELOAD}
