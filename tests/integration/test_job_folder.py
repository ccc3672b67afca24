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
