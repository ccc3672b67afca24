"""A job's working folder: its own, given as TMPDIR and its cwd, and gone once the job has
ended — whether it left it empty or full."""

from __future__ import annotations

from pathlib import Path

from opsroom.testing import Bot

LEAVES_NOTHING = """#!/usr/bin/env bash
# @describe Say where it ran.
echo "folder=$TMPDIR cwd=$PWD"
"""

LEAVES_A_MESS = """#!/usr/bin/env bash
# @describe Fill its folder, then say where it is.
mkdir -p "$TMPDIR/deep/er" && echo data > "$TMPDIR/deep/er/file" && ln -s / "$TMPDIR/root"
echo "folder=$TMPDIR"
"""


def _folder(said: str) -> Path:
    return Path(said.split("folder=", 1)[1].split()[0])


async def test_a_jobs_folder_is_removed_after_it_whatever_it_left(tmp_path: Path) -> None:
    root = tmp_path / "catalog"
    (root / "work").mkdir(parents=True)
    (root / "work" / "tidy.sh").write_text(LEAVES_NOTHING)
    (root / "work" / "messy.sh").write_text(LEAVES_A_MESS)
    async with Bot.open(catalog_dir=str(root), store_url=f"sqlite:///{tmp_path}/s.db") as bot:
        tidy = await bot.say("!work tidy")
        messy = await bot.say("!work messy")
    assert tidy.succeeded, tidy.text
    assert messy.succeeded, messy.text
    folder = _folder(tidy.text)
    assert folder.name.startswith("opsroom-job"), tidy.text
    assert f"cwd={folder}" in tidy.text
    assert not folder.exists()
    # Subfolders, files and a link out: all gone, the link's target untouched.
    assert not _folder(messy.text).exists()
    assert Path("/").is_dir()


LEAVES_THOUSANDS = """#!/usr/bin/env bash
# @describe Leave 3,000 files in 30 folders, one of them read-only.
for d in $(seq 30); do mkdir "d$d"; (cd "d$d" && touch $(seq -f f%g 100)); done
chmod 500 d1
echo "folder=$PWD"
"""


async def test_thousands_of_files_left_behind_are_gone_when_the_end_is_told(
    tmp_path: Path,
) -> None:
    # A folder this full is removed off the event loop (a walk of it would stall every
    # room); the job's end is still told only once it is gone.
    root = tmp_path / "catalog"
    (root / "work").mkdir(parents=True)
    (root / "work" / "litter.sh").write_text(LEAVES_THOUSANDS)
    async with Bot.open(catalog_dir=str(root), store_url=f"sqlite:///{tmp_path}/s.db") as bot:
        litter = await bot.say("!work litter")
        gone = not _folder(litter.text).exists()
    assert litter.succeeded, litter.text
    assert _folder(litter.text).name.startswith("opsroom-job"), litter.text
    assert gone, "the folder and the 3,000 files in it"
