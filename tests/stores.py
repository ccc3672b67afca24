"""The store backends the suites run on: a SQLite file, or a PostgreSQL database of its own.

The `store_url` fixtures (tests/conftest.py) hand each test a new store on every backend in
`STORES`, so one test body checks both; `sync_engine` reads and writes such a store with
plain SQL, as a user with database access would (or an attacker tampering with it).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from opsroom.store.url import sqlite_path
from pg_cluster import Cluster, dump
from support import Opsroom, Result

STORES = ("sqlite", "postgresql")
"""Every backend a store test runs on; the test ids say which (`test_x[postgresql]`)."""


@contextmanager
def new_store_url(
    backend: str, folder: Path, cluster: Cluster | None, *, migrated: bool = True
) -> Iterator[str]:
    """A URL of a new store on `backend`; a PostgreSQL database is dropped after.

    A SQLite store starts as no file at all; a PostgreSQL one as a database at the newest
    schema (quicker), or with `migrated=False` an empty one for opsroom to migrate.
    """
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'opsroom.db'}"
        return
    assert cluster is not None
    url = cluster.new_database(migrated=migrated)
    try:
        yield url
    finally:
        cluster.drop_database(url)


def backend_of(url: str) -> str:
    """ "sqlite" or "postgresql", from a store URL."""
    return "sqlite" if url.startswith("sqlite") else "postgresql"


@contextmanager
def sync_engine(url: str) -> Iterator[Engine]:
    """A plain (synchronous) SQLAlchemy engine on a store URL, disposed of after."""
    scheme, _, rest = url.partition("://")
    driver = "sqlite" if scheme.startswith("sqlite") else "postgresql+psycopg"
    engine = create_engine(f"{driver}://{rest}")
    try:
        yield engine
    finally:
        engine.dispose()


def raw_sql(url: str, *statements: str, **params: object) -> None:
    """Run SQL statements on a store in one transaction, bypassing opsroom altogether."""
    with sync_engine(url) as engine, engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement), params)


def scalar_sql(url: str, statement: str, **params: object) -> Any:
    """The one value a SQL query returns from a store, read bypassing opsroom."""
    with sync_engine(url) as engine, engine.connect() as conn:
        return conn.execute(text(statement), params).scalar_one()


def with_store(opsroom: Opsroom, url: str) -> Opsroom:
    """The `opsroom` fixture's command, each call using the store at `url`."""

    def call(*args: str, env: dict[str, str] | None = None, **kw: Any) -> Result:
        return opsroom(*args, env={"OPSROOM_STORE_URL": url, **(env or {})}, **kw)

    return call


def row(url: str, statement: str, **params: object) -> dict[str, Any] | None:
    """The first row a SQL query returns from a store (None if none), read bypassing opsroom.

    None too while the store has no tables yet (its first opsroom process is creating
    them), or, for SQLite, no file.
    """
    path = sqlite_path(url)
    if backend_of(url) == "sqlite" and (path is None or not Path(path).exists()):
        return None
    try:
        with sync_engine(url) as engine, engine.connect() as conn:
            found = conn.execute(text(statement), params).mappings().first()
    except (OperationalError, ProgrammingError):
        return None  # no such table (yet)
    return None if found is None else dict(found)


@contextmanager
def copied_store(url: str, folder: Path, cluster: Cluster | None) -> Iterator[str]:
    """A private copy of the store at `url` (nothing may have it open); dropped after."""
    if backend_of(url) == "sqlite":
        path = sqlite_path(url)
        assert path is not None
        copy = folder / "opsroom.db"
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{path}{suffix}").exists():
                shutil.copy(f"{path}{suffix}", f"{copy}{suffix}")
        yield f"sqlite:///{copy}"
        return
    assert cluster is not None
    copy_url = cluster.copy_database(url)
    try:
        yield copy_url
    finally:
        cluster.drop_database(copy_url)


def store_bytes(url: str) -> bytes:
    """Everything the store holds as bytes: the SQLite files, or PostgreSQL's dump."""
    if backend_of(url) == "sqlite":
        path = sqlite_path(url)
        assert path is not None
        files = [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    return dump(url)
