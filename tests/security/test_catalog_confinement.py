"""The catalog cannot reach outside itself (issue 9, item 6).

A catalog is what its repository holds and its reviewers read. A symlink whose target lies
outside the catalog folder (a file, a folder, a sidecar, folder defaults) is refused with a
catalog error and nothing it points at runs; a script swapped for such a symlink after the
catalog was read is refused at run time. Paths given by names (`choices_from`, a sidecar's
`name`) cannot be paths at all, and a job's attachments stay inside its working folder.
Symlinks that stay inside the catalog keep working.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsroom.model.blocks import File
from opsroom.model.jobs import JobState
from opsroom.testing import Bot
from support import Opsroom


def _script(path: Path, body: str, summary: str = "A command.") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/usr/bin/env bash\n# @describe {summary}\n{body}\n")
    return path


def _output(opsroom: Opsroom, catalog: Path, text: str) -> str:
    """What the command printed, after it succeeded (`run --json`)."""
    summary = opsroom("run", "--json", "--catalog", str(catalog), text).summary
    assert summary["state"] == "succeeded", summary
    output: str = summary["output"]
    return output


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the catalog, with a script that leaves a mark when it runs."""
    folder = tmp_path / "outside"
    _script(folder / "evil.sh", f"touch {folder / 'RAN'}\necho pwned")
    return folder


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    """A catalog folder with one ordinary command."""
    root = tmp_path / "catalog"
    _script(root / "hello.sh", "echo hello")
    return root


def test_a_file_symlink_out_of_the_catalog_is_refused_and_never_runs(
    opsroom: Opsroom, catalog: Path, outside: Path
) -> None:
    (catalog / "evil.sh").symlink_to(outside / "evil.sh")
    check = opsroom("catalog", "check", str(catalog))
    assert check.code == 1
    assert "evil.sh:1: symlink to a file outside the catalog folder: refused" in check.stdout
    run = opsroom("run", "--catalog", str(catalog), "!evil")
    assert run.code != 0
    assert "unknown command: evil" in run.stderr
    assert not (outside / "RAN").exists()
    assert _output(opsroom, catalog, "!hello") == "hello"


def test_a_folder_symlink_out_of_the_catalog_is_refused(
    opsroom: Opsroom, catalog: Path, outside: Path
) -> None:
    (catalog / "tools").symlink_to(outside, target_is_directory=True)
    check = opsroom("catalog", "check", str(catalog))
    assert check.code == 1
    assert "tools:1: symlink to a folder outside the catalog folder: refused" in check.stdout
    run = opsroom("run", "--catalog", str(catalog), "!tools evil")
    assert "unknown command" in run.stderr
    assert not (outside / "RAN").exists()


def test_a_sidecar_symlink_out_of_the_catalog_refuses_its_script(
    opsroom: Opsroom, catalog: Path, outside: Path
) -> None:
    # The sidecar may carry an approval: its script never runs without it.
    (outside / "wipe.toml").write_text('approval = "storage-leads"\n')
    _script(catalog / "wipe.sh", "echo wiped")
    (catalog / "wipe.sh.opsroom.toml").symlink_to(outside / "wipe.toml")
    check = opsroom("catalog", "check", str(catalog))
    assert check.code == 1
    assert (
        "wipe.sh.opsroom.toml:1: symlink to a file outside the catalog folder: refused"
        in check.stdout
    )
    run = opsroom("run", "--catalog", str(catalog), "!wipe")
    assert "unknown command: wipe" in run.stderr
    assert "wiped" not in run.stdout


def test_folder_defaults_symlinked_out_refuse_every_script_beneath(
    opsroom: Opsroom, catalog: Path, outside: Path
) -> None:
    (outside / "defaults.toml").write_text('approval = "storage-leads"\n')
    _script(catalog / "storage" / "wipe.sh", "echo wiped")
    (catalog / "storage" / "defaults.opsroom.toml").symlink_to(outside / "defaults.toml")
    check = opsroom("catalog", "check", str(catalog))
    assert check.code == 1
    lines = check.stdout.splitlines()
    assert (
        "storage/defaults.opsroom.toml:1: symlink to a file outside the catalog folder: refused"
    ) in lines
    assert (
        "storage/wipe.sh:1: not loaded: its folder defaults storage/defaults.opsroom.toml "
        "were refused"
    ) in lines
    assert "wiped" not in opsroom("run", "--catalog", str(catalog), "!storage wipe").stdout


def test_symlinks_inside_the_catalog_still_work(opsroom: Opsroom, tmp_path: Path) -> None:
    real = tmp_path / "releases" / "v2"
    _script(real / "net" / "ping.sh", 'echo "pong"')
    (real / "pong.sh").symlink_to(real / "net" / "ping.sh")  # absolute, but inside
    (real / "net" / "again.sh").symlink_to("ping.sh")  # relative
    current = tmp_path / "current"
    current.symlink_to(real, target_is_directory=True)  # the catalog root itself is a link
    check = opsroom("catalog", "check", str(current))
    assert check.code == 0, check.stdout + check.stderr
    for command in ("!pong", "!net again", "!net ping"):
        assert _output(opsroom, current, command) == "pong"


async def test_a_script_swapped_for_a_symlink_out_after_loading_is_refused(
    tmp_path: Path, catalog: Path, outside: Path
) -> None:
    async with Bot.open(catalog_dir=str(catalog), store_url=f"sqlite:///{tmp_path}/t.db") as bot:
        (catalog / "hello.sh").unlink()
        (catalog / "hello.sh").symlink_to(outside / "evil.sh")
        said = await bot.say("!hello")
        jobs = await bot.app.store.find_jobs()
    assert said.outcome.outcome == "refused"
    assert "hello: its script now leads outside the catalog; not run" in said.text
    assert jobs == [], "refused before a job exists"
    assert not (outside / "RAN").exists()


@pytest.mark.parametrize(
    ("sidecar", "says"),
    [
        ('choices_from = "../../bin/sh"', "not a valid command name: '../../bin/sh'"),
        ('choices_from = "/etc/passwd"', "not a valid command name: '/etc/passwd'"),
        ('choices_from = { site = "../lister" }', "not a valid command name: '../lister'"),
        ('name = "../escape"', "not a valid command name: '../escape'"),
        ('[params.site]\nchoices_from = "/usr/bin/id"', "not a valid command name: '/usr/bin/id'"),
    ],
)
def test_names_that_are_paths_are_catalog_errors(
    opsroom: Opsroom, catalog: Path, sidecar: str, says: str
) -> None:
    _script(catalog / "pick.sh", "# @arg site! The site\necho $OPSROOM_ARG_SITE")
    (catalog / "pick.sh.opsroom.toml").write_text(sidecar + "\n")
    check = opsroom("catalog", "check", str(catalog))
    assert check.code == 1
    assert says in check.stdout
    assert "unknown command: pick" in opsroom("run", "--catalog", str(catalog), "!pick x").stderr


@pytest.mark.parametrize(
    "path", ["../../../../../../etc/passwd", "/etc/passwd", "sub/../../escape.txt", "link.txt"]
)
async def test_attachments_never_leave_the_working_folder(
    tmp_path: Path, catalog: Path, path: str
) -> None:
    event = json.dumps({"type": "attachment", "path": path})
    _script(
        catalog / "attach.sh",
        f"mkdir sub && ln -s /etc/passwd link.txt\necho '{event}' >&\"$OPSROOM_EVENTS_FD\"",
    )
    async with Bot.open(catalog_dir=str(catalog), store_url=f"sqlite:///{tmp_path}/t.db") as bot:
        said = await bot.say("!attach")
    assert said.outcome.state is JobState.SUCCEEDED
    assert not [b for r in said.replies for b in r.blocks if isinstance(b, File)]
    assert f"did not attach '{path}': it is outside the job's working folder" in said.text
