"""The catalog as it changes: load a new version of a folder or a commit, incrementally.

A version is loaded, checked and (by the deployer, `opsroom.deploy`) swapped in whole; this
module only loads. Both kinds keep a `ParseCache` across loads, so a reload parses only the
scripts that changed: a folder by file size and times, a git commit by blob id. Given a
cache folder (`[catalog] cache`), the parses are also kept on disk (catalog/stored.py), so a
process start parses only the scripts that changed since the last one.
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

from opsroom.catalog.cache import ParseCache, stat_fingerprint, stat_settled
from opsroom.catalog.scan import load_catalog
from opsroom.catalog.source import CommitInfo, GitSource, Tree
from opsroom.catalog.stored import StoredParses
from opsroom.model.catalog import Catalog


@dataclass(frozen=True, slots=True)
class Version:
    """One loaded version of the catalog: what a check judges and a swap serves."""

    catalog: Catalog
    root: Path
    commit: CommitInfo | None = None  # a git catalog's commit (subject and author known)
    tree: Tree | None = None  # the work tree it was read from (git)
    parsed: tuple[str, ...] = ()  # scripts parsed for it; the others came from the cache

    @property
    def sha(self) -> str | None:
        """The commit its jobs record: the deployed commit, a work tree's HEAD, or None."""
        return self.commit.sha if self.commit is not None else self.catalog.commit


class FolderCatalog:
    """A `[catalog] path` (or `--catalog DIR`) folder, read again when it changes."""

    def __init__(self, root: Path, *, cache_dir: Path | None = None) -> None:
        self.root = root
        self.cache = ParseCache(stat_fingerprint)
        if cache_dir is not None:
            # Keyed by the folder's real path: one cache file per catalog folder.
            where = f"folder:{os.path.realpath(root)}"
            self.cache.stored = StoredParses(cache_dir, where, settled=stat_settled)

    def load(self) -> Version:
        """Read the folder; unchanged scripts come from the previous load (or process)."""
        self.cache.begin()
        catalog = load_catalog(self.root, cache=self.cache)
        if self.cache.stored is not None:
            self.cache.stored.save()
        return Version(catalog, self.root, parsed=tuple(self.cache.parsed))


class GitCatalog:
    """A `[catalog] git` repository: each commit is read in a work tree of its own."""

    def __init__(self, source: GitSource, *, cache_dir: Path | None = None) -> None:
        self.source = source
        self._blobs: dict[str, str] = {}
        self.cache = ParseCache(self._fingerprint)
        if cache_dir is not None:
            # Blob ids are content hashes already; commits are parsed whole ("thorough").
            where = f"git:{os.path.realpath(source.home)}:{source.url}#{source.branch}"
            self.cache.stored = StoredParses(cache_dir, where, content=None)

    def load(self, sha: str) -> Version:
        """Check out `sha` in a free work tree and read it; unchanged blobs are not parsed."""
        info = self.source.info(sha)
        tree = self.source.checkout(sha)
        try:
            self._blobs = self.source.blobs(sha)
            # Attributes can change what a checked-out file holds without changing its blob.
            self.cache.salt = tuple(
                sorted((p, b) for p, b in self._blobs.items() if p.endswith(".gitattributes"))
            )
            self.cache.begin()
            catalog = load_catalog(tree.path, commit=sha, cache=self.cache, thorough=True)
            if self.cache.stored is not None:
                self.cache.stored.save()
        except BaseException:
            self.source.release(tree)
            raise
        return Version(catalog, tree.path, info, tree, tuple(self.cache.parsed))

    def _fingerprint(self, relpath: str, path: Path) -> Hashable | None:
        return self._blobs.get(relpath)
