"""The catalog deployed from git (SPEC §10), in process: real repositories, real pushes.

The engine is the real one (`opsroom.testing.Bot` over `App.open`): it clones a bare
repository a test pushes to, and `!reload` fetches, checks and swaps exactly as a poll or a
webhook does (those are exercised against `opsroom serve` in test_git_hooks.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gitrepo import HELLO, Remote, make_remote
from opsroom.config import Settings, load_settings
from opsroom.model.blocks import Reply
from opsroom.model.jobs import JobState
from opsroom.render.text import render_reply
from opsroom.testing import Bot
from support import OPSROOM


def write_config(folder: Path, body: str) -> Settings:
    """`opsroom.toml` in `folder`, read as `opsroom serve` reads it."""
    path = folder / "opsroom.toml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return load_settings(str(path))


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    """A scripts repository with `hello` and `tools/x` on main, pushed."""
    r = make_remote(tmp_path)
    r.write("hello.py", HELLO)
    r.write("tools/x.sh", "#!/bin/sh\n# @describe Print x.\necho x\n")
    r.commit("first scripts")
    r.push()
    return r


@contextlib.asynccontextmanager
async def git_bot(tmp_path: Path, remote: Remote, extra: str = "") -> AsyncIterator[Bot]:
    """An engine serving `remote`'s main branch from a working folder of its own."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    settings = write_config(
        work,
        f"""
        [catalog]
        git = "{remote.url}"
        poll_interval = "0"
        announce = "web:ops"
        {extra}
        [runner]
        env_cache = "{tmp_path / "envs"}"
        """,
    )
    async with Bot.open(settings=settings, store_url=f"sqlite:///{tmp_path}/t.db") as bot:
        yield bot


class Announced:
    """What the deployer posts to the announce room."""

    def __init__(self) -> None:
        self.replies: list[tuple[str, Reply]] = []

    async def __call__(self, room: str, reply: Reply) -> None:
        self.replies.append((room, reply))

    @property
    def texts(self) -> list[str]:
        """Each announcement as a terminal shows it."""
        return [render_reply(r) for _, r in self.replies]


async def test_a_pushed_commit_goes_live_on_reload_and_is_announced(
    tmp_path: Path, remote: Remote
) -> None:
    async with git_bot(tmp_path, remote) as bot:
        first = remote.head()
        said = await bot.say("!version")
        assert f"— 2 commands from {remote.url} (main) at {first[:12]}" in said.text
        said = await bot.say("!hello --name bob")
        assert said.outcome.state is JobState.SUCCEEDED
        job = await bot.app.store.get_job(said.outcome.job_id or 0)
        assert job is not None
        assert job.catalog_commit == first, "a job records the deployed commit"
        announced = Announced()
        await bot.app.deployer.attach(announced)

        remote.write("bye.py", '"""Say goodbye."""\n\n\ndef main() -> str:\n    return "bye"\n')
        remote.write("hello.py", HELLO.replace('name: str = "world"', 'name: str = "you"'))
        remote.remove("tools/x.sh")
        second = remote.commit("add bye, hello says you", author="Bea Builder")
        remote.push()
        assert (await bot.say("!bye")).outcome.outcome == "refused", "not live before a fetch"

        reloaded = await bot.say("!reload")
        text = reloaded.text
        assert second[:8] in text
        assert "add bye, hello says you" in text
        assert "Bea Builder" in text
        assert "added: bye" in text
        assert "changed: hello (parameters)" in text
        assert "removed: tools x" in text
        # The same summary went to the announce room.
        assert [room for room, _ in announced.replies] == ["web:ops"]
        assert "added: bye" in announced.texts[0]

        bye = await bot.say("!bye")
        assert bye.outcome.state is JobState.SUCCEEDED
        assert "bye" in bye.text
        job = await bot.app.store.get_job(bye.outcome.job_id or 0)
        assert job is not None
        assert job.catalog_commit == second
        assert "hello you" in (await bot.say("!hello")).text
        version = await bot.say("!version")
        assert remote.url in version.text
        assert second[:12] in version.text
        again = await bot.say("!reload")
        assert "up to date" in again.text
        entries = await bot.app.store.audit(limit=50)
        actions = [e.event.action for e in entries]
        assert "catalog.deploy" in actions
        assert "catalog.reload" in actions
        deploy = next(e.event for e in entries if e.event.action == "catalog.deploy")
        assert deploy.catalog_commit == second
        assert deploy.params is not None
        assert deploy.params["added"] == ["bye"]


BROKEN = {
    "syntax error": ("broken.py", '"""Broken."""\n\ndef main(:\n    pass\n', "broken.py:"),
    "duplicate name": (
        "hello.sh",
        "#!/bin/sh\n# @describe Another hello.\necho hi\n",
        "duplicate command name 'hello'",
    ),
    "bad directive": (
        "slow.py",
        '"""Slow."""\n# opsroom: timeout = "forever"\n\n\ndef main() -> None:\n    pass\n',
        "slow.py:2:",
    ),
    "unresolvable PEP 723 dependency": (
        "deps.py",
        "# /// script\n# dependencies = ['opsroom-no-such-package-for-tests==9.9.9']\n# ///\n"
        '"""Needs a package that is nowhere."""\n\n\ndef main() -> None:\n    pass\n',
        "deps.py:1: its PEP 723 environment cannot be built",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
async def test_a_broken_commit_never_reaches_chat(
    tmp_path: Path, remote: Remote, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_OFFLINE", "1")  # the dependency is unresolvable, and offline
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    relpath, text, error = BROKEN[case]
    async with git_bot(tmp_path, remote) as bot:
        announced = Announced()
        await bot.app.deployer.attach(announced)
        good = remote.head()
        remote.write(relpath, text)
        remote.write("new.sh", "#!/bin/sh\n# @describe New in the broken commit.\necho new\n")
        bad = remote.commit(f"a commit with a {case}")
        remote.push()
        reloaded = await bot.say("!reload")
        assert reloaded.outcome.outcome == "succeeded"  # the reload itself was answered
        assert f"{bad[:8]}" in reloaded.text
        assert "was not deployed" in reloaded.text
        assert error in reloaded.text, reloaded.text
        assert f"still serving {good[:8]}" in reloaded.text
        # The errors went to the announce room, in path:line: message form.
        assert len(announced.replies) == 1
        assert error in announced.texts[0]
        # Nothing of the broken commit is live; the previous commit keeps serving.
        assert (await bot.say("!new")).outcome.outcome == "refused"
        said = await bot.say("!hello")
        assert said.outcome.state is JobState.SUCCEEDED
        job = await bot.app.store.get_job(said.outcome.job_id or 0)
        assert job is not None
        assert job.catalog_commit == good
        status = bot.app.deployer.status()
        assert status["rejected"] == {"commit": bad, "errors": 1}
        entries = await bot.app.store.audit(limit=20)
        reject = next(e.event for e in entries if e.event.action == "catalog.reject")
        assert reject.catalog_commit == bad


async def test_a_fix_after_a_rejected_commit_goes_live(tmp_path: Path, remote: Remote) -> None:
    async with git_bot(tmp_path, remote) as bot:
        remote.write("broken.py", '"""Broken."""\n\ndef main(:\n')
        remote.commit("broken")
        remote.push()
        assert "was not deployed" in (await bot.say("!reload")).text
        remote.write("broken.py", '"""Fixed."""\n\n\ndef main() -> str:\n    return "fixed"\n')
        fixed = remote.commit("fix it")
        remote.push()
        said = await bot.say("!reload")
        assert "added: broken" in said.text
        assert bot.app.deployer.status().get("rejected") is None
        assert bot.app.dispatcher.ctx.catalog_commit == fixed


async def test_a_running_job_finishes_on_the_files_it_started_with(
    tmp_path: Path, remote: Remote
) -> None:
    gate = tmp_path / "gate"
    remote.write(
        "slow.sh",
        "#!/bin/sh\n# @describe Wait for the gate, then say which version this is.\n"
        f"while [ ! -e '{gate}' ]; do sleep 0.05; done\n"
        'cat "$(dirname "$0")/version.txt"\n',
    )
    remote.write("version.txt", "version one\n")
    remote.commit("slow v1")
    remote.push()
    async with git_bot(tmp_path, remote) as bot:
        v1_root = bot.app.dispatcher.ctx.catalog_root
        running = asyncio.create_task(bot.say("!slow"))
        while not await bot.app.store.find_jobs(states=[JobState.RUNNING], limit=5):
            await asyncio.sleep(0.05)
        # Two more commits go live while it runs.
        for n in ("two", "three"):
            remote.write("version.txt", f"version {n}\n")
            remote.commit(f"slow v{n}")
            remote.push()
            assert "catalog deployed" in (await bot.say("!reload")).text
        assert bot.app.dispatcher.ctx.catalog_root != v1_root
        assert (v1_root / "version.txt").read_text() == "version one\n", "its tree is kept"
        gate.touch()
        said = await running
        assert said.outcome.state is JobState.SUCCEEDED
        assert "version one" in said.text
        assert "version three" in (await bot.say("!slow")).text
        # Its work tree was released when it ended: the next commit may use it again.
        remote.write("version.txt", "version four\n")
        remote.commit("slow v4")
        remote.push()
        await bot.say("!reload")
        await bot.app.deployer.idle()
        trees = {p for p in v1_root.parent.iterdir() if p.is_dir()}
        assert len(trees) <= 2, "the live tree and one spare; no tree leaks"


async def test_only_the_files_a_commit_touched_are_parsed_again(
    tmp_path: Path, remote: Remote
) -> None:
    for i in range(120):
        remote.write(
            f"team{i % 6}/task_{i}.py",
            f'"""Task {i}."""\n\n\ndef main(count: int = {i}) -> int:\n    return count\n',
        )
    remote.commit("many scripts")
    remote.push()
    async with git_bot(tmp_path, remote) as bot:
        git = bot.app.deployer.git
        assert git is not None
        assert len(git.cache.parsed) == 122, "the first load parses everything"
        remote.write(
            "team3/task_3.py", '"""Task three, changed."""\n\n\ndef main() -> int:\n    return 3\n'
        )
        remote.commit("change one task")
        remote.push()
        said = await bot.say("!reload")
        assert "changed: team3 task-3 (parameters, help)" in said.text
        assert git.cache.parsed == ["team3/task_3.py"]
        assert len(bot.app.catalog.commands) == 122


async def test_reload_follows_the_policy_and_is_refused_not_unknown(
    tmp_path: Path, remote: Remote
) -> None:
    extra = """
        [[roles]]
        name = "admins"
        members = ["slack:UADMIN"]
        allow = ["*"]
        admin = true

        [[roles]]
        name = "noc"
        members = ["slack:UNOC"]
        allow = ["hello"]
    """
    async with git_bot(tmp_path, remote, extra) as bot:
        refused = await bot.say("!reload", as_="slack:UNOC", room="slack:C1")
        assert refused.outcome.outcome == "refused"
        assert "no rule allows reload" in refused.text
        assert "unknown" not in refused.text.lower()
        helped = await bot.say("!help", as_="slack:UNOC", room="slack:C1")
        assert "reload" not in helped.text
        allowed = await bot.say("!reload", as_="slack:UADMIN", room="slack:C1")
        assert "up to date" in allowed.text
        assert "reload" in (await bot.say("!help", as_="slack:UADMIN", room="slack:C1")).text


async def test_an_unreachable_remote_keeps_the_last_good_commit_serving(
    tmp_path: Path, remote: Remote
) -> None:
    async with git_bot(tmp_path, remote) as bot:
        good = remote.head()
        remote.bare.rename(tmp_path / "moved.git")
        said = await bot.say("!reload")
        assert "cannot fetch" in said.text
        assert f"still serving {good[:8]}" in said.text
        status = bot.app.deployer.status()
        assert status["commit"] == good
        assert status["fetch_error"]
        assert (await bot.say("!hello")).outcome.state is JobState.SUCCEEDED
        # Reachable again: the next fetch clears the failure.
        (tmp_path / "moved.git").rename(remote.bare)
        await bot.say("!reload")
        assert bot.app.deployer.status()["fetch_error"] is None


async def test_a_restart_with_the_remote_gone_serves_what_was_fetched(
    tmp_path: Path, remote: Remote
) -> None:
    async with git_bot(tmp_path, remote):
        pass
    good = remote.head()
    remote.bare.rename(tmp_path / "moved.git")
    async with git_bot(tmp_path, remote) as bot:
        assert bot.app.dispatcher.ctx.catalog_commit == good
        assert bot.app.deployer.status()["fetch_error"]
        assert (await bot.say("!hello")).outcome.state is JobState.SUCCEEDED


async def test_a_restart_after_a_broken_push_serves_the_last_good_commit(
    tmp_path: Path, remote: Remote
) -> None:
    async with git_bot(tmp_path, remote):
        pass
    good = remote.head()
    remote.write("broken.py", '"""Broken."""\n\ndef main(:\n')
    remote.commit("broken while opsroom was down")
    remote.push()
    async with git_bot(tmp_path, remote) as bot:
        announced = Announced()
        await bot.app.deployer.attach(announced)
        assert bot.app.dispatcher.ctx.catalog_commit == good
        assert any("broken.py:" in t and "was not deployed" in t for t in announced.texts)


async def test_a_folder_catalog_records_no_commit_unless_it_is_a_git_work_tree(
    tmp_path: Path, remote: Remote
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "hello.py").write_text(HELLO, encoding="utf-8")
    store = f"sqlite:///{tmp_path}/t.db"
    jobs: dict[str, Any] = {}
    for name, folder in (
        ("plain", plain),
        ("inside", remote.clone / "tools"),
        ("top", remote.clone),
    ):
        async with Bot.open(catalog_dir=str(folder), store_url=store) as bot:
            command = "!hello" if name != "inside" else "!x"
            said = await bot.say(command)
            assert said.outcome.state is JobState.SUCCEEDED, said.text
            jobs[name] = await bot.app.store.get_job(said.outcome.job_id or 0)
    assert jobs["plain"].catalog_commit is None
    assert jobs["inside"].catalog_commit is None, "a subfolder's repository says nothing"
    assert jobs["top"].catalog_commit == remote.head()


async def test_the_branch_key_picks_the_branch_served(tmp_path: Path, remote: Remote) -> None:
    remote.write("release_only.py", '"""Only on release."""\n\n\ndef main() -> None:\n    pass\n')
    remote.commit("release work")
    remote.push("release")
    async with git_bot(tmp_path, remote, 'branch = "release"') as bot:
        names = {s.name for s in bot.app.catalog.commands}
        assert "release-only" in names
    (tmp_path / "main").mkdir()
    async with git_bot(tmp_path / "main", remote) as bot:
        assert "release-only" not in {s.name for s in bot.app.catalog.commands}


async def test_the_announcement_links_the_commit_when_web_url_is_set(
    tmp_path: Path, remote: Remote
) -> None:
    web = "https://gitlab.example.org/ops/scripts"
    async with git_bot(tmp_path, remote, f'web_url = "{web}"') as bot:
        remote.write("bye.py", '"""Bye."""\n\n\ndef main() -> None:\n    pass\n')
        sha = remote.commit("bye")
        remote.push()
        said = await bot.say("!reload")
        assert f"{web}/commit/{sha}" in said.text


async def test_a_folder_catalog_reloads_incrementally_and_tells_the_console(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "catalog"
    folder.mkdir()
    (folder / "hello.py").write_text(HELLO, encoding="utf-8")
    (folder / "other.sh").write_text("#!/bin/sh\n# @describe Other.\necho o\n", encoding="utf-8")
    console: list[str] = []
    async with Bot.open(catalog_dir=str(folder), store_url=f"sqlite:///{tmp_path}/t.db") as bot:
        await bot.app.deployer.attach(None, console=console.append)
        (folder / "hello.py").write_text(HELLO.replace("hello {name}", "hi {name}"), "utf-8")
        said = await bot.say("!reload")
        assert "changed: hello (script)" in said.text
        folder_catalog = bot.app.deployer.folder
        assert folder_catalog is not None
        assert folder_catalog.cache.parsed == ["hello.py"]
        assert any("changed: hello (script)" in line for line in console)
        assert "hi bob" in (await bot.say("!hello --name bob")).text
        (folder / "broken.py").write_text('"""Broken."""\n\ndef main(:\n', encoding="utf-8")
        rejected = await bot.say("!reload")
        assert "was not loaded" in rejected.text
        assert any("broken.py:" in line for line in console)


async def test_a_saved_file_is_picked_up_by_the_watcher(tmp_path: Path) -> None:
    folder = tmp_path / "catalog"
    folder.mkdir()
    (folder / "hello.py").write_text(HELLO, encoding="utf-8")
    async with Bot.open(catalog_dir=str(folder), store_url=f"sqlite:///{tmp_path}/t.db") as bot:
        deployer = bot.app.deployer
        assert deployer.watches
        watching = asyncio.create_task(deployer.watch_forever())
        try:
            async with asyncio.timeout(30):
                while bot.app.dispatcher.ctx.registry.get("bye") is None:
                    # Saved again each round: the watcher may not have started at the first.
                    (folder / "bye.py").write_text(
                        '"""Bye."""\n\n\ndef main() -> str:\n    return "bye"\n', "utf-8"
                    )
                    for _ in range(20):
                        await asyncio.sleep(0.05)
                        if bot.app.dispatcher.ctx.registry.get("bye") is not None:
                            break
            assert (await bot.say("!bye")).outcome.state is JobState.SUCCEEDED
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching


def test_catalog_commands_without_a_folder_never_show_something_else(
    tmp_path: Path, remote: Remote
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    write_config(work, f'[catalog]\ngit = "{remote.url}"\n')
    listed = subprocess.run(
        [OPSROOM, "catalog", "list"], cwd=work, capture_output=True, text=True, check=False
    )
    assert listed.returncode == 2
    assert "deployed from git" in listed.stderr
    assert listed.stdout == "", "not the bundled examples instead"
    mine = subprocess.run(
        [OPSROOM, "catalog", "list", str(remote.clone)],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    assert mine.returncode == 0
    assert "hello" in mine.stdout


async def test_a_first_commit_with_errors_serves_its_good_scripts_and_says_so(
    tmp_path: Path, remote: Remote
) -> None:
    remote.write("broken.py", '"""Broken."""\n\ndef main(:\n')
    remote.commit("broken from the start")
    remote.push()
    async with git_bot(tmp_path, remote) as bot:
        announced = Announced()
        await bot.app.deployer.attach(announced)
        assert (await bot.say("!hello")).outcome.state is JobState.SUCCEEDED
        assert (await bot.say("!broken")).outcome.outcome == "refused"
        assert len(announced.texts) == 1
        assert "served without its broken scripts" in announced.texts[0]
        assert "broken.py:3:" in announced.texts[0]
        # A later commit that leaves that script broken but adds another goes live.
        remote.write("bye.py", '"""Bye."""\n\n\ndef main() -> None:\n    pass\n')
        remote.commit("bye")
        remote.push()
        assert "added: bye" in (await bot.say("!reload")).text


async def test_a_job_approved_after_a_deploy_runs_and_records_the_new_commit(
    tmp_path: Path, remote: Remote
) -> None:
    remote.write(
        "wipe.sh",
        '#!/bin/sh\n# @describe Wipe.\n# opsroom: approval = "leads"\necho "wipe v1"\n',
    )
    first = remote.commit("wipe v1")
    remote.push()
    extra = """
        [[roles]]
        name = "ops"
        members = ["local:*"]
        allow = ["*"]
        admin = true

        [[roles]]
        name = "leads"
        members = ["local:lead"]
        allow = ["*"]
    """
    async with git_bot(tmp_path, remote, extra) as bot:
        asked = await bot.say("!wipe", as_="local:alice")
        job_id = asked.outcome.job_id or 0
        waiting = await bot.app.store.get_job(job_id)
        assert waiting is not None
        assert waiting.state is JobState.AWAITING_APPROVAL
        assert waiting.catalog_commit == first
        remote.write("wipe.sh", remote.clone.joinpath("wipe.sh").read_text().replace("v1", "v2"))
        second = remote.commit("wipe v2")
        remote.push()
        await bot.say("!reload", as_="local:alice")
        approved = await bot.say(f"!approve {job_id}", as_="local:lead")
        assert approved.outcome.state is JobState.SUCCEEDED
        assert "wipe v2" in approved.text
        ran = await bot.app.store.get_job(job_id)
        assert ran is not None
        assert ran.catalog_commit == second, "the job records the commit it ran"
