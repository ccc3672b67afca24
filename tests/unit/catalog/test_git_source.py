"""catalog/source.py: how git is run — credentials by reference, never prompting."""

from __future__ import annotations

import base64
import shlex
import sys
from pathlib import Path

from gitrepo import HELLO, make_remote
from opsroom.catalog.source import GitSource, _git_env, _local_env


def test_a_token_becomes_a_header_scoped_to_the_repository_host_in_the_environment() -> None:
    env = _git_env(
        "https://gitlab.example.org/ops/scripts.git", token="tok", ssh_key=None, environ={}
    )
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_CONFIG_COUNT"] == "1"
    assert env["GIT_CONFIG_KEY_0"] == "http.https://gitlab.example.org/.extraHeader"
    basic = base64.b64encode(b"oauth2:tok").decode()
    assert env["GIT_CONFIG_VALUE_0"] == f"Authorization: Basic {basic}"
    # A user name in the URL (GitHub's x-access-token) is the one sent with the token.
    named = _git_env(
        "https://x-access-token@github.example.com:8443/o/r.git",
        token="t",
        ssh_key=None,
        environ={},
    )
    assert named["GIT_CONFIG_KEY_0"] == "http.https://github.example.com:8443/.extraHeader"
    assert named["GIT_CONFIG_VALUE_0"].endswith(base64.b64encode(b"x-access-token:t").decode())
    # Commands that never reach the remote run without it.
    local = _local_env(env)
    assert basic not in "".join(local.values())
    assert not any(k.startswith("GIT_CONFIG_") for k in local)


def test_inherited_git_config_variables_and_askpass_programs_are_dropped() -> None:
    env = _git_env(
        "https://h/r.git",
        token=None,
        ssh_key=None,
        environ={
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "core.sshCommand",
            "GIT_CONFIG_VALUE_0": "evil",
            "GIT_ASKPASS": "/usr/bin/gui-askpass",
            "PATH": "/usr/bin",
        },
    )
    assert env["GIT_CONFIG_COUNT"] == "0"
    assert "GIT_CONFIG_KEY_0" not in env
    assert "GIT_ASKPASS" not in env
    assert env["PATH"] == "/usr/bin"


def test_an_ssh_key_path_is_quoted_word_for_word(tmp_path: Path) -> None:
    key = "/keys/it's a key;rm -rf x/id_ed25519"
    env = _git_env("git@h:o/r.git", token=None, ssh_key=key, environ={})
    assert shlex.split(env["GIT_SSH_COMMAND"]) == [
        "ssh",
        "-i",
        key,
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
    ]


FAKE_SSH = """#!{python}
# Stands in for ssh: records its argv, then runs the remote command as sshd would.
import json, os, subprocess, sys
with open({log!r}, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
sys.exit(subprocess.call(["sh", "-c", sys.argv[-1]]))
"""


def test_an_ssh_fetch_uses_the_key_file_it_was_given(tmp_path: Path) -> None:
    remote = make_remote(tmp_path)
    remote.write("hello.py", HELLO)
    sha = remote.commit("hello")
    remote.push()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "ssh.log"
    ssh = bin_dir / "ssh"
    ssh.write_text(FAKE_SSH.format(python=sys.executable, log=str(log)), encoding="utf-8")
    ssh.chmod(0o755)
    key = tmp_path / "my keys" / "id_ed25519"
    key.parent.mkdir()
    key.write_text("not a real key", encoding="utf-8")
    environ = {**remote.env, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    source = GitSource(
        f"ssh://git.example.invalid{remote.bare}",
        "main",
        tmp_path / "work",
        owner="test:1:boot:1",
        owner_alive=lambda owner: True,
        ssh_key=str(key),
        environ=environ,
    )
    source.open()
    assert source.fetch() == sha
    argv = log.read_text(encoding="utf-8").splitlines()[0]
    assert f'"-i", "{key}"' in argv
    assert "git.example.invalid" in argv
    source.close()
