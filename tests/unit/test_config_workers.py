"""`[workers]` and `[runner] local`: how workers beat and where jobs run (SPEC §8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsroom.config import Settings, load_settings
from opsroom.errors import ConfigError


def _load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Settings:
    (tmp_path / "opsroom.toml").write_text(text, encoding="utf-8")
    return load_settings(environ=environ or {}, cwd=tmp_path)


def test_heartbeat_and_lost_after_read_as_durations(tmp_path: Path) -> None:
    settings = _load(tmp_path, '[workers]\nheartbeat = "2s"\nlost_after = "1m"\n')
    assert (settings.workers.heartbeat, settings.workers.lost_after) == (2.0, 60.0)
    defaults = Settings().workers
    assert (defaults.heartbeat, defaults.lost_after) == (10.0, 30.0)


def test_recheck_reads_as_a_duration_and_defaults_to_two_seconds(tmp_path: Path) -> None:
    assert _load(tmp_path, '[workers]\nrecheck = "500ms"\n').workers.recheck == 0.5
    assert _load(tmp_path, "", {"OPSROOM_WORKERS_RECHECK": "1h"}).workers.recheck == 3600.0
    assert Settings().workers.recheck == 2.0


def test_an_override_sets_them_too(tmp_path: Path) -> None:
    environ = {"OPSROOM_WORKERS_HEARTBEAT": "0.5s", "OPSROOM_RUNNER_LOCAL": "false"}
    settings = _load(tmp_path, "", environ)
    assert settings.workers.heartbeat == 0.5
    assert settings.runner.local is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[workers]\nheartbeat = "30s"\nlost_after = "30s"\n', "lost_after must be longer"),
        ('[workers]\nheartbeat = "soon"\n', "workers.heartbeat"),
        ("[workers]\nbeat = 1\n", "workers.beat"),
        ('[workers]\nrecheck = "0"\n', "workers.recheck"),
        ('[runner]\nlocal = "no"\n', "runner.local"),
    ],
)
def test_bad_values_and_unknown_keys_are_errors(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        _load(tmp_path, text)
