"""`[bot] timezone`: the zone of schedules made without `--tz` (SPEC §5.7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsroom.config import load_settings
from opsroom.errors import ConfigError


def _settings(tmp_path: Path, text: str) -> object:
    (tmp_path / "opsroom.toml").write_text(text, encoding="utf-8")
    return load_settings(environ={}, cwd=tmp_path)


def test_the_default_zone_is_utc(tmp_path: Path) -> None:
    assert load_settings(environ={}, cwd=tmp_path).bot.timezone == "UTC"


def test_an_iana_zone_is_taken_from_the_file_or_the_environment(tmp_path: Path) -> None:
    (tmp_path / "opsroom.toml").write_text('[bot]\ntimezone = "Europe/Berlin"\n')
    assert load_settings(environ={}, cwd=tmp_path).bot.timezone == "Europe/Berlin"
    env = {"OPSROOM_BOT_TIMEZONE": "America/New_York"}
    assert load_settings(environ=env, cwd=tmp_path).bot.timezone == "America/New_York"


@pytest.mark.parametrize(
    ("zone", "says"),
    [
        ("europe/berlin", "did you mean Europe/Berlin?"),
        ("Mars/Olympus_Mons", "is not an IANA time zone"),
        ("localtime", "is not an IANA time zone"),  # this host's setting, not a zone name
        ("/etc/localtime", "is not an IANA time zone"),
        ("CET+1", "is not an IANA time zone"),
    ],
)
def test_anything_else_is_an_error_naming_the_key(tmp_path: Path, zone: str, says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _settings(tmp_path, f'[bot]\ntimezone = "{zone}"\n')
    assert "bot.timezone" in str(refused.value)
    assert says in str(refused.value)
