"""What a PowerShell command requires and which secrets fill its credentials is shown where
people look: `help <command>` in chat and the command's page in the console (SPEC §3.10)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from opsroom.app import App
from opsroom.config import Settings
from opsroom.testing import Bot
from opsroom.web.app import create_app
from opsroom.web.passwords import hash_password

FUNCTIONS = Path(__file__).parents[2] / "fixtures" / "powershell" / "functions"
PASSWORD = "correct horse battery staple"
REQUIRES = "modules ActiveDirectory; edition Desktop; run as administrator"
CREDENTIALS = "-Credential from secret SVC_ACCOUNT, -RecoveryPassword from secret RECOVERY_PW"


def catalog(tmp_path: Path) -> Path:
    root = tmp_path / "catalog" / "windows"
    root.mkdir(parents=True)
    shutil.copy(FUNCTIONS / "Set-ServiceAccount.ps1", root)
    (root / "Set-ServiceAccount.ps1.opsroom.toml").write_text(
        '[params.Credential]\nsecret = "SVC_ACCOUNT"\n'
        '[params.RecoveryPassword]\nsecret = "RECOVERY_PW"\n',
        encoding="utf-8",
    )
    return root.parent


async def test_help_shows_requirements_and_credential_secrets(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    async with Bot.open(catalog_dir=str(catalog(tmp_path)), store_url=url) as bot:
        said = await bot.say("!help windows set-serviceaccount")
    assert f"requires: {REQUIRES}" in said.text
    assert f"credentials: {CREDENTIALS}" in said.text
    # A credential is no chat parameter.
    assert "--Credential" not in said.text
    assert "--ServiceName" in said.text


async def test_the_command_page_shows_requirements_and_credential_secrets(
    tmp_path: Path,
) -> None:
    engine = await App.open(
        Settings(), catalog_dir=str(catalog(tmp_path)), store_url=f"sqlite:///{tmp_path}/t.db"
    )
    try:
        await engine.store.put_web_user("alice", password_hash=hash_password(PASSWORD))
        transport = httpx.ASGITransport(app=create_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as c:
            await c.get("/login")
            r = await c.post(
                "/login",
                data={
                    "username": "alice",
                    "password": PASSWORD,
                    "csrf_token": c.cookies["opsroom_login_csrf"],
                },
            )
            assert r.status_code == 303, r.text
            page = (await c.get("/catalog/windows set-serviceaccount")).text
    finally:
        await engine.close()
    assert f"<dt>Requires</dt><dd>{REQUIRES}</dd>" in page
    assert (
        "<dt>Credentials</dt><dd><code>-Credential</code> from secret <code>SVC_ACCOUNT</code>, "
        "<code>-RecoveryPassword</code> from secret <code>RECOVERY_PW</code></dd>"
    ) in page
