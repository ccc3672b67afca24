"""What only PostgreSQL has: a password kept apart from the URL, and its connection errors.

Every other store behaviour is checked on both backends by the parametrised store suites
(`store_url`); these need a server that asks for a password, or one that is not there.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from pg_cluster import Cluster
from support import Opsroom, bound_socket, port_of, wait_for


@dataclass(frozen=True)
class Guarded:
    """A database only its role may open, and only with the role's password."""

    url: str  # without the password
    password: str


def _refuses(url: str, password: str) -> bool:
    try:
        psycopg.connect(url, password=password, connect_timeout=5).close()
    except psycopg.OperationalError as e:
        return "password authentication failed" in str(e)
    return False


@pytest.fixture
def guarded(postgres: Cluster) -> Iterator[Guarded]:
    """A role with a password that the server checks (scram), owning a new database."""
    role = f"opsroom_pw_{secrets.token_hex(6)}"
    password = secrets.token_urlsafe(16)
    admin = psycopg.connect(postgres.admin_url, autocommit=True)
    url = postgres.new_database(migrated=False)
    database = make_url(url).database
    hba = Path(str(admin.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
    rules = hba.read_text()
    try:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
        admin.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(database or ""), sql.Identifier(role)
            )
        )
        # First matching line wins: this role must give its password; the rest stays trust.
        hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n{rules}")
        admin.execute("SELECT pg_reload_conf()")
        plain = make_url(url).set(username=role).render_as_string(hide_password=False)
        wait_for(lambda: _refuses(plain, "wrong"), 10, what="the server to ask for passwords")
        yield Guarded(plain, password)
    finally:
        hba.write_text(rules)
        admin.execute("SELECT pg_reload_conf()")
        postgres.drop_database(url)
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        admin.close()


def _configure(workdir: Path, url: str, password: str) -> None:
    (workdir / "opsroom.toml").write_text(f'[store]\nurl = "{url}"\npassword = "{password}"\n')


def test_the_password_is_read_from_the_environment_and_opens_the_store(
    guarded: Guarded, workdir: Path, opsroom: Opsroom
) -> None:
    _configure(workdir, guarded.url, "env:OPS_DB_PASSWORD")
    r = opsroom("jobs", "--json", env={"OPS_DB_PASSWORD": guarded.password})
    assert r.code == 0, r.stderr
    assert r.json_lines == [[]]


def test_the_password_is_read_from_a_file(
    guarded: Guarded, workdir: Path, opsroom: Opsroom, tmp_path: Path
) -> None:
    secret = tmp_path / "db-password"
    secret.write_text(guarded.password + "\n")  # as editors leave it
    _configure(workdir, guarded.url, f"file:{secret}")
    r = opsroom("audit", "verify")
    assert r.code == 0, r.stderr
    assert "audit log intact: 0 entries" in r.stdout


def test_a_wrong_password_is_a_clear_error_that_shows_no_password(
    guarded: Guarded, workdir: Path, opsroom: Opsroom
) -> None:
    _configure(workdir, guarded.url, "env:OPS_DB_PASSWORD")
    wrong = "not-" + guarded.password
    r = opsroom("jobs", "--json", env={"OPS_DB_PASSWORD": wrong})
    assert r.code == 2
    assert r.stdout == ""
    assert "cannot open the store" in r.stderr
    assert "password authentication failed" in r.stderr
    assert "Traceback" not in r.stderr
    assert wrong not in r.stderr
    assert guarded.password not in r.stderr


def test_a_missing_password_variable_says_which_one(
    guarded: Guarded, workdir: Path, opsroom: Opsroom
) -> None:
    _configure(workdir, guarded.url, "env:OPS_DB_PASSWORD")
    r = opsroom("jobs", "--json")
    assert r.code == 2
    assert r.stderr == (
        "opsroom: cannot open the store: [store] password env:OPS_DB_PASSWORD: "
        "environment variable OPS_DB_PASSWORD is not set\n"
    )


def test_an_unreachable_server_is_one_line_without_the_password(opsroom: Opsroom) -> None:
    with bound_socket() as closed:  # bound, never listening: every connection is refused
        where = f"127.0.0.1:{port_of(closed)}/opsroom"
        r = opsroom("jobs", "--json", "--store", f"postgresql://ops:s3cret-pw@{where}")
    assert r.code == 2
    assert r.stderr.startswith(f"opsroom: cannot open the store postgresql://ops:***@{where}: ")
    assert "refused" in r.stderr
    assert len(r.stderr.splitlines()) == 1
    assert "s3cret-pw" not in r.stderr
