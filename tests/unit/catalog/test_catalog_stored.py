"""Parsed scripts kept on disk between process starts (catalog/stored.py).

Each `FolderCatalog` here stands for a new process: it shares nothing with the previous
one but the cache folder on disk.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import time
from pathlib import Path

import pytest

import opsroom
from gitrepo import make_remote
from opsroom.catalog.live import FolderCatalog, GitCatalog, Version
from opsroom.catalog.scan import bundled_catalog_path, load_catalog
from opsroom.catalog.source import GitSource
from opsroom.catalog.stored import (
    MAGIC,
    MAX_FILES,
    StoredParses,
    code_version,
    content_fingerprint,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

HELLO = """\
#!/usr/bin/env bash
# @describe Say hello.
# @arg name Who to greet
echo "hello $OPSROOM_ARG_NAME"
"""
STATUS = '''\
"""Show the status of a store."""


def main(store: int) -> None:
    print(store)
'''


def _catalog(root: Path) -> Path:
    (root / "greet").mkdir(parents=True)
    (root / "greet" / "hello.sh").write_text(HELLO)
    (root / "store").mkdir()
    (root / "store" / "status.py").write_text(STATUS)
    return root


def _start(root: Path, cache: Path, **stored: str) -> Version:
    """What a new process serves: a fresh FolderCatalog on the same cache folder."""
    folder = FolderCatalog(root, cache_dir=cache)
    if stored and folder.cache.stored is not None:
        folder.cache.stored.version = stored["version"]
    return folder.load()


def _summaries(version: Version) -> dict[str, str]:
    return {c.name: c.summary for c in version.catalog.commands}


def _cache_file(cache: Path) -> Path:
    (file,) = cache.glob("*.cache")
    return file


def test_a_restart_parses_nothing_and_serves_the_same_catalog(tmp_path: Path) -> None:
    root, cache = _catalog(tmp_path / "scripts"), tmp_path / "cache"
    first = _start(root, cache)
    assert sorted(first.parsed) == ["greet/hello.sh", "store/status.py"]
    second = _start(root, cache)
    assert second.parsed == ()
    assert second.catalog == first.catalog
    assert second.catalog == load_catalog(root)


def test_a_changed_script_is_parsed_again_and_only_it(tmp_path: Path) -> None:
    root, cache = _catalog(tmp_path / "scripts"), tmp_path / "cache"
    _start(root, cache)
    (root / "greet" / "hello.sh").write_text(HELLO.replace("Say hello.", "Greet someone."))
    after = _start(root, cache)
    assert after.parsed == ("greet/hello.sh",)
    assert _summaries(after)["greet hello"] == "Greet someone."
    assert _start(root, cache).parsed == ()  # the new parse was kept too


def test_same_size_same_time_edit_is_still_seen(tmp_path: Path) -> None:
    # Keyed by content, not by size and times: an edit that keeps both is not missed.
    root, cache = _catalog(tmp_path / "scripts"), tmp_path / "cache"
    script = root / "greet" / "hello.sh"
    _start(root, cache)
    before = script.stat()
    script.write_text(HELLO.replace("Say hello.", "Say howdy."))
    os.utime(script, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert _summaries(_start(root, cache))["greet hello"] == "Say howdy."


def test_files_rewritten_with_the_same_content_are_not_parsed_again(tmp_path: Path) -> None:
    # A checkout or a copy that rewrites every file (new times, new inodes) changes nothing.
    root, cache = _catalog(tmp_path / "scripts"), tmp_path / "cache"
    _start(root, cache)
    for script in (root / "greet" / "hello.sh", root / "store" / "status.py"):
        text = script.read_bytes()
        script.unlink()
        script.write_bytes(text)
    assert _start(root, cache).parsed == ()


def _start_reading(root: Path, cache: Path, *, later_ns: int = 0) -> tuple[Version, list[str]]:
    """`_start`, also saying which scripts it read; its clock `later_ns` ahead of the files'."""
    folder = FolderCatalog(root, cache_dir=cache)
    stored = folder.cache.stored
    assert stored is not None
    read: list[str] = []

    def reading(relpath: str, path: Path) -> object:
        read.append(relpath)
        return content_fingerprint(relpath, path)

    stored.content = reading
    stored.clock = lambda: time.time_ns() + later_ns
    return folder.load(), read


def test_a_restart_reads_only_scripts_whose_status_changed(tmp_path: Path) -> None:
    root, cache = _catalog(tmp_path / "scripts"), tmp_path / "cache"
    # Hashed the moment they were written: a same-tick edit could hide, so each is read.
    first, read = _start_reading(root, cache)
    assert sorted(read) == ["greet/hello.sh", "store/status.py"]
    again, read = _start_reading(root, cache, later_ns=60 * 10**9)
    assert again.parsed == ()
    assert sorted(read) == ["greet/hello.sh", "store/status.py"]
    # Hashed a minute after their last change: a start that finds them as they were reads none.
    restart, read = _start_reading(root, cache)
    assert (restart.parsed, read) == ((), [])
    assert restart.catalog == first.catalog
    # An edit that keeps the size and the modification time still changes the status.
    script = root / "greet" / "hello.sh"
    before = script.stat()
    script.write_text(HELLO.replace("Say hello.", "Say howdy."))
    os.utime(script, ns=(before.st_atime_ns, before.st_mtime_ns))
    edited, read = _start_reading(root, cache, later_ns=60 * 10**9)
    assert (edited.parsed, read) == (("greet/hello.sh",), ["greet/hello.sh"])
    assert _summaries(edited)["greet hello"] == "Say howdy."


def test_a_sidecar_or_folder_defaults_change_parses_again(tmp_path: Path) -> None:
    root, cache = _catalog(tmp_path / "scripts"), tmp_path / "cache"
    _start(root, cache)
    (root / "greet" / "hello.sh.opsroom.toml").write_text('summary = "From the sidecar."\n')
    after = _start(root, cache)
    assert after.parsed == ("greet/hello.sh",)
    assert _summaries(after)["greet hello"] == "From the sidecar."
    (root / "store" / "defaults.opsroom.toml").write_text('timeout = "90s"\n')
    after = _start(root, cache)
    assert after.parsed == ("store/status.py",)
    assert {c.name: c.timeout for c in after.catalog.commands}["store status"] == 90.0


def test_a_deleted_script_is_gone_after_a_restart(tmp_path: Path) -> None:
    root, cache = _catalog(tmp_path / "scripts"), tmp_path / "cache"
    _start(root, cache)
    (root / "store" / "status.py").unlink()
    assert list(_summaries(_start(root, cache))) == ["greet hello"]
    (root / "store" / "status.py").write_text(STATUS)
    assert _start(root, cache).parsed == ("store/status.py",)  # forgotten, so parsed


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # a write cut short
        lambda b: b[:-40] + bytes(40),  # bytes lost at the end
        lambda b: b"",  # empty
        lambda b: b"not a cache at all\n",
        lambda b: b.replace(b"Say hello.", b"Say jello."),  # still unpickles: the digest tells
    ],
    ids=["truncated", "zeroed-tail", "empty", "garbage", "flipped-byte"],
)
def test_a_damaged_cache_is_rebuilt_never_used(tmp_path: Path, damage: object) -> None:
    root, cache = _catalog(tmp_path / "scripts"), tmp_path / "cache"
    good = _start(root, cache).catalog
    file = _cache_file(cache)
    file.write_bytes(damage(file.read_bytes()))  # type: ignore[operator]
    again = _start(root, cache)
    assert sorted(again.parsed) == ["greet/hello.sh", "store/status.py"]
    assert again.catalog == good
    assert _start(root, cache).parsed == ()  # written again whole


def test_another_catalogs_cache_is_ignored(tmp_path: Path) -> None:
    mine, cache = _catalog(tmp_path / "mine"), tmp_path / "cache"
    theirs = _catalog(tmp_path / "theirs")
    (theirs / "greet" / "hello.sh").write_text(HELLO.replace("Say hello.", "Theirs."))
    _start(theirs, cache)
    # Their file under my file's name, as if copied over or a name collision.
    mine_file = cache / StoredParses(cache, f"folder:{os.path.realpath(mine)}").file.name
    shutil.copy(_cache_file(cache), mine_file)
    loaded = _start(mine, cache)
    assert sorted(loaded.parsed) == ["greet/hello.sh", "store/status.py"]
    assert _summaries(loaded)["greet hello"] == "Say hello."


def test_a_new_version_parses_everything_again(tmp_path: Path) -> None:
    root, cache = _catalog(tmp_path / "scripts"), tmp_path / "cache"
    _start(root, cache)
    bumped = _start(root, cache, version=code_version() + "-next")
    assert sorted(bumped.parsed) == ["greet/hello.sh", "store/status.py"]
    assert _start(root, cache, version=code_version() + "-next").parsed == ()


def test_editing_a_parser_changes_the_version(tmp_path: Path) -> None:
    # The version covers the parsing code itself: an edited parser never serves old parses.
    package = tmp_path / "opsroom"
    shutil.copytree(Path(opsroom.__file__).parent, package)
    copied = code_version(package)
    assert copied == code_version(package)
    parser = package / "catalog" / "parsers" / "shell.py"
    parser.write_text(parser.read_text() + "\n# edited\n")
    code_version.cache_clear()
    assert code_version(package) != copied


def test_a_forged_cache_cannot_run_code(tmp_path: Path) -> None:
    root, cache = _catalog(tmp_path / "scripts"), tmp_path / "cache"
    _start(root, cache)
    file = _cache_file(cache)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    # A payload with a correct digest: only the allow-list stands between it and os.system.
    payload = pickle.dumps({"greet/hello.sh": (("k",), (Evil(), []), (), None)}, protocol=5)
    header = file.read_bytes().split(b"\n", 2)
    assert header[0] + b"\n" == MAGIC
    digest = hashlib.sha256(payload).hexdigest().encode()
    file.write_bytes(MAGIC + header[1] + b"\n" + digest + b"\n" + payload)
    loaded = _start(root, cache)
    assert not marker.exists()
    assert sorted(loaded.parsed) == ["greet/hello.sh", "store/status.py"]


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_cache_others_may_write_is_not_trusted(tmp_path: Path, what: str) -> None:
    root, cache = _catalog(tmp_path / "scripts"), tmp_path / "cache"
    _start(root, cache)
    # Make the stored parse say something parsing never would, then open it to others.
    stored = StoredParses(cache, f"folder:{os.path.realpath(root)}")
    relpath = "greet/hello.sh"
    kept = stored.get(relpath, _stored_key(stored, root, relpath))
    assert kept is not None
    spec, claims = kept.result
    forged = type(kept)(kept.key, (_with_summary(spec, "FORGED"), claims), (), kept.read_as)
    stored.put(relpath, forged)
    stored.save()
    assert _summaries(_start(root, cache))["greet hello"] == "FORGED"  # ours: trusted
    target = _cache_file(cache) if what == "file" else cache
    target.chmod(target.stat().st_mode | 0o022)
    loaded = _start(root, cache)
    assert _summaries(loaded)["greet hello"] == "Say hello."
    assert "greet/hello.sh" in loaded.parsed


def test_the_bundled_and_fixture_catalogs_load_the_same_from_the_cache(tmp_path: Path) -> None:
    roots = [bundled_catalog_path(), *(p for p in sorted(FIXTURES.iterdir()) if p.is_dir())]
    from_cache = 0
    for i, source in enumerate(roots):
        root = tmp_path / f"c{i}"
        shutil.copytree(source, root, symlinks=True)
        first = _start(root, tmp_path / f"cache{i}").catalog
        again = _start(root, tmp_path / f"cache{i}")
        assert again.catalog == first, source.name
        assert again.catalog == load_catalog(root), source.name
        # Parsed again only what no cache may reuse (module functions, symlinks): every
        # class a stored parse holds is admitted when it is read back.
        in_memory = FolderCatalog(root)
        in_memory.load()
        assert again.parsed == in_memory.load().parsed, source.name
        from_cache += len(again.catalog.files) - len(again.parsed)
    assert from_cache > 50


def test_old_cache_files_are_pruned(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    for i in range(MAX_FILES + 5):
        stale = cache / f"{i:032x}.cache"
        stale.write_bytes(b"old")
        os.utime(stale, ns=(i, i))
    _start(_catalog(tmp_path / "scripts"), cache)
    left = sorted(p.name for p in cache.glob("*.cache"))
    assert len(left) == MAX_FILES
    assert f"{0:032x}.cache" not in left  # the oldest went first
    assert f"{MAX_FILES + 4:032x}.cache" in left


def test_an_unwritable_cache_folder_only_costs_the_speed(tmp_path: Path) -> None:
    root = _catalog(tmp_path / "scripts")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    loaded = _start(root, blocker / "cache")
    assert _summaries(loaded)["greet hello"] == "Say hello."


def _stored_key(stored: StoredParses, root: Path, relpath: str) -> object:
    """The stored key of an unchanged script, as the loader computes it."""
    data = stored._read()  # the test looks inside the file it wrote
    assert relpath in data
    return data[relpath].key


def _with_summary(spec: object, summary: str) -> object:
    import dataclasses

    return dataclasses.replace(spec, summary=summary)  # type: ignore[type-var]


def test_a_git_catalog_restart_parses_only_the_changed_blobs(tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "remote")
    remote.write("greet/hello.sh", HELLO)
    remote.write("store/status.py", STATUS)
    remote.commit("two scripts")
    remote.push()
    cache = tmp_path / "cache"

    def start() -> Version:
        """A new process on the same working folder: a new source, a new GitCatalog."""
        source = GitSource(
            remote.url,
            "main",
            tmp_path / "work" / ".opsroom" / "catalog",
            owner=f"test:{os.getpid()}:boot:1",
            owner_alive=lambda owner: False,  # the previous "process" is gone
            environ=remote.env,
        )
        source.open()
        try:
            git_catalog = GitCatalog(source, cache_dir=cache)
            version = git_catalog.load(source.fetch())
            if version.tree is not None:
                source.release(version.tree)
            return version
        finally:
            source.close()

    assert sorted(start().parsed) == ["greet/hello.sh", "store/status.py"]
    assert start().parsed == ()
    remote.write("greet/hello.sh", HELLO.replace("Say hello.", "Greet someone."))
    remote.commit("reword")
    remote.push()
    after = start()
    assert after.parsed == ("greet/hello.sh",)
    assert _summaries(after)["greet hello"] == "Greet someone."
