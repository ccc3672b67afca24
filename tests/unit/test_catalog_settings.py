"""`[catalog]` keys of a git catalog (SPEC §10): accepted values and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsroom.config import load_settings
from opsroom.errors import ConfigError


def load(tmp_path: Path, body: str, environ: dict[str, str] | None = None) -> object:
    path = tmp_path / "opsroom.toml"
    path.write_text("[catalog]\n" + body + "\n", encoding="utf-8")
    return load_settings(str(path), environ=environ or {}).catalog


def test_a_git_catalog_with_every_key(tmp_path: Path) -> None:
    cat = load(
        tmp_path,
        'git = "https://gitlab.example.org/ops/scripts.git"\n'
        'branch = "release/2026"\npoll_interval = "5m"\n'
        'webhook_secret = "env:HOOK"\ntoken = "file:/run/secrets/git"\n'
        'announce = "slack:C0OPS"\nweb_url = "https://gitlab.example.org/ops/scripts.git/"',
    )
    assert cat.git == "https://gitlab.example.org/ops/scripts.git"  # type: ignore[attr-defined]
    assert cat.branch == "release/2026"  # type: ignore[attr-defined]
    assert cat.poll_interval == 300.0  # type: ignore[attr-defined]
    assert cat.web_url == "https://gitlab.example.org/ops/scripts"  # type: ignore[attr-defined]


def test_defaults_and_webhook_only(tmp_path: Path) -> None:
    cat = load(tmp_path, 'git = "git@gitlab.example.org:ops/scripts.git"')
    assert (cat.branch, cat.poll_interval) == ("main", 60.0)  # type: ignore[attr-defined]
    only_hooks = load(tmp_path, 'git = "/srv/scripts.git"\npoll_interval = "0"')
    assert only_hooks.poll_interval == 0.0  # type: ignore[attr-defined]
    env = load(tmp_path, 'git = "/srv/scripts.git"', {"OPSROOM_CATALOG_POLL_INTERVAL": "0"})
    assert env.poll_interval == 0.0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('git = "https://bot:glpat-abc@gitlab.example.org/s.git"', "token inside the URL"),
        ('git = "ext::evil%S"', "scheme is not allowed"),
        ('git = "--upload-pack=evil"', "expected a repository URL"),
        ('git = "http://gitlab.example.org/s.git"', "plain http:// only on localhost"),
        ('git = "/s.git"\nbranch = "-x"', "not a branch name"),
        ('git = "/s.git"\nbranch = "a..b"', "not a branch name"),
        ('git = "/s.git"\npoll_interval = "soon"', "expected a duration"),
        ('git = "/s.git"\nwebhook_secret = "hunter2"', 'reference like "env:GIT_TOKEN"'),
        ('git = "https://h/s.git"\ntoken = "glpat-abc"', 'reference like "env:GIT_TOKEN"'),
        ('git = "git@h:s.git"\nssh_key = "env:KEY"', '"file:/absolute/path"'),
        ('git = "/s.git"\nannounce = "ops"', 'a room like "slack:C0OPS"'),
        ('git = "/s.git"\nweb_url = "gitlab.example.org/s"', "web address"),
        ('path = "scripts"\ngit = "/s.git"', "set either path or git, not both"),
        ('webhook_secret = "env:HOOK"', "applies only with git"),
        ('git = "git@h:s.git"\ntoken = "env:T"', "token applies to https://"),
        ('git = "https://h/s.git"\nssh_key = "file:/k"', "ssh_key applies to ssh"),
        ('git = "/s.git"\nbranche = "main"', "branche"),
    ],
)
def test_bad_catalog_keys_are_errors_naming_the_key(
    tmp_path: Path, body: str, message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, body)
    assert message in str(err.value)
    assert "catalog" in str(err.value)
    assert "glpat-abc" not in str(err.value), "a token pasted inline is never echoed"
    assert "hunter2" not in str(err.value)
