"""A script language is one LanguageSupport record (docs/contributing.md): awk, added by one.

The record below is the whole of awk's support: the catalog finds `.awk` files, reads their
argc-style tags and `# opsroom:` lines, the runner starts `awk -f <file>` with the values as
OPSROOM_ARG_* variables, and help and the web console say when its interpreter is missing.
Real catalogs, a real SQLite store, real child processes and the real web app.
"""

from __future__ import annotations

import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from opsroom.catalog.scan import load_catalog
from opsroom.config import Settings
from opsroom.model.commands import Language
from opsroom.model.jobs import JobState
from opsroom.model.languages import (
    CommentSyntax,
    Interpreter,
    LanguageSupport,
    LaunchRecipe,
    Passing,
    register,
    unregister,
)
from opsroom.testing import Bot

AWK = LanguageSupport(
    language=Language("awk"),
    label="awk",
    kind="an awk script",
    suffixes=(".awk",),
    comments=CommentSyntax("#"),
    parser="opsroom.catalog.languages:read_shell",  # `# @arg` tags read as for shell
    launch=LaunchRecipe(Interpreter(program="awk", flags=("-f",)), Passing.ENV),
)

USAGE = """\
#!/usr/bin/awk -f
# opsroom: aliases = ["du"]
# @describe Say which host was looked at.
# @arg target! The host to look at
BEGIN { printf "looked at [%s]\\n", ENVIRON["OPSROOM_ARG_TARGET"] }
"""
TRICKY = "web01; $(touch pwned) `id` 'q'"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    (root / "disk").mkdir(parents=True)
    (root / "disk" / "usage.awk").write_text(USAGE, encoding="utf-8")
    return root


def registered(record: LanguageSupport) -> Iterator[LanguageSupport]:
    register(record)
    try:
        yield record
    finally:
        unregister(record.language)


@pytest.fixture
def awk() -> Iterator[LanguageSupport]:
    assert shutil.which("awk") is not None, "awk is part of every POSIX host"
    yield from registered(AWK)


@pytest.fixture
def awk_not_here() -> Iterator[LanguageSupport]:
    missing = Interpreter(program="awk-not-on-this-host", flags=("-f",), required=True)
    yield from registered(
        LanguageSupport(
            language=Language("awk"),
            label="awk",
            kind="an awk script",
            suffixes=(".awk",),
            parser="opsroom.catalog.languages:read_shell",
            launch=LaunchRecipe(missing, Passing.ENV),
        )
    )


def test_without_its_record_an_awk_file_is_no_command(catalog: Path) -> None:
    assert load_catalog(catalog).commands == ()


@pytest.mark.usefixtures("awk")
async def test_one_record_makes_awk_scripts_commands_that_run(
    catalog: Path, tmp_path: Path
) -> None:
    (spec,) = load_catalog(catalog, thorough=True).commands
    assert (spec.name, spec.language, spec.aliases) == ("disk usage", Language("awk"), ("du",))
    async with Bot.open(catalog_dir=str(catalog), store_url=f"sqlite:///{tmp_path}/t.db") as bot:
        said = await bot.say(f'!du "{TRICKY}"')
        helped = await bot.say("!help disk usage")
    assert said.outcome.state is JobState.SUCCEEDED, said.text
    assert f"looked at [{TRICKY}]" in said.text  # byte for byte, no shell in between
    assert not (tmp_path / "pwned").exists()
    assert not any(catalog.rglob("pwned"))
    assert "Say which host was looked at." in helped.text
    assert "disk/usage.awk (awk)" in helped.text


@pytest.mark.usefixtures("awk_not_here")
async def test_a_missing_required_interpreter_refuses_and_help_says_so(
    catalog: Path, tmp_path: Path
) -> None:
    async with Bot.open(catalog_dir=str(catalog), store_url=f"sqlite:///{tmp_path}/t.db") as bot:
        said = await bot.say("!du web01")
        helped = await bot.say("!help du")
    assert said.refused, said.text
    assert "no awk runtime (awk-not-on-this-host) on this host: disk usage cannot run here" in (
        said.text
    )
    assert said.job_id is None
    assert "No awk runtime (awk-not-on-this-host) on this host" in helped.text


PS_SCRIPT = """\
<#
.SYNOPSIS
    Show a service's status.
#>
param([string]$Name = "spooler")
Write-Output $Name
"""


async def _command_page(catalog: Path, tmp_path: Path, config: str, name: str) -> str:
    """The console's page of one command, fetched by a logged-in user."""
    from opsroom.app import App
    from opsroom.web.app import create_app
    from opsroom.web.passwords import hash_password

    settings = Settings.model_validate(tomllib.loads(config))
    app = await App.open(settings, catalog_dir=str(catalog), store_url=f"sqlite:///{tmp_path}/w.db")
    try:
        await app.store.put_web_user("alice", password_hash=hash_password(PASSWORD))
        transport = httpx.ASGITransport(app=create_app(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as c:
            await c.get("/login")
            form = {"username": "alice", "password": PASSWORD}
            form["csrf_token"] = c.cookies["opsroom_login_csrf"]
            assert (await c.post("/login", data=form)).status_code == 303
            page = await c.get(f"/catalog/{name}")
            assert page.status_code == 200
            return page.text
    finally:
        await app.close()


@pytest.mark.usefixtures("awk_not_here")
async def test_the_console_asks_the_record_whether_a_command_can_run_here(
    catalog: Path, tmp_path: Path
) -> None:
    (catalog / "Get-Service.ps1").write_text(PS_SCRIPT, encoding="utf-8")
    fake_pwsh = tmp_path / "bin" / "pwsh-here"
    fake_pwsh.parent.mkdir()
    fake_pwsh.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    fake_pwsh.chmod(0o755)
    config = f'[runner]\npwsh = "{fake_pwsh}"\n'

    awk_page = await _command_page(catalog, tmp_path, config, "disk usage")
    ps_page = await _command_page(catalog, tmp_path, config, "get-service")

    assert "No awk runtime (awk-not-on-this-host) on this host" in awk_page
    # [runner] pwsh names a runtime that is there: no warning, wherever `pwsh` itself is
    assert "Show a service&#39;s status." in ps_page or "Show a service's status." in ps_page
    assert "cannot run here" not in ps_page
    assert "cannot run on this host" not in ps_page  # what the page said, asking `pwsh` only
