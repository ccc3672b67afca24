"""`[store] password`: PostgreSQL's password by reference, never inline (SPEC §7.1, §8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsroom.config import load_settings
from opsroom.errors import ConfigError

PG = "postgresql://ops@db.example.org/opsroom"


def _load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> object:
    (tmp_path / "opsroom.toml").write_text(text, encoding="utf-8")
    return load_settings(environ=environ or {}, cwd=tmp_path)


def test_a_referenced_password_is_read_only_when_asked(tmp_path: Path) -> None:
    settings = load_settings(environ={}, cwd=tmp_path)
    assert settings.store.password is None
    assert settings.store.password_value() is None
    (tmp_path / "opsroom.toml").write_text(f'[store]\nurl = "{PG}"\npassword = "env:DB_PW"\n')
    settings = load_settings(environ={}, cwd=tmp_path)
    assert settings.store.password == "env:DB_PW"  # the reference, not the value
    with pytest.raises(ConfigError, match="environment variable DB_PW is not set"):
        settings.store.password_value()


def test_the_password_can_come_from_an_override(tmp_path: Path) -> None:
    environ = {"OPSROOM_STORE_URL": PG, "OPSROOM_STORE_PASSWORD": "file:/run/secrets/db"}
    settings = load_settings(environ=environ, cwd=tmp_path)
    assert settings.store.password == "file:/run/secrets/db"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f'[store]\nurl = "{PG}"\npassword = "hunter2"\n',
            'store.password: Value error, expected a reference like "env:OPSROOM_DB_PASSWORD"',
        ),
        (
            '[store]\npassword = "env:DB_PW"\n',
            "store: Value error, password applies to a postgresql:// url only",
        ),
        (
            '[store]\nurl = "postgresql://ops:hunter2@db/opsroom"\npassword = "env:DB_PW"\n',
            "store: Value error, the url holds a password too: remove it from the url",
        ),
        (f'[store]\nurl = "{PG}"\npasword = "env:DB_PW"\n', "store.pasword: unknown key"),
    ],
    ids=["inline", "sqlite", "twice", "unknown-key"],
)
def test_a_bad_password_setting_is_refused_without_echoing_it(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    assert expected in str(err.value)
    assert "hunter2" not in str(err.value)
