"""Settings from opsroom.toml and OPSROOM_* overrides (SPEC §7.1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsroom.config import load_settings, parse_duration
from opsroom.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "opsroom.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file(tmp_path: Path) -> None:
    s = load_settings(environ={}, cwd=tmp_path)
    assert s.source == "defaults"
    assert s.store.url == "sqlite:///opsroom.db"
    assert s.web.listen == "127.0.0.1:8080"
    assert s.bot.prefix == "!"
    assert s.catalog.path is None


def test_file_in_working_folder_is_read(tmp_path: Path) -> None:
    _write(tmp_path, '[bot]\nprefix = "?"\n[runner]\ntimeout = "15m"\n')
    s = load_settings(environ={}, cwd=tmp_path)
    assert s.bot.prefix == "?"
    assert s.runner.timeout == 900.0


def test_opsroom_config_env_names_the_file(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text('[bot]\nname = "robot"\n')
    s = load_settings(environ={"OPSROOM_CONFIG": str(other)}, cwd=tmp_path)
    assert s.bot.name == "robot"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[runner]\ntimeoutt = 5\n", "runner.timeoutt: unknown key"),
        ("[bogus]\nx = 1\n", "bogus: unknown key"),
        ("[runner]\nconcurrency = 0\n", "runner.concurrency"),
        ('[runner]\ntimeout = "soon"\n', "runner.timeout"),
        ("[store]\nurl = 5\n", "store.url"),
        ("[bot\n", "not valid TOML"),
    ],
    ids=[
        "unknown-key",
        "unknown-section",
        "zero-concurrency",
        "bad-duration",
        "wrong-type",
        "bad-toml",
    ],
)
def test_bad_config_names_the_key_path(tmp_path: Path, text: str, expected: str) -> None:
    _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_settings(environ={}, cwd=tmp_path)
    assert expected in str(err.value)
    assert "opsroom.toml" in str(err.value)


def test_environment_overrides_file(tmp_path: Path) -> None:
    _write(tmp_path, '[runner]\ntimeout = "15m"\n')
    s = load_settings(
        environ={
            "OPSROOM_RUNNER_TIMEOUT": "2h",
            "OPSROOM_BOT_PREFIX": "%",
            "OPSROOM_RUNNER_CONCURRENCY": "3",
        },
        cwd=tmp_path,
    )
    assert s.runner.timeout == 7200.0
    assert s.bot.prefix == "%"
    assert s.runner.concurrency == 3


def test_environment_override_of_unknown_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"runner\.colour: unknown key"):
        load_settings(environ={"OPSROOM_RUNNER_COLOUR": "blue"}, cwd=tmp_path)


def test_relative_catalog_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "conf" / "opsroom.toml"
    cfg.parent.mkdir()
    cfg.write_text('[catalog]\npath = "../scripts"\n')
    s = load_settings(str(cfg), environ={}, cwd=Path("/"))
    assert s.catalog.path == str((tmp_path / "scripts").resolve())


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(str(tmp_path / "nope.toml"), environ={}, cwd=tmp_path)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("500ms", 0.5),
        (" 3 m ", 180.0),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["2 hours", "", "-5", 0, True, "h"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_a_whole_table_then_its_keys_whatever_the_environment_order(tmp_path: Path) -> None:
    environ = {
        "OPSROOM_WEB_OIDC_CLIENT_ID": "from-key",
        "OPSROOM_WEB_OIDC": '{issuer = "https://idp.example.org", client_id = "from-table"}',
    }
    s = load_settings(environ=environ, cwd=tmp_path)
    assert s.web.oidc is not None
    assert (s.web.oidc.issuer, s.web.oidc.client_id) == ("https://idp.example.org", "from-key")


def test_overrides_alone_enable_a_chat_platform(tmp_path: Path) -> None:
    environ = {
        "OPSROOM_ADAPTERS_SLACK_BOT_TOKEN": "env:SLACK_BOT",
        "OPSROOM_ADAPTERS_SLACK_APP_TOKEN": "env:SLACK_APP",
    }
    s = load_settings(environ=environ, cwd=tmp_path)
    assert s.adapters["slack"]["mode"] == "socket"
    assert s.adapters["slack"]["bot_token"] == "env:SLACK_BOT"


def test_one_key_from_two_variables_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"bot\.prefix: set by both OPSROOM_BOT_PREFIX and OPSROOM_bot_prefix"
    ):
        load_settings(environ={"OPSROOM_BOT_PREFIX": "?", "OPSROOM_bot_prefix": "%"}, cwd=tmp_path)


def test_a_secret_override_finds_the_entry_whatever_its_case(tmp_path: Path) -> None:
    _write(tmp_path, '[secrets]\nnetapp_password = "env:OLD"\n')
    s = load_settings(environ={"OPSROOM_SECRETS_NETAPP_PASSWORD": "env:NEW"}, cwd=tmp_path)
    assert s.secrets == {"netapp_password": "env:NEW"}


def test_a_bad_override_names_its_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"OPSROOM_RUNNER_CONCURRENCY": "0"}, cwd=tmp_path)
    assert "runner.concurrency: " in str(err.value)
    assert str(err.value).endswith("(from OPSROOM_RUNNER_CONCURRENCY)")


def test_every_built_in_platform_is_declared_as_an_entry_point() -> None:
    from opsroom.adapters.plugin import load_plugins
    from opsroom.config import adapter_settings_models

    tables = {"slack", "matrix", "irc", "teams", "discord", "mattermost"}
    assert set(adapter_settings_models()) >= tables
    plugins = load_plugins()
    assert {n for n, p in plugins.items() if p.create is not None} >= tables
    # Each platform's extra is named after it; the web chat and the terminal need none.
    assert all(plugins[n].extra == n for n in tables)
    assert plugins["web"].create is None
    assert plugins["terminal"].create is None
