"""The bundled example catalog: it passes the strict check, and every documented example runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from opsroom.catalog.scan import bundled_catalog_path, load_catalog
from opsroom.config import Settings
from opsroom.model.commands import Language
from opsroom.model.jobs import JobState
from opsroom.testing import Bot
from opsroom.web.accounts import demo_settings
from support import Opsroom

EXAMPLES = bundled_catalog_path()
CATALOG = load_catalog(EXAMPLES)
CATALOG_BY_NAME = {s.name: s for s in CATALOG.commands}
REQUIRED_STORY = {
    "store status",
    "network status",
    "jenkins build",
    "git new-repo",
    "store open",
    "storage migrate",
    "chef promote",
    "java package",
    "ad unlock-account",
    "vmware new-snapshot",
}


def _documented_examples() -> list[tuple[str, Language, str]]:
    found = []
    for spec in CATALOG.commands:
        for example in spec.examples:
            line = example.strip().splitlines()[0].strip()
            if not line.startswith("!"):
                continue
            # The demo migration copies for 3 s per volume by default; keep the test quick.
            if spec.name == "storage migrate" and "--seconds-per-volume" not in line:
                line += " --seconds-per-volume 0.05"
            found.append((spec.name, spec.language, line))
    return found


EXAMPLE_RUNS = _documented_examples()


def test_examples_pass_the_strict_check(opsroom: Opsroom) -> None:
    r = opsroom("catalog", "check", "--strict", str(EXAMPLES))
    assert r.code == 0, r.stdout + r.stderr
    assert not CATALOG.issues


def test_examples_tell_the_whole_story() -> None:
    names = {s.name for s in CATALOG.commands}
    assert names >= REQUIRED_STORY
    languages = [s.language for s in CATALOG.commands]
    assert languages.count(Language.POWERSHELL) >= 2
    assert languages.count(Language.PYTHON) >= 3
    assert languages.count(Language.SHELL) >= 3
    assert all(s.summary and s.examples for s in CATALOG.commands)
    assert any(p.choices for s in CATALOG.commands for p in s.params)


@pytest.mark.parametrize(
    ("name", "language", "text"), EXAMPLE_RUNS, ids=[t for *_, t in EXAMPLE_RUNS]
)
async def test_documented_example_runs(
    tmp_path: Path, name: str, language: Language, text: str
) -> None:
    # The roles `opsroom serve` has on embedded defaults: a second person may approve.
    settings = demo_settings(Settings())
    store = f"sqlite:///{tmp_path}/t.db"
    async with Bot.open(catalog_dir=str(EXAMPLES), store_url=store, settings=settings) as bot:
        said = await bot.say(text)
        if CATALOG_BY_NAME[name].approval is not None:
            assert said.outcome.state is JobState.AWAITING_APPROVAL, said.text
            said = await bot.say(f"!approve {said.outcome.job_id}", as_="local:second")
    if language is Language.POWERSHELL and shutil.which("pwsh") is None:
        # No runtime here: refused before anything runs, saying why.
        assert said.outcome.outcome == "refused"
        assert "no PowerShell runtime (pwsh) on this host" in said.text
    else:
        assert said.outcome.state is JobState.SUCCEEDED, said.text
        assert f"job {said.outcome.job_id} {name}: succeeded" in said.text


async def test_storage_migration_reports_progress(tmp_path: Path) -> None:
    async with Bot.open(catalog_dir=str(EXAMPLES), store_url=f"sqlite:///{tmp_path}/t.db") as bot:
        said = await bot.say("!migrate netapp-legacy --volumes 3 --seconds-per-volume 0.4")
    assert said.outcome.state is JobState.SUCCEEDED, said.text
    progress = [r for r in said.replies if r.kind == "progress"]
    assert len(progress) >= 2, "a live progress bar while it runs"
    assert "100%" in said.text


async def test_store_status_is_a_table(tmp_path: Path) -> None:
    async with Bot.open(catalog_dir=str(EXAMPLES), store_url=f"sqlite:///{tmp_path}/t.db") as bot:
        said = await bot.say("!store status 42")
    assert said.outcome.state is JobState.SUCCEEDED
    assert "payment terminal" in said.text
    assert any("Table" in type(b).__name__ for r in said.replies for b in r.blocks)


async def test_chef_promote_to_the_same_environment_fails_clearly(tmp_path: Path) -> None:
    async with Bot.open(catalog_dir=str(EXAMPLES), store_url=f"sqlite:///{tmp_path}/t.db") as bot:
        said = await bot.say("!chef promote pos-client --source-env test --target-env test")
    assert said.outcome.state is JobState.FAILED
    assert said.outcome.exit_code == 1
