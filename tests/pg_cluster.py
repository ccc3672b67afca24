"""A throwaway PostgreSQL cluster for the tests: initdb + pg_ctl on a free loopback port.

`./scripts/test` starts one (`python tests/pg_cluster.py start DIR` prints its URL) and
exports it as OPSROOM_TEST_PG_URL; a plain `pytest` run without it starts its own through
`session_cluster()`. The server never runs as root: under root it runs as the `postgres` user
Debian's package creates. Each test gets a database of its own (`Cluster.new_database`),
copied from a template already migrated to the newest schema, or empty when asked.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from opsroom.store.migrate import upgrade_to_head
from support import port_for_a_server

ENV = "OPSROOM_TEST_PG_URL"


def _bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent  # a link on PATH: the server's own bin folder
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    return versions[0].parent if versions else None


def _as_owner(argv: list[str], owner: str | None) -> list[str]:
    if owner is None:
        return argv
    return ["runuser", "-u", owner, "--", *argv]


def start(folder: Path) -> str:
    """Start a cluster whose files live in `folder`; return its URL."""
    bindir = _bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    owner = None
    if os.geteuid() == 0:
        owner = "postgres"
        pwd.getpwnam(owner)  # KeyError names the missing user
    folder.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        shutil.chown(folder, user=owner)
    data = folder / "data"
    subprocess.run(
        _as_owner(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"],
            owner,
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    for attempt in range(5):
        port = port_for_a_server()
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
        options += " -c max_connections=200"
        log = str(folder / "log")
        done = subprocess.run(
            _as_owner(
                [str(bindir / "pg_ctl"), "-D", str(data), "-l", log, "-w", "-o", options, "start"],
                owner,
            ),
            check=False,
            stdout=subprocess.DEVNULL,
        )
        if done.returncode == 0:
            (folder / "port").write_text(str(port))
            return f"postgresql://postgres@127.0.0.1:{port}/postgres"
        if attempt == 4:
            log = (folder / "log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"PostgreSQL did not start:\n{log}")
    raise AssertionError("unreachable")


def stop(folder: Path) -> None:
    """Stop the cluster in `folder` and remove its files."""
    bindir = _bindir()
    data = folder / "data"
    if bindir is not None and data.exists():
        owner = "postgres" if os.geteuid() == 0 else None
        subprocess.run(
            _as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], owner),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    """`start DIR` prints the URL of a new cluster in DIR; `stop DIR` ends it."""
    if len(sys.argv) != 3 or sys.argv[1] not in {"start", "stop"}:
        print("usage: pg_cluster.py start|stop DIR", file=sys.stderr)
        return 2
    folder = Path(sys.argv[2])
    if sys.argv[1] == "start":
        print(start(folder))
    else:
        stop(folder)
    return 0


def new_folder() -> Path:
    """A fresh folder the cluster's owner can write to."""
    folder = Path(tempfile.mkdtemp(prefix="opsroom-pg-"))
    folder.chmod(0o755)
    return folder


class Cluster:
    """A running cluster that hands out one fresh database per test."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self._template: str | None = None

    def new_database(self, *, migrated: bool = True) -> str:
        """The URL of a new database: at the newest schema, or `migrated=False` empty."""
        name = f"opsroom_test_{uuid.uuid4().hex[:16]}"
        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if migrated:
            # Copying a migrated template is several times faster than migrating each one.
            create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(self._migrated_template()))
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(create)
        return _with_database(self.admin_url, name)

    def copy_database(self, url: str) -> str:
        """The URL of a new database holding what the database at `url` holds now.

        Nothing may be connected to the original while it is copied.
        """
        name = f"opsroom_test_{uuid.uuid4().hex[:16]}"
        create = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(make_url(url).database or "")
        )
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(create)
        return _with_database(self.admin_url, name)

    def drop_database(self, url: str) -> None:
        """Drop a database `new_database` made, ending connections a test left open."""
        name = make_url(url).database
        if name is None or not name.startswith("opsroom_test_"):
            raise ValueError(f"not a test database: {url}")
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(drop)

    def _migrated_template(self) -> str:
        if self._template is None:
            url = self.new_database(migrated=False)
            engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
            try:
                with engine.begin() as conn:
                    upgrade_to_head(conn)
            finally:
                engine.dispose()  # a template may have no connections while it is copied
            self._template = make_url(url).database
        assert self._template is not None
        return self._template


def dump(url: str) -> bytes:
    """Everything a database holds, as pg_dump writes it (to search it for secrets)."""
    bindir = _bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    done = subprocess.run(
        [str(bindir / "pg_dump"), "--dbname", url], capture_output=True, check=True, timeout=60
    )
    return done.stdout


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@contextmanager
def session_cluster() -> Iterator[Cluster]:
    """The cluster of this test run: OPSROOM_TEST_PG_URL's, or one started here and stopped."""
    given = os.environ.get(ENV)
    if given:
        yield Cluster(given)
        return
    folder = new_folder()
    try:
        yield Cluster(start(folder))
    finally:
        stop(folder)


if __name__ == "__main__":
    raise SystemExit(main())
