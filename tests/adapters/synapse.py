"""A real Synapse homeserver for the Matrix adapter tests, one per test session.

Synapse lives in its own virtualenv (default ~/.cache/opsroom-test/synapse-venv, or
$OPSROOM_SYNAPSE_VENV) so its many pinned dependencies never meet opsroom's. The venv is
built on first use; `python tests/adapters/synapse.py` builds it ahead of time (scripts/test
does). The server listens on 127.0.0.1 only, without federation or key servers, so the tests
make no outbound traffic. When it cannot be installed or started the tests fail, loudly.

Users: alice, bob, mallory (people) and ops (the bot); the password of `<name>` is
`<name>-pw`.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support import port_for_a_server

SERVER_NAME = "localhost"
USERS = ("alice", "bob", "mallory", "ops")
START_TIMEOUT = 60.0

# Everything a test homeserver needs to be hermetic and fast; the rest stays generated.
_HERMETIC = """
import sys, yaml
path, port = sys.argv[1], int(sys.argv[2])
with open(path) as f:
    config = yaml.safe_load(f)
config["listeners"] = [{
    "port": port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
    "x_forwarded": False, "resources": [{"names": ["client"], "compress": False}],
}]
many = {"per_second": 10000, "burst_count": 10000}
config.update({
    "trusted_key_servers": [],
    "suppress_key_server_warning": True,
    "federation_domain_whitelist": [],
    "presence": {"enabled": False},
    "report_stats": False,
    "enable_registration": False,
    "url_preview_enabled": False,
    "rc_message": many,
    "rc_registration": many,
    "rc_login": {"address": many, "account": many, "failed_attempts": many},
    "rc_joins": {"local": many, "remote": many},
    "rc_invites": {"per_room": many, "per_user": many, "per_issuer": many},
    "rc_joins_per_room": many,
})
with open(path, "w") as f:
    yaml.safe_dump(config, f)
log = config["log_config"]
with open(log) as f:
    text = f.read()
with open(log, "w") as f:
    f.write(text.replace("level: INFO", "level: WARNING"))
"""


def venv_path() -> Path:
    """Where Synapse's own virtualenv lives."""
    default = Path.home() / ".cache" / "opsroom-test" / "synapse-venv"
    return Path(os.environ.get("OPSROOM_SYNAPSE_VENV", default))


def ensure_venv() -> Path:
    """Build Synapse's virtualenv once (python -m venv + pip install matrix-synapse)."""
    venv = venv_path()
    python = venv / "bin" / "python"
    stamp = venv / ".opsroom-synapse-installed"
    if stamp.exists() and python.exists():
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "matrix-synapse",
        ],
        check=True,
    )
    stamp.touch()
    return venv


@dataclass
class Synapse:
    """One Synapse process on 127.0.0.1, restartable on the same data and port."""

    venv: Path
    data: Path
    port: int = field(default_factory=port_for_a_server)
    process: subprocess.Popen[bytes] | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The homeserver's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        """homeserver.yaml."""
        return self.data / "homeserver.yaml"

    def configure(self) -> None:
        """generate-config, then the hermetic edits."""
        python = str(self.venv / "bin" / "python")
        subprocess.run(
            [
                python,
                "-m",
                "synapse.app.homeserver",
                "--server-name",
                SERVER_NAME,
                "--config-path",
                str(self.config),
                "--data-directory",
                str(self.data),
                "--generate-config",
                "--report-stats=no",
            ],
            cwd=self.data,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [python, "-c", _HERMETIC, str(self.config), str(self.port)],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        """Start the homeserver and wait until it answers; RuntimeError if it does not."""
        assert self.process is None, "already running"
        log = (self.data / "stderr.log").open("ab")
        self.process = subprocess.Popen(
            [
                str(self.venv / "bin" / "python"),
                "-m",
                "synapse.app.homeserver",
                "--config-path",
                str(self.config),
            ],
            cwd=self.data,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = (self.data / "stderr.log").read_text(errors="replace")[-3000:]
                self.process = None
                raise RuntimeError(f"Synapse exited while starting:\n{tail}")
            versions = f"{self.url}/_matrix/client/versions"
            with contextlib.suppress(OSError), urllib.request.urlopen(versions, timeout=2):  # noqa: S310
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Synapse did not answer on {self.url} within {START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        """Stop the homeserver (SIGTERM, then SIGKILL) — what a crash looks like to clients."""
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def register(self, user: str) -> str:
        """Create `user` (password `<user>-pw`) with the shared secret; returns a token."""
        secret = _shared_secret(self.config)
        endpoint = f"{self.url}/_synapse/admin/v1/register"
        with urllib.request.urlopen(endpoint, timeout=10) as r:  # noqa: S310
            nonce = json.load(r)["nonce"]
        password = f"{user}-pw"
        mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), user.encode(), password.encode(), b"notadmin"]))
        body = {
            "nonce": nonce,
            "username": user,
            "password": password,
            "admin": False,
            "mac": mac.hexdigest(),
        }
        request = urllib.request.Request(  # noqa: S310
            endpoint,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as r:  # noqa: S310
            token = str(json.load(r)["access_token"])
        self.tokens[user] = token
        return token

    def mxid(self, user: str) -> str:
        """`@user:localhost`."""
        return f"@{user}:{SERVER_NAME}"


def _shared_secret(config: Path) -> str:
    for line in config.read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "registration_shared_secret":
            return value.strip().strip("'\"")
    raise RuntimeError(f"no registration_shared_secret in {config}")


_server: Synapse | None = None


def _shutdown() -> None:
    if _server is not None:
        _server.stop()
        shutil.rmtree(_server.data, ignore_errors=True)


def shared_server() -> Synapse:
    """The session's homeserver, started (and its users registered) on first use."""
    global _server
    if _server is None:
        server = Synapse(venv=ensure_venv(), data=Path(tempfile.mkdtemp(prefix="opsroom-syn-")))
        atexit.register(_shutdown)
        _server = server
        server.configure()
        server.start()
        for user in USERS:
            server.register(user)
    elif _server.process is None:
        _server.start()  # a test stopped it and failed before starting it again
    return _server


@pytest.fixture(scope="session")
def synapse() -> Synapse:
    """A running Synapse shared by the session (stopped when the test process exits)."""
    return shared_server()


if __name__ == "__main__":
    # scripts/test builds the venv before pytest runs, outside any test timeout.
    try:
        print(ensure_venv())
    except (OSError, subprocess.CalledProcessError, urllib.error.URLError) as e:
        sys.exit(f"cannot install Synapse: {e}")
