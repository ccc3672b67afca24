"""Secrets come from env, file and Vault sources, and a bad source is a clear error (§6.4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsroom.config import Settings, load_settings, resolve_reference
from opsroom.errors import ConfigError, RefusedError
from opsroom.policy.secrets import SecretSource, api_path, fetch_secrets, parse_source

VALUE = "pa55-w0rd!$(x)"


def _settings(secrets: dict[str, str], **vault: object) -> Settings:
    return Settings.model_validate({"secrets": secrets, "vault": vault})


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "opsroom.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("env:NETAPP_PW", SecretSource("env", "NETAPP_PW")),
        ("file:/run/secrets/netapp", SecretSource("file", "/run/secrets/netapp")),
        ("vault:kv/data/netapp#password", SecretSource("vault", "kv/data/netapp", "password")),
        ("vault:/kv/netapp/#password", SecretSource("vault", "kv/netapp", "password")),
    ],
)
def test_parse_source(text: str, expected: SecretSource) -> None:
    assert parse_source(text) == expected


@pytest.mark.parametrize(
    "text", ["hunter2", "env:", "env:1BAD", "file:relative", "vault:kv/x", "vault:#k", "ldap:x"]
)
def test_parse_source_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_source(text)


@pytest.mark.parametrize(
    ("source", "kv_version", "path"),
    [
        ("vault:kv/data/netapp#pw", 2, "kv/data/netapp"),
        ("vault:kv/netapp#pw", 2, "kv/data/netapp"),
        ("vault:kv/team/netapp#pw", 2, "kv/data/team/netapp"),
        ("vault:team/kv/data/netapp#pw", 2, "team/kv/data/netapp"),
        ("vault:secret/netapp#pw", 1, "secret/netapp"),
    ],
)
def test_vault_api_path(source: str, kv_version: int, path: str) -> None:
    assert api_path(parse_source(source), kv_version) == path


async def test_env_source_reads_the_variable_at_fetch_time() -> None:
    settings = _settings({"NETAPP_PASSWORD": "env:NETAPP_PW"})
    got = await fetch_secrets(["NETAPP_PASSWORD"], settings, environ={"NETAPP_PW": VALUE})
    assert got == {"NETAPP_PASSWORD": VALUE}
    # Nothing is cached: a rotated value is seen by the next run.
    again = await fetch_secrets(["NETAPP_PASSWORD"], settings, environ={"NETAPP_PW": "rotated"})
    assert again == {"NETAPP_PASSWORD": "rotated"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (VALUE + "\n", VALUE),
        (VALUE + "\r\n", VALUE),
        (VALUE + "\n\n", VALUE + "\n"),
        (VALUE, VALUE),
        ("line1\nline2\n", "line1\nline2"),
    ],
    ids=["newline", "crlf", "two-newlines", "none", "multiline"],
)
async def test_file_source_drops_one_trailing_newline(
    tmp_path: Path, content: str, expected: str
) -> None:
    secret = tmp_path / "netapp"
    secret.write_bytes(content.encode())
    settings = _settings({"NETAPP_PASSWORD": f"file:{secret}"})
    assert await fetch_secrets(["NETAPP_PASSWORD"], settings, environ={}) == {
        "NETAPP_PASSWORD": expected
    }


async def test_only_the_declared_secrets_are_fetched(tmp_path: Path) -> None:
    settings = _settings(
        {"A": "env:A_SRC", "B": f"file:{tmp_path / 'missing'}", "C": "vault:kv/x#y"}
    )
    # B's file and C's Vault are never touched because they are not asked for.
    assert await fetch_secrets(["A"], settings, environ={"A_SRC": VALUE}) == {"A": VALUE}
    assert await fetch_secrets([], settings, environ={}) == {}


async def test_undeclared_secret_is_refused() -> None:
    settings = _settings({"OTHER": "env:OTHER"})
    with pytest.raises(RefusedError) as info:
        await fetch_secrets(["NETAPP_PASSWORD"], settings, environ={"OTHER": VALUE})
    assert str(info.value) == (
        "secret NETAPP_PASSWORD is not configured in [secrets]; nothing was run"
    )


@pytest.mark.parametrize(
    ("sources", "environ", "reason"),
    [
        ({"PW": "env:NETAPP_PW"}, {}, "environment variable NETAPP_PW is not set"),
        ({"PW": "env:NETAPP_PW"}, {"NETAPP_PW": ""}, "secret PW is empty"),
        ({"PW": "file:/nonexistent/opsroom/pw"}, {}, "cannot read /nonexistent/opsroom/pw"),
        ({"PW": "vault:kv/data/netapp#password"}, {}, "[vault] url is not set"),
    ],
    ids=["missing-env", "empty-env", "missing-file", "vault-without-url"],
)
async def test_failing_source_is_refused_naming_the_secret(
    sources: dict[str, str], environ: dict[str, str], reason: str
) -> None:
    with pytest.raises(RefusedError) as info:
        await fetch_secrets(["PW"], _settings(sources), environ={**environ, "OTHER": VALUE})
    assert "PW" in str(info.value)
    assert reason in str(info.value)
    assert VALUE not in str(info.value)


async def test_unreadable_file_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(RefusedError, match="secret PW: cannot read"):
        await fetch_secrets(["PW"], _settings({"PW": f"file:{folder}"}), environ={})


async def test_vault_token_missing_is_refused_without_contacting_vault() -> None:
    settings = _settings({"PW": "vault:kv/netapp#pw"}, url="http://127.0.0.1:9", token="env:TOK")
    with pytest.raises(RefusedError, match=r"secret PW: no Vault token .*TOK is not set"):
        await fetch_secrets(["PW"], settings, environ={})


@pytest.mark.parametrize(
    ("toml", "key_path"),
    [
        ('[secrets]\nNETAPP_PASSWORD = "hunter2-inline"\n', "secrets.NETAPP_PASSWORD"),
        ('[secrets]\nNETAPP_PASSWORD = "file:relative/pw"\n', "secrets.NETAPP_PASSWORD"),
        ('[secrets]\nNETAPP_PASSWORD = "vault:kv/netapp"\n', "secrets.NETAPP_PASSWORD"),
        ('[secrets]\nNETAPP_PASSWORD = "env:NOT-A-NAME"\n', "secrets.NETAPP_PASSWORD"),
        ('[secrets]\n"netapp-password" = "env:X"\n', "secrets.netapp-password"),
        ('[vault]\ntoken = "hunter2-inline"\n', "vault.token"),
        ("[vault]\nkv_version = 3\n", "vault.kv_version"),
        ('[vault]\ntimeout = "soon"\n', "vault.timeout"),
        ('[vault]\nadress = "http://x"\n', "vault.adress: unknown key"),
    ],
)
def test_bad_secret_config_names_the_key_and_never_echoes_it(
    tmp_path: Path, toml: str, key_path: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(str(_write(tmp_path, toml)), environ={})
    assert key_path in str(info.value)
    assert "hunter2-inline" not in str(info.value)


def test_vault_section_is_read_with_defaults_and_overrides(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[secrets]\nNETAPP_PASSWORD = "vault:kv/data/netapp#password"\n'
        '[vault]\nurl = "https://vault.example.org:8200"\ntimeout = "3s"\n',
    )
    s = load_settings(str(path), environ={"OPSROOM_VAULT_KV_VERSION": "1"})
    assert s.secrets == {"NETAPP_PASSWORD": "vault:kv/data/netapp#password"}
    assert s.vault.url == "https://vault.example.org:8200"
    assert s.vault.token == "env:VAULT_TOKEN"
    assert s.vault.timeout == 3.0
    assert s.vault.kv_version == 1
    assert s.vault.namespace is None
    assert s.vault.ca_cert is None


def test_resolve_reference(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s.file-token\n")
    assert resolve_reference("env:TOK", {"TOK": "s.env-token"}) == "s.env-token"
    assert resolve_reference(f"file:{token_file}", {}) == "s.file-token"
    with pytest.raises(ConfigError, match="TOK is not set"):
        resolve_reference("env:TOK", {})
    with pytest.raises(ConfigError, match="cannot read"):
        resolve_reference(f"file:{tmp_path / 'nope'}", {})
    with pytest.raises(ConfigError, match="expected a reference"):
        resolve_reference("s.inline-token", {})
    with pytest.raises(ConfigError) as info:
        resolve_reference("s.inline-token", {})
    assert "inline-token" not in str(info.value)
