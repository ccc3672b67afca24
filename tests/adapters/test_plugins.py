"""Chat platforms come from `opsroom.adapters` entry points, and a missing extra is one line.

A third-party package adds a platform by declaring one entry point, nothing else: the tests
build such a package in a temporary folder (a real distribution with its `entry_points.txt`,
found by the real importlib machinery) and run the real `opsroom` console script with it on
PYTHONPATH. A missing chat SDK is a real import failure: a meta-path finder, installed by
`sitecustomize` in the child process, refuses the module as an absent package would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from opsroom.adapters.plugin import load_plugins
from opsroom.config import load_settings
from opsroom.errors import ConfigError
from support import OPSROOM, Opsroom, wait_for

ECHO_PACKAGE = '''
"""A chat platform from another package: one person says one line, replies go to a file."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from opsroom.adapters.base import Capabilities, ConnectionState, MessageRef
from opsroom.adapters.plugin import AdapterPlugin
from opsroom.model.messages import Inbound
from opsroom.render.text import TextRenderer


class EchoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    transcript: str
    say: str = "!help"


class EchoAdapter:
    name = "echo"
    capabilities = Capabilities()
    renderer = TextRenderer()

    def __init__(self, settings: EchoSettings) -> None:
        self.settings = settings
        self.state = ConnectionState.DISCONNECTED

    async def connect(self) -> None:
        self.state = ConnectionState.CONNECTED

    async def events(self):
        yield Inbound(self.settings.say, principal="echo:alice", room="echo:lobby", direct=True)
        await asyncio.Event().wait()

    async def send(self, room, reply, *, thread_id=None):
        with Path(self.settings.transcript).open("a", encoding="utf-8") as f:
            for text in self.renderer.render(reply):
                f.write(f"{room}: {text}\\n")
        return MessageRef(room=room, id="1")

    async def edit(self, ref, reply):
        await self.send(ref.room, reply)

    async def close(self) -> None:
        self.state = ConnectionState.CLOSED


def create(table, settings, *, services):
    return EchoAdapter(EchoSettings.model_validate(table))


plugin = AdapterPlugin(name="echo", settings=EchoSettings, create=create)
# The same platform over a transport library this host does not have.
remote = AdapterPlugin(
    name="remote", settings=EchoSettings, create=create, requires=("echochat_remote_sdk",)
)
'''

REFUSE_SLACK = '''
"""Run at interpreter start: `slack_bolt` behaves as if it were not installed."""

import sys


class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "slack_bolt":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
'''

SLACK_TABLE = '[adapters.slack]\nbot_token = "env:BOT"\napp_token = "env:APP"\n'
SLACK_ENV = {"BOT": "xoxb-1", "APP": "xapp-1"}
MISSING = "opsroom: install opsroom[slack] to use [adapters.slack]"


@pytest.fixture
def echo_site(tmp_path: Path) -> Path:
    """A folder holding an installed distribution `echochat` that declares the `echo` platform."""
    site = tmp_path / "site"
    (site / "echochat").mkdir(parents=True)
    (site / "echochat" / "__init__.py").write_text(ECHO_PACKAGE, encoding="utf-8")
    info = site / "echochat-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: echochat\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[opsroom.adapters]\necho = echochat:plugin\nremote = echochat:remote\n"
    )
    return site


@pytest.fixture
def no_slack(tmp_path: Path) -> Path:
    """A folder whose `sitecustomize` makes `slack_bolt` unimportable."""
    folder = tmp_path / "no-slack"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(REFUSE_SLACK, encoding="utf-8")
    return folder


def test_a_table_of_a_third_party_platform_is_checked_by_its_own_model(
    opsroom: Opsroom, workdir: Path, echo_site: Path
) -> None:
    env = {"PYTHONPATH": str(echo_site)}
    (workdir / "opsroom.toml").write_text('[adapters.echo]\ntranscript = "t.txt"\ncolour = 1\n')
    bad = opsroom("config", "check", env=env)
    assert bad.code == 2
    assert "adapters.echo.colour: unknown key" in bad.stderr
    assert "Traceback" not in bad.stderr

    (workdir / "opsroom.toml").write_text('[adapters.echo]\ntranscript = "t.txt"\n')
    good = opsroom("config", "check", env={**env, "OPSROOM_ADAPTERS_ECHO_SAY": "!status"})
    assert good.code == 0, good.stderr
    # Its defaults are filled in, and an override reaches its keys, like a built-in's.
    assert json.loads(good.stdout)["adapters"]["echo"] == {
        "transcript": "t.txt",
        "say": "!status",
    }

    # Without the package on the path the same table names no platform.
    gone = opsroom("config", "check")
    assert gone.code == 2
    assert "adapters.echo: unknown chat platform" in gone.stderr


def test_serve_starts_a_third_party_platform_and_answers_on_it(
    workdir: Path, echo_site: Path
) -> None:
    transcript = workdir / "transcript.txt"
    (workdir / "opsroom.toml").write_text(
        f"[adapters.echo]\ntranscript = {str(transcript)!r}\n\n"
        '[[roles]]\nname = "everyone"\nmembers = ["echo:*"]\nallow = ["*"]\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}
    env["PYTHONPATH"] = str(echo_site)
    with (workdir / "serve.log").open("w") as log:
        proc = subprocess.Popen(
            [OPSROOM, "serve", "--listen", "127.0.0.1:0"],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            assert proc.stdout is not None
            said: list[str] = []
            for line in proc.stdout:
                said.append(line)
                if "chat: echo adapter started" in line:
                    break
            else:
                raise AssertionError(f"serve ended: {said} {(workdir / 'serve.log').read_text()}")
            # The person's `!help` went through the dispatcher and back out of the adapter.
            shown = wait_for(lambda: _whole_lines(transcript), what="a reply on the echo platform")
            assert shown.startswith("echo:lobby: ")
            assert "Commands you can run here" in shown, shown
            assert "network status" in shown, "the catalog opsroom serves"
        finally:
            proc.terminate()
            proc.wait(timeout=60)
            if proc.stdout is not None:
                proc.stdout.close()


def _whole_lines(path: Path) -> str:
    """What the adapter has written so far, once a line is complete."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    return text if text.endswith("\n") else ""


def test_config_check_names_the_missing_extra_in_one_line(
    opsroom: Opsroom, workdir: Path, no_slack: Path
) -> None:
    (workdir / "opsroom.toml").write_text(SLACK_TABLE)
    result = opsroom("config", "check", env={**SLACK_ENV, "PYTHONPATH": str(no_slack)})
    assert result.code == 2
    assert result.stderr.strip() == MISSING
    assert result.stdout == "", "nothing else is printed: the configuration is not usable"
    # With the SDK importable the same configuration is fine.
    assert opsroom("config", "check", env=SLACK_ENV).code == 0


def test_serve_stops_at_a_missing_extra_before_it_listens(
    opsroom: Opsroom, workdir: Path, no_slack: Path
) -> None:
    (workdir / "opsroom.toml").write_text(SLACK_TABLE)
    env = {**SLACK_ENV, "PYTHONPATH": str(no_slack)}
    result = opsroom("serve", "--listen", "127.0.0.1:0", env=env)
    assert result.code == 2
    assert result.stderr.strip() == MISSING
    assert "serving on" not in result.stdout
    assert not (workdir / "opsroom.db").exists(), "nothing started: not even the store"


def test_a_third_party_platform_without_its_library_names_the_module(
    opsroom: Opsroom, workdir: Path, echo_site: Path
) -> None:
    (workdir / "opsroom.toml").write_text('[adapters.remote]\ntranscript = "t.txt"\n')
    for command in (("config", "check"), ("serve", "--listen", "127.0.0.1:0")):
        result = opsroom(*command, env={"PYTHONPATH": str(echo_site)})
        assert result.code == 2, command
        assert result.stderr.strip() == (
            "opsroom: configuration error: adapters.remote: needs the Python module "
            "'echochat_remote_sdk', which is not installed"
        )


BROKEN_PACKAGE = """
from opsroom.adapters.plugin import AdapterPlugin

not_a_plugin = 42
misnamed = AdapterPlugin(name="other", settings=None, about="a chat")
"""


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("brokenchat:nowhere", r"chat adapter 'broken' \(brokenchat:nowhere\) cannot load"),
        ("brokenchat:not_a_plugin", "is not an AdapterPlugin"),
        ("brokenchat:misnamed", "calls itself 'other'"),
    ],
)
def test_a_broken_entry_point_is_named_not_taken_for_a_missing_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, message: str
) -> None:
    site = tmp_path / "site"
    (site / "brokenchat").mkdir(parents=True)
    (site / "brokenchat" / "__init__.py").write_text(BROKEN_PACKAGE, encoding="utf-8")
    info = site / "brokenchat-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenchat\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[opsroom.adapters]\nbroken = {target}\n")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(ConfigError, match=message):
        load_plugins()
    (tmp_path / "opsroom.toml").write_text("[adapters.broken]\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(environ={}, cwd=tmp_path)


def test_the_built_in_records_import_no_platform_library() -> None:
    # A fresh interpreter: what loading every record (as `config check` does) imports.
    code = (
        "import sys\n"
        "from opsroom.adapters.plugin import load_plugins\n"
        "assert len(load_plugins()) >= 8\n"
        "heavy = ('slack_bolt', 'slack_sdk', 'aiohttp', 'nio', 'irc', 'jaraco', 'httpx', "
        "'joserfc')\n"
        "print(sorted(m for m in sys.modules if m.partition('.')[0] in heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
