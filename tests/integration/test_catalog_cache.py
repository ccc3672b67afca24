"""`[catalog] cache`: real `opsroom run` processes reuse the parses of the one before."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from opsroom.catalog.stored import StoredParses
from support import Opsroom

HELLO = """\
#!/usr/bin/env bash
# @describe Say hello.
# @arg name Who to greet
echo "hello $OPSROOM_ARG_NAME"
"""


def _setup(workdir: Path, cache_line: str | None) -> Path:
    scripts = workdir / "scripts" / "greet"
    scripts.mkdir(parents=True)
    (scripts / "hello.sh").write_text(HELLO)
    config = '[catalog]\npath = "scripts"\n'
    if cache_line is not None:
        config += cache_line + "\n"
    (workdir / "opsroom.toml").write_text(config + '[store]\nurl = "sqlite:///o.db"\n')
    return workdir / "scripts"


def _forge_summary(cache: Path, root: Path, summary: str) -> None:
    """Rewrite the stored parse of greet/hello.sh (as this user, so it stays trusted)."""
    stored = StoredParses(cache, f"folder:{os.path.realpath(root)}")
    kept = stored._read()["greet/hello.sh"]  # the test edits the file the child wrote
    spec, claims = kept.result
    result = (dataclasses.replace(spec, summary=summary), claims)
    stored.put("greet/hello.sh", dataclasses.replace(kept, result=result))
    stored.save()


def test_the_next_process_serves_stored_parses_and_parses_changes(
    opsroom: Opsroom, workdir: Path
) -> None:
    root = _setup(workdir, 'cache = "cache"')  # relative: to the config file's folder
    first = opsroom("run", "!help greet hello")
    assert first.code == 0, first.stderr
    assert "Say hello." in first.stdout
    (cache_file,) = (workdir / "cache").glob("*.cache")

    # What the next process shows comes from the file, not from parsing the script again.
    _forge_summary(workdir / "cache", root, "Told by the cache.")
    again = opsroom("run", "!help greet hello")
    assert "Told by the cache." in again.stdout, again.stdout + again.stderr

    # A changed script is parsed again, whatever the cache holds for its old text.
    (root / "greet" / "hello.sh").write_text(HELLO.replace("Say hello.", "Greet someone."))
    changed = opsroom("run", "!help greet hello")
    assert "Greet someone." in changed.stdout, changed.stdout + changed.stderr
    assert "Told by the cache." not in changed.stdout

    # A damaged file is ignored, and the next process writes a whole one again.
    cache_file.write_bytes(cache_file.read_bytes()[:-10])
    damaged = opsroom("run", "!greet hello --name ann")
    assert damaged.code == 0, damaged.stderr
    assert "hello ann" in damaged.stdout
    _forge_summary(workdir / "cache", root, "Rewritten whole.")  # readable again
    assert "Rewritten whole." in opsroom("run", "!help greet hello").stdout


def test_default_folder_and_cache_false(opsroom: Opsroom, workdir: Path, tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    _setup(workdir, None)
    r = opsroom("run", "!help greet hello", env={"XDG_CACHE_HOME": str(xdg)})
    assert r.code == 0, r.stderr
    assert len(list((xdg / "opsroom" / "catalog").glob("*.cache"))) == 1

    off = tmp_path / "off"
    (workdir / "opsroom.toml").write_text(
        '[catalog]\npath = "scripts"\ncache = false\n[store]\nurl = "sqlite:///o.db"\n'
    )
    r = opsroom("run", "!help greet hello", env={"XDG_CACHE_HOME": str(off)})
    assert r.code == 0, r.stderr
    assert "Say hello." in r.stdout
    assert not off.exists()


@pytest.mark.parametrize("value", ['""', "3", "[]"])
def test_a_bad_cache_value_is_one_clear_error(opsroom: Opsroom, workdir: Path, value: str) -> None:
    (workdir / "opsroom.toml").write_text(f"[catalog]\ncache = {value}\n")
    r = opsroom("run", "!version")
    assert r.code == 2
    assert "catalog.cache: expected true, false or a folder" in r.stderr, r.stderr
    assert r.stdout == ""
