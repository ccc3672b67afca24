"""Catalog search on the bundled examples: name-word prefixes first."""

from __future__ import annotations

from opsroom.catalog.scan import bundled_catalog_path, load_catalog
from opsroom.web.pages.catalog import search

SPECS = list(load_catalog(bundled_catalog_path()).commands)


def test_words_that_begin_the_name_rank_that_command_first() -> None:
    found = [s.name for s in search(SPECS, "stor stat")]
    assert found[0] == "store status"
    # Then one word in the name (`status`), then the words only in their text.
    assert found[1:] == ["network status", "sql backup-status", "netbox lookup"]
    # Without words: every command, by name.
    assert [s.name for s in search(SPECS, "")] == sorted(s.name for s in SPECS)
