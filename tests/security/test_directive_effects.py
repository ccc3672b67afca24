"""Directives that look like controls are controls (issue 9, item 7; SPEC §3.5).

One test per key of the catalog's directive table, each proving end to end — a real catalog,
a real store, real child processes, through `opsroom.testing.Bot` — that the directive does
what a reader of the script expects. `test_every_directive_has_an_effect_test` fails when a
key is added to the table without such a test, so no directive is read and then ignored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from opsroom.catalog.directives import DIRECTIVE_KEYS
from opsroom.config import RoleSettings, Settings
from opsroom.model.blocks import Choices, Reply
from opsroom.model.jobs import Job, JobState
from opsroom.model.messages import Inbound
from opsroom.testing import Bot, Said

ROLES = (
    RoleSettings(name="everyone", members=("local:*", "slack:*"), allow=("*",)),
    RoleSettings(name="storage-leads", members=("local:lead*",), allow=("*",)),
)


def _write(root: Path, scripts: dict[str, str]) -> None:
    for rel, text in scripts.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _sh(directives: str, body: str, summary: str = "A command.", args: str = "") -> str:
    head = "".join(f"# opsroom: {line.strip()}\n" for line in directives.splitlines() if line)
    return f"#!/usr/bin/env bash\n{head}# @describe {summary}\n{args}{body}\n"


@asynccontextmanager
async def _bot(
    tmp_path: Path, scripts: dict[str, str], settings: Settings | None = None
) -> AsyncIterator[Bot]:
    root = tmp_path / "catalog"
    _write(root, scripts)
    async with Bot.open(
        catalog_dir=str(root),
        store_url=f"sqlite:///{tmp_path}/t.db",
        settings=settings or Settings(roles=ROLES),
    ) as bot:
        issues = bot.app.catalog.issues
        assert not issues, issues
        yield bot


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20) -> None:
    """Poll a condition (never a fixed sleep as a barrier)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _jobs(bot: Bot) -> list[Job]:
    return list(await bot.app.store.find_jobs())


# --------------------------------------------------------------------------- timeout


async def test_timeout_ends_a_job_that_runs_too_long(tmp_path: Path) -> None:
    scripts = {"hang.sh": _sh('timeout = "1s"', "echo started\nsleep 600")}
    async with _bot(tmp_path, scripts) as bot:
        said = await bot.say("!hang")
    assert said.outcome.state is JobState.TIMED_OUT
    assert said.outcome.output == "started"


# --------------------------------------------------------------------------- approval


WIPE = _sh(
    'approval = "storage-leads"', 'echo "wiped $OPSROOM_ARG_VOLUME"', args="# @arg volume!\n"
)


async def test_approval_holds_the_job_until_a_member_of_the_role_approves(tmp_path: Path) -> None:
    async with _bot(tmp_path, {"wipe.sh": WIPE}) as bot:
        asked = await bot.say("!wipe vol1", as_="local:alice")
        assert asked.outcome.state is JobState.AWAITING_APPROVAL
        job_id = asked.outcome.job_id
        assert "needs approval by a member of role storage-leads" in asked.text
        own = await bot.say(f"!approve {job_id}", as_="local:alice")
        assert own.outcome.outcome == "refused", "nobody approves their own job"
        outsider = await bot.say(f"!approve {job_id}", as_="local:bob")
        assert outsider.outcome.outcome == "refused", "bob is not a storage lead"
        job = await bot.app.store.get_job(job_id or 0)
        assert job is not None
        assert job.state is JobState.AWAITING_APPROVAL
        approved = await bot.say(f"!approve {job_id}", as_="local:lead1")
    assert approved.outcome.state is JobState.SUCCEEDED
    assert approved.outcome.output == "wiped vol1"


# --------------------------------------------------------------------------- approvals


async def test_approvals_needs_that_many_distinct_approvers(tmp_path: Path) -> None:
    script = _sh('approval = "storage-leads"\napprovals = 2', "echo decommissioned")
    async with _bot(tmp_path, {"decom.sh": script}) as bot:
        asked = await bot.say("!decom", as_="local:alice")
        job_id = asked.outcome.job_id
        assert "needs approval by 2 members of role storage-leads" in asked.text
        first = await bot.say(f"!approve {job_id}", as_="local:lead1")
        assert first.outcome.state is JobState.AWAITING_APPROVAL
        assert "1 more needed" in first.text
        again = await bot.say(f"!approve {job_id}", as_="local:lead1")
        assert again.outcome.outcome == "refused", "the same approver counts once"
        second = await bot.say(f"!approve {job_id}", as_="local:lead2")
    assert second.outcome.state is JobState.SUCCEEDED
    assert second.outcome.output == "decommissioned"


# --------------------------------------------------------------------------- approval_ttl


async def test_approval_ttl_lets_the_request_expire(tmp_path: Path) -> None:
    script = _sh('approval = "storage-leads"\napproval_ttl = "1s"', "echo fixed")
    async with _bot(tmp_path, {"fix.sh": script}) as bot:
        asked = await bot.say("!fix", as_="local:alice")
        job_id = asked.outcome.job_id or 0
        request = await bot.app.store.approval(job_id)
        assert request is not None
        assert request.expires_at - request.requested_at == timedelta(seconds=1)

        async def expired() -> bool:
            return job_id in await bot.app.dispatcher.approvals.expire() or (
                (job := await bot.app.store.get_job(job_id)) is not None
                and job.state is JobState.EXPIRED
            )

        await _until(expired, "the approval request to expire")
        late = await bot.say(f"!approve {job_id}", as_="local:lead1")
        job = await bot.app.store.get_job(job_id)
    assert late.outcome.outcome == "refused"
    assert job is not None
    assert job.state is JobState.EXPIRED
    assert "fixed" not in late.text


# --------------------------------------------------------------------------- concurrency


async def test_concurrency_queues_a_second_run_until_the_first_ends(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    body = f'while [ ! -e "{gate}" ]; do sleep 0.05; done\necho "done $OPSROOM_ARG_TAG"'
    scripts = {"gated.sh": _sh("concurrency = 1", body, args="# @arg tag!\n")}
    async with _bot(tmp_path, scripts) as bot:
        first = asyncio.ensure_future(bot.say("!gated a"))

        async def running() -> bool:
            return any(j.state is JobState.RUNNING for j in await _jobs(bot))

        await _until(running, "the first job to run")
        told: list[Reply] = []
        queued = asyncio.Event()

        async def send(reply: Reply) -> None:
            told.append(reply)
            if "queued behind job" in str(reply):
                queued.set()

        second = asyncio.ensure_future(
            bot.app.dispatcher.handle(
                Inbound(text="!gated b", principal="local:tester", room="local:test", direct=True),
                send,
            )
        )
        await asyncio.wait_for(queued.wait(), timeout=20)
        states = sorted(j.state.value for j in await _jobs(bot))
        assert states == ["queued", "running"], "the second waits while the first runs"
        gate.touch()
        a, b = await first, await second
    assert (a.outcome.output, b.output) == ("done a", "done b")
    assert b.state is JobState.SUCCEEDED


# --------------------------------------------------------------------------- aliases


async def test_aliases_are_other_names_for_the_command(tmp_path: Path) -> None:
    scripts = {"storage/migrate_volume.sh": _sh('aliases = ["mig"]', "echo migrating")}
    async with _bot(tmp_path, scripts) as bot:
        said = await bot.say("!mig")
        helped = await bot.say("!help storage migrate-volume")
    assert said.outcome.state is JobState.SUCCEEDED
    assert said.outcome.output == "migrating"
    assert "aliases: mig" in helped.text


# --------------------------------------------------------------------------- secrets


async def test_secrets_gives_a_script_only_what_it_declares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIRECTIVE_TEST_DEPLOY", "d3pl0y-t0ken-value-1")
    monkeypatch.setenv("DIRECTIVE_TEST_OTHER", "0ther-t0ken-value-22")
    settings = Settings(
        roles=ROLES,
        secrets={
            "DEPLOY_TOKEN": "env:DIRECTIVE_TEST_DEPLOY",
            "OTHER_TOKEN": "env:DIRECTIVE_TEST_OTHER",
        },
    )
    show = (
        'echo "deploy: ${#DEPLOY_TOKEN} chars"\necho "other: ${OTHER_TOKEN:-absent}"\n'
        'echo "echoed: $DEPLOY_TOKEN"'
    )
    scripts = {
        "deploy.sh": _sh('secrets = ["DEPLOY_TOKEN"]', show),
        "plain.sh": _sh("", show),
    }
    async with _bot(tmp_path, scripts, settings) as bot:
        declared = await bot.say("!deploy")
        undeclared = await bot.say("!plain")
    assert declared.outcome.output.splitlines() == [
        "deploy: 20 chars",
        "other: absent",
        "echoed: ********",
    ]
    assert undeclared.outcome.output.splitlines()[:2] == ["deploy: 0 chars", "other: absent"]


# --------------------------------------------------------------------------- runs_on


async def test_runs_on_a_queue_nobody_serves_never_runs_here(tmp_path: Path) -> None:
    mark = tmp_path / "ran-here"
    scripts = {"win/patch.sh": _sh('runs_on = "windows"', f'touch "{mark}"\necho patched')}
    async with _bot(tmp_path, scripts) as bot:
        said = await bot.say("!win patch")
        jobs = await _jobs(bot)
    assert said.outcome.outcome == "refused"
    assert "win patch: no worker serves queue windows" in said.text
    assert jobs == [], "refused before a job exists"
    assert not mark.exists(), "it never runs on the wrong host"


# --------------------------------------------------------------------------- rooms


async def test_rooms_limits_where_a_command_runs_and_is_listed(tmp_path: Path) -> None:
    scripts = {
        "noc/restart.sh": _sh('rooms = ["slack:C0NOC*"]', "echo restarted"),
        "noc/status.sh": _sh("", "echo fine"),
    }
    noc, general = "slack:C0NOC42", "slack:CGENERAL"
    async with _bot(tmp_path, scripts) as bot:
        here = await bot.say("!noc restart", as_="slack:U1", room=noc)
        there = await bot.say("!noc restart", as_="slack:U1", room=general)
        listed_here = await bot.say("!help", as_="slack:U1", room=noc)
        listed_there = await bot.say("!help", as_="slack:U1", room=general)
        jobs = await _jobs(bot)
    assert here.outcome.state is JobState.SUCCEEDED
    assert there.outcome.outcome == "refused"
    assert "denied: noc restart may run only in slack:C0NOC*" in there.text
    assert [j.room for j in jobs] == [noc], "nothing ran in the other room"
    assert "noc restart" in listed_here.text
    assert "noc restart" not in listed_there.text
    assert "noc status" in listed_there.text


# --------------------------------------------------------------------------- background


def _is_running_notice(said: Said) -> bool:
    return any(" is running — " in str(block) for r in said.replies for block in r.blocks)


async def test_background_answers_at_once_and_runs_on(tmp_path: Path) -> None:
    scripts = {"report.sh": _sh("background = true", "echo built"), "quick.sh": _sh("", "echo hi")}
    async with _bot(tmp_path, scripts) as bot:
        background = await bot.say("!report")
        foreground = await bot.say("!quick")
    assert _is_running_notice(background), "told at once that the job runs in the background"
    assert background.outcome.state is JobState.SUCCEEDED
    assert background.outcome.output == "built"
    assert not _is_running_notice(foreground), "a quick job without the directive just answers"


# --------------------------------------------------------------------------- dry_run


async def test_dry_run_lets_the_script_preview(tmp_path: Path) -> None:
    show = 'echo "dry run: $OPSROOM_DRY_RUN"'
    scripts = {"purge.sh": _sh("dry_run = true", show), "drop.sh": _sh("", show)}
    async with _bot(tmp_path, scripts) as bot:
        preview = await bot.say("!purge --dry-run")
        real = await bot.say("!purge")
        refused = await bot.say("!drop --dry-run")
        jobs = await _jobs(bot)
    assert preview.outcome.output == "dry run: 1"
    assert real.outcome.output == "dry run: 0"
    assert refused.outcome.outcome == "refused"
    assert "drop does not support --dry-run; nothing was run" in refused.text
    assert sorted(j.command for j in jobs) == ["purge", "purge"]


# --------------------------------------------------------------------------- hidden


async def test_hidden_commands_run_but_are_not_listed(tmp_path: Path) -> None:
    scripts = {"ops/rescue.sh": _sh("hidden = true", "echo rescued"), "ops/ping.sh": _sh("", "")}
    async with _bot(tmp_path, scripts) as bot:
        listed = await bot.say("!help")
        searched = await bot.say("!help ops")
        said = await bot.say("!ops rescue")
    assert "ops ping" in listed.text
    assert "ops rescue" not in listed.text
    assert "ops rescue" not in searched.text
    assert said.outcome.output == "rescued"


# --------------------------------------------------------------------------- owner


async def test_owner_is_named_in_the_command_help(tmp_path: Path) -> None:
    scripts = {"vm/resize.sh": _sh('owner = "team-compute (#compute)"', "echo ok")}
    async with _bot(tmp_path, scripts) as bot:
        helped = await bot.say("!help vm resize")
        asked = await bot.say("!vm resize --help")
    assert "owner: team-compute (#compute)" in helped.text
    assert "owner: team-compute (#compute)" in asked.text


# --------------------------------------------------------------------------- choices_from


async def test_choices_from_offers_the_other_commands_output(tmp_path: Path) -> None:
    scripts = {
        "sites/list.sh": _sh("", "printf 'store-0042\\nstore-0077\\n'"),
        "deploy.sh": _sh(
            'choices_from = "sites list"',
            'echo "deploying to $OPSROOM_ARG_SITE"',
            args="# @arg site!\n",
        ),
    }
    async with _bot(tmp_path, scripts) as bot:
        asked = await bot.say("!deploy")
        menus = [b for r in asked.replies for b in r.blocks if isinstance(b, Choices)]
        answered = await bot.say("2")
    assert [m.options for m in menus] == [("store-0042", "store-0077")]
    assert answered.outcome.output == "deploying to store-0077"


# --------------------------------------------------------------------------- the table


EFFECT_TESTS = {
    "timeout": "test_timeout_ends_a_job_that_runs_too_long",
    "approval": "test_approval_holds_the_job_until_a_member_of_the_role_approves",
    "approvals": "test_approvals_needs_that_many_distinct_approvers",
    "approval_ttl": "test_approval_ttl_lets_the_request_expire",
    "concurrency": "test_concurrency_queues_a_second_run_until_the_first_ends",
    "aliases": "test_aliases_are_other_names_for_the_command",
    "secrets": "test_secrets_gives_a_script_only_what_it_declares",
    "runs_on": "test_runs_on_a_queue_nobody_serves_never_runs_here",
    "rooms": "test_rooms_limits_where_a_command_runs_and_is_listed",
    "background": "test_background_answers_at_once_and_runs_on",
    "dry_run": "test_dry_run_lets_the_script_preview",
    "hidden": "test_hidden_commands_run_but_are_not_listed",
    "owner": "test_owner_is_named_in_the_command_help",
    "choices_from": "test_choices_from_offers_the_other_commands_output",
}


def test_every_directive_has_an_effect_test() -> None:
    untested = sorted(DIRECTIVE_KEYS - EFFECT_TESTS.keys())
    assert not untested, f"directives without a test proving their effect: {untested}"
    stale = sorted(EFFECT_TESTS.keys() - DIRECTIVE_KEYS)
    assert not stale, f"effect tests for directives that no longer exist: {stale}"
    missing = [name for name in EFFECT_TESTS.values() if not callable(globals().get(name))]
    assert not missing, f"effect tests named here but not defined: {missing}"
