"""The catalog being served: one immutable `Deployment`, replaced whole by a swap.

A request takes `Live.current` once and works with that object to the end: the spec it
looked up, the folder the script runs from and the commit the job records always belong to
one version — the old one or the new one, never a mix. Swapping is one reference
assignment on the event loop.

A deployment's files must stay as they are while anything uses them: `hold` counts the
requests and jobs that do. A retired deployment (no longer current) is released — its
work tree freed for reuse — when the last holder lets go.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from opsroom.model.catalog import Catalog
from opsroom.router.registry import Registry

log = logging.getLogger("opsroom.catalog")


@dataclass(frozen=True, slots=True, eq=False)
class Deployment:
    """One version of the catalog as served: its commands, files and commit."""

    catalog: Catalog
    registry: Registry
    root: Path  # where its scripts are (a git catalog: that commit's work tree)
    commit: str | None  # what its jobs record; None for a folder outside git
    label: str = ""  # what `version` names as the catalog (a folder, or a repository URL)
    release: Callable[[], None] | None = None  # frees its files once nothing uses them


class Live:
    """The current deployment, swapped atomically; older ones kept while still in use."""

    def __init__(self, first: Deployment) -> None:
        self._current = first
        self._holds: dict[int, int] = {}  # id(deployment) -> requests and jobs using it
        self._retired: dict[int, Deployment] = {}

    @property
    def current(self) -> Deployment:
        """The deployment new requests use."""
        return self._current

    def swap(self, new: Deployment) -> Deployment:
        """Serve `new` from now on; the old one is released once nothing holds it."""
        old, self._current = self._current, new
        if old is not new:
            self._retired[id(old)] = old
            self._release_if_unused(old)
        return old

    @contextlib.contextmanager
    def hold(self, deployment: Deployment) -> Iterator[Deployment]:
        """Keep `deployment`'s files while the block runs (a request, a job)."""
        key = id(deployment)
        self._holds[key] = self._holds.get(key, 0) + 1
        try:
            yield deployment
        finally:
            left = self._holds[key] - 1
            if left:
                self._holds[key] = left
            else:
                del self._holds[key]
                self._release_if_unused(deployment)

    def in_use(self) -> int:
        """Retired deployments still held by running work."""
        return sum(1 for key in self._retired if key in self._holds)

    def _release_if_unused(self, deployment: Deployment) -> None:
        key = id(deployment)
        if key in self._holds or key not in self._retired:
            return
        del self._retired[key]
        if deployment.release is not None:
            try:
                deployment.release()
            except Exception:
                log.exception("could not release a retired catalog version")
