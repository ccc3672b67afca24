"""`[web.oidc]` as a user writes it in opsroom.toml: what is accepted, what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsroom.config import Settings, load_settings
from opsroom.errors import ConfigError


def load(tmp_path: Path, body: str) -> Settings:
    """The settings of an opsroom.toml holding `body` under `[web.oidc]`."""
    path = tmp_path / "opsroom.toml"
    path.write_text("[web.oidc]\n" + body, encoding="utf-8")
    return load_settings(str(path), environ={}, cwd=tmp_path)


def test_a_minimal_section_gets_the_documented_defaults(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        'issuer = "https://login.example.org/realms/ops"\nclient_id = "opsroom"\n'
        'client_secret = "env:OIDC_CLIENT_SECRET"\n',
    )
    oidc = settings.web.oidc
    assert oidc is not None
    assert oidc.issuer == "https://login.example.org/realms/ops"
    assert oidc.scopes == ("openid", "profile", "email")
    assert oidc.username_claim == "preferred_username"
    assert oidc.button_label == "Sign in with SSO"
    assert oidc.allowed_domains is None
    assert oidc.allowed_groups is None


def test_without_the_section_there_is_no_single_sign_on(tmp_path: Path) -> None:
    path = tmp_path / "opsroom.toml"
    path.write_text("[web]\n", encoding="utf-8")
    assert load_settings(str(path), environ={}, cwd=tmp_path).web.oidc is None


@pytest.mark.parametrize(
    ("body", "where", "hint"),
    [
        (
            'issuer = "https://idp.example"\nclient_id = "c"\nclient_secret = "hunter2-inline"\n',
            "web.oidc.client_secret",
            "never the secret itself",
        ),
        ('issuer = "http://idp.example"\nclient_id = "c"\n', "web.oidc.issuer", "https://"),
        ('issuer = "idp.example"\nclient_id = "c"\n', "web.oidc.issuer", "https://"),
        ('issuer = "https://idp.example"\n', "web.oidc.client_id", ""),
        (
            'issuer = "https://idp.example"\nclient_id = "c"\nscopes = ["profile"]\n',
            "web.oidc.scopes",
            '"openid"',
        ),
        (
            'issuer = "https://idp.example"\nclient_id = "c"\nsecret = "x"\n',
            "web.oidc.secret",
            "unknown key",
        ),
    ],
    ids=[
        "inline-secret",
        "plain-http",
        "no-scheme",
        "no-client-id",
        "no-openid-scope",
        "unknown-key",
    ],
)
def test_mistakes_name_the_key_and_never_echo_a_secret(
    tmp_path: Path, body: str, where: str, hint: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, body)
    message = str(caught.value)
    assert where in message
    assert hint in message
    assert "hunter2-inline" not in message
