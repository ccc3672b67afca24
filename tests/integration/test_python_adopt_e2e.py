"""argparse, click and typer scripts adopted as they are, run end to end (SPEC §3.10).

Real scripts, a real engine (`opsroom.testing.Bot`), real child processes: each script prints
what its own parser made of its argv, and that must be exactly what was typed in chat —
values starting with `-`, shell syntax, spaces, repeated options, counts and sub-commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_pep723_env import PKG, build_wheel

from opsroom.config import RunnerSettings, Settings
from opsroom.model.jobs import JobState
from opsroom.testing import Bot, Said
from support import FIXTURES

CATALOG = FIXTURES / "python_adopt" / "run"


async def say(tmp_path: Path, text: str, catalog: Path = CATALOG, **settings: Any) -> Said:
    async with Bot.open(
        catalog_dir=str(catalog),
        store_url=f"sqlite:///{tmp_path}/t.db",
        settings=Settings(**settings) if settings else None,
    ) as bot:
        return await bot.say(text)


def printed(said: Said) -> dict[str, Any]:
    """The one JSON line the script printed."""
    assert said.outcome.state is JobState.SUCCEEDED, said.text
    lines = [ln for ln in said.outcome.output.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, said.outcome.output
    result: dict[str, Any] = json.loads(lines[0])
    return result


async def test_argparse_values_arrive_exactly(tmp_path: Path) -> None:
    said = await say(
        tmp_path,
        "!adopt backup-run --tag '$(id); rm -rf /' --tag=-x --tag '--y z' --note '-a b'"
        " -n 3 --ratio -0.5 --verbose 2 --dry-run --no-color --json -- -web1 vol1 '-vol 2'",
    )
    got = printed(said)
    assert got["args"] == {
        "host": "-web1",
        "volumes": ["vol1", "-vol 2"],
        "count": 3,
        "ratio": -0.5,
        "tag": ["$(id); rm -rf /", "-x", "--y z"],
        "note": "-a b",
        "verbose": 2,
        "dry_run": True,
        "color": False,
        "json": True,
        "csv": False,
    }
    assert got["argv"] == [
        "--count=3",
        "--ratio=-0.5",
        "--tag=$(id); rm -rf /",
        "--tag=-x",
        "--tag=--y z",
        "--note=-a b",
        "--no-color",
        "--json",
        "--verbose",
        "--verbose",
        "--dry-run",
        "--",
        "-web1",
        "vol1",
        "-vol 2",
    ]


async def test_argparse_defaults_stay_the_scripts_own(tmp_path: Path) -> None:
    got = printed(await say(tmp_path, "!adopt backup-run web1"))
    assert got["argv"] == ["web1"]
    assert (got["args"]["count"], got["args"]["color"], got["args"]["tag"]) == (1, True, None)


async def test_positional_words_go_to_the_scripts_positionals_as_on_its_command_line(
    tmp_path: Path,
) -> None:
    got = printed(await say(tmp_path, "!adopt backup-run web1 vol1 vol2 vol3 -n 2"))
    assert got["argv"] == ["web1", "vol1", "vol2", "vol3", "--count=2"]
    assert (got["args"]["volumes"], got["args"]["count"]) == (["vol1", "vol2", "vol3"], 2)


async def test_two_of_a_mutually_exclusive_group_are_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    said = await say(tmp_path, "!adopt backup-run web1 --json --csv")
    assert said.outcome.outcome == "refused"
    assert said.outcome.job_id is None
    assert "--json and --csv cannot be used together" in said.text
    said = await say(tmp_path, "!adopt export quarterly")
    assert (said.outcome.outcome, said.outcome.job_id) == ("refused", None)
    assert "one of --pdf, --html is required" in said.text
    assert printed(await say(tmp_path, "!adopt export quarterly --html")) == {
        "report": "quarterly",
        "pdf": False,
        "html": True,
    }


async def test_help_shows_the_scripts_own_parameters_and_the_exclusive_group(
    tmp_path: Path,
) -> None:
    said = await say(tmp_path, "!help adopt backup-run")
    assert "Back up a host's volumes (argparse, as teams write it)." in said.text
    assert "--json (switch) — (not with --csv)" in said.text
    assert "--count (int; default 1; alias --n) — copies to keep" in said.text


async def test_a_value_of_exactly_two_dashes_is_refused_not_mangled(tmp_path: Path) -> None:
    said = await say(tmp_path, "!adopt backup-run web1 --note=--")
    assert said.outcome.outcome == "refused"
    assert said.outcome.job_id is None
    assert "a value of exactly '--' cannot reach this script's parser unchanged" in said.text


async def test_argparse_sub_commands_are_commands_of_their_own(tmp_path: Path) -> None:
    got = printed(
        await say(tmp_path, "!adopt vmctl snapshot-create --site lon --label a --label -b -- -vm1")
    )
    assert got["argv"] == ["--site=lon", "snapshot_create", "--label=a", "--label=-b", "--", "-vm1"]
    assert got["args"] == {
        "command": "snapshot_create",
        "site": "lon",
        "name": "-vm1",
        "label": ["a", "-b"],
    }
    got = printed(await say(tmp_path, "!adopt vmctl start vm2 --wait 1.5"))
    assert got["args"] == {"command": "start", "site": "par", "name": "vm2", "wait": 1.5}


async def test_click_group_values_arrive_exactly(tmp_path: Path) -> None:
    got = printed(
        await say(
            tmp_path,
            "!adopt users create --realm lab -g admins,-ops -x '-y z' --locked --shell zsh -- -bob",
        )
    )
    assert got == {
        "argv": [
            "--realm=lab",
            "create",
            "--group=admins",
            "--group=-ops",
            "--shell=zsh",
            "-x",
            "-y z",
            "--locked",
            "--",
            "-bob",
        ],
        "realm": "lab",
        "login": "-bob",
        "group": ["admins", "-ops"],
        "shell": "zsh",
        "extra": "-y z",
        "locked": True,
    }


async def test_typer_values_arrive_exactly(tmp_path: Path) -> None:
    got = printed(
        await say(tmp_path, "!adopt rotate svc-backup --kind ssh -d 30 --notify a,-b --force")
    )
    assert got == {
        "argv": ["svc-backup", "--kind=ssh", "--days=30", "--force", "--notify=a", "--notify=-b"],
        "account": "svc-backup",
        "kind": "ssh",
        "days": 30,
        "force": True,
        "notify": ["a", "-b"],
    }
    said = await say(tmp_path, "!adopt rotate svc --days 400")
    assert (said.outcome.outcome, said.outcome.job_id) == ("refused", None)
    assert "--days: 400 is not between 1 and 365" in said.text


async def test_pep723_argparse_script_runs_in_its_own_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    wheel = build_wheel(tmp_path)
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "probe.py").write_text(
        f"# /// script\n# dependencies = ['{PKG} @ {wheel.as_uri()}']\n# ///\n"
        '"""Probe the isolated environment."""\n'
        f"import argparse, json\nimport {PKG}\n"
        "p = argparse.ArgumentParser()\n"
        "p.add_argument('--name', required=True)\n"
        f"print(json.dumps({{'name': p.parse_args().name, 'env': {PKG}.VALUE}}))\n",
        encoding="utf-8",
    )
    said = await say(
        tmp_path,
        "!probe --name=-x",
        catalog=catalog,
        runner=RunnerSettings(env_cache=str(tmp_path / "envs")),
    )
    assert printed(said) == {"name": "-x", "env": "hello from the isolated env"}
    assert any((tmp_path / "envs").iterdir())


async def test_argparse_fromfile_prefix_cannot_be_used_to_read_files(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "args.py").write_text(
        '"""Reads @files of arguments."""\nimport argparse, json\n'
        "p = argparse.ArgumentParser(fromfile_prefix_chars='@')\np.add_argument('target')\n"
        "print(json.dumps(vars(p.parse_args())))\n",
        encoding="utf-8",
    )
    secret = tmp_path / "secret.txt"
    secret.write_text("--not-for-chat\n", encoding="utf-8")
    said = await say(tmp_path, f"!args @{secret}", catalog=catalog)
    assert (said.outcome.outcome, said.outcome.job_id) == ("refused", None)
    assert "not-for-chat" not in said.text
    assert printed(await say(tmp_path, "!args a@b", catalog=catalog)) == {"target": "a@b"}
