"""Shared fixtures."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pg_cluster import Cluster, session_cluster
from stores import STORES, new_store_url
from support import FIXTURES, OPSROOM, Opsroom, Result

if TYPE_CHECKING:
    from opsroom.store.database import Database


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working folder, as a new user would have."""
    d = tmp_path / "work"
    d.mkdir()
    return d


@pytest.fixture
def opsroom(workdir: Path) -> Opsroom:
    """Run the real console script in `workdir` with a clean environment."""

    def call(
        *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
    ) -> Result:
        base = {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}
        base.update(env or {})
        proc = subprocess.run(
            [OPSROOM, *args],
            cwd=workdir,
            env=base,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return call


@pytest.fixture
def echo_catalog() -> Path:
    """A small catalog of scripts that print what they receive."""
    return FIXTURES / "echo_catalog"


# -- stores: every store test runs on SQLite and on PostgreSQL (tests/stores.py) ----------


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """This run's PostgreSQL: OPSROOM_TEST_PG_URL's, or one started on first use."""
    with session_cluster() as cluster:
        yield cluster


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty store for this test, on each backend in turn."""
    cluster = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    with new_store_url(request.param, tmp_path, cluster) as url:
        yield url


@pytest.fixture(params=STORES)
def empty_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """`store_url`, but never migrated: the first opsroom to open it creates every table."""
    cluster = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    with new_store_url(request.param, tmp_path, cluster, migrated=False) as url:
        yield url


@pytest.fixture(scope="module", params=STORES)
def module_store_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`store_url` shared by a module's tests (servers and data set up once per backend)."""
    cluster = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    folder = tmp_path_factory.mktemp("store")
    with new_store_url(request.param, folder, cluster) as url:
        yield url


@pytest.fixture
async def db(store_url: str) -> AsyncIterator[Database]:
    """The database of a new store (`store_url`), open; closed after the test."""
    from opsroom.store.database import Database

    opened = await Database.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()
