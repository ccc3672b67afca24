"""Every request is audited, refusals included (SPEC §6.5), and no entry carries a flood.

Each refusal goes through the real engine (`opsroom.testing.Bot` over a SQLite file, real
child processes) or the real `opsroom` console script, and is then looked up in the audit
trail: who (the principal, never a display name), where (the room), what they sent
(escaped, bounded to its first KiB with its length and sha256) and why — with the hash
chain still verifying.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opsroom.adapters.irc.translate import parse_line, to_event
from opsroom.config import Settings
from opsroom.model.audit import AuditRecord
from opsroom.model.blocks import Reply, Status
from opsroom.model.messages import Inbound
from opsroom.policy.rbac import UNVERIFIED_DENIAL
from opsroom.testing import Bot
from stores import scalar_sql
from support import FIXTURES, OPSROOM, Opsroom

ECHO = FIXTURES / "echo_catalog"
JOBS = FIXTURES / "jobs_catalog"
ROLES = Settings.model_validate(
    {
        "roles": [
            {"name": "ops", "members": ["local:alice", "local:mallory"], "allow": ["echo *"]},
            {"name": "readers", "members": ["local:rita"], "allow": ["echo table"]},
        ]
    }
)


@pytest.fixture
async def bot(store_url: str) -> AsyncIterator[Bot]:
    async with Bot.open(catalog_dir=str(ECHO), store_url=store_url, settings=ROLES) as engine:
        yield engine


async def trail(bot: Bot) -> list[AuditRecord]:
    """The whole audit trail, oldest first."""
    return [record async for record in bot.app.store.iter_audit()]


async def only_entry(bot: Bot) -> AuditRecord:
    """The one entry a refused message left; the chain must verify."""
    records = await trail(bot)
    assert len(records) == 1, [(r.event.action, r.event.outcome) for r in records]
    assert (await bot.app.store.check_audit()).broken is None, "the audit chain must stay intact"
    return records[0]


def sent(record: AuditRecord) -> Any:
    assert record.event.params is not None
    return record.event.params["text"]


@pytest.mark.parametrize(
    ("text", "command", "reason"),
    [
        ("!echo python-text 'unterminated", "", "unterminated quote"),
        ("!ehco python-text hi", "", "unknown command: ehco"),
        ("!echo python-text hi --count many", "echo python-text", "is not a whole number"),
        ("!echo python-text hi --mode loud", "echo python-text", "is not one of plain, upper"),
        ("!echo python-text hi --colour red", "echo python-text", "unknown parameter --colour"),
        ("!echo shell-text", "echo shell-text", "missing required parameter --text"),
        ("!echo fail extra words", "echo fail", "unexpected value 'extra'"),
        ("!job twelve", "job", "id: give one job number"),
        ("!approve x", "approve", "id: give the job number"),
    ],
)
async def test_a_refused_request_is_audited_with_who_where_what_and_why(
    bot: Bot, text: str, command: str, reason: str
) -> None:
    said = await bot.say(text, as_="local:alice", room="local:ops-room")
    assert said.outcome.outcome == "refused"
    record = await only_entry(bot)
    event = record.event
    assert (event.action, event.outcome) == ("request", "refused")
    assert (event.principal, event.room, event.command) == (
        "local:alice",
        "local:ops-room",
        command,
    )
    assert sent(record) == text
    assert reason in event.reason
    assert await bot.app.store.list_jobs() == [], "nothing ran"


async def test_a_permission_denial_records_what_was_asked(bot: Bot) -> None:
    said = await bot.say("!echo python-text hello", as_="local:rita", room="local:ops-room")
    assert said.outcome.outcome == "refused"
    record = await only_entry(bot)
    assert (record.event.action, record.event.outcome) == ("decision", "denied")
    assert (record.event.principal, record.event.room) == ("local:rita", "local:ops-room")
    assert record.event.command == "echo python-text"
    assert sent(record) == "!echo python-text hello"
    assert "denied" in record.event.reason


async def test_what_was_sent_is_escaped_in_the_record(bot: Bot) -> None:
    text = "!echo python-text hi --colour \x1b[31mred\x07 \u202eevil\\n"
    await bot.say(text, as_="local:alice")
    record = await only_entry(bot)
    assert sent(record) == "!echo python-text hi --colour \\x1b[31mred\\x07 \\u202eevil\\\\n"
    assert "\x1b" not in record.event.reason
    assert "\u202e" not in record.event.reason


async def test_a_megabyte_is_recorded_as_its_first_kib_its_length_and_its_hash(
    bot: Bot, store_url: str
) -> None:
    text = "!echo python-text " + "A" * 1_000_000
    said = await bot.say(text, as_="local:alice")
    assert said.outcome.outcome == "refused"
    assert len(said.text) < 500
    record = await only_entry(bot)
    form = sent(record)
    assert form["bytes"] == len(text)
    assert form["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert text.startswith(form["head"])
    assert len(form["head"]) == 1024
    stored = scalar_sql(store_url, "SELECT length(params) + length(reason) FROM audit")
    assert stored < 4096, "the audit row holds a bounded form, not the megabyte"


async def test_a_long_value_that_runs_is_kept_whole_by_the_job_and_bounded_in_the_trail(
    bot: Bot,
) -> None:
    value = "v" * 20_000
    said = await bot.say(f"!echo python-text {value}", as_="local:alice")
    assert said.outcome.outcome == "succeeded"
    assert f"TEXT=[{value}]" in said.outcome.output, "the script gets every byte"
    records = await trail(bot)
    assert [r.event.action for r in records] == ["request", "job.start", "job.end"]
    digest = hashlib.sha256(value.encode()).hexdigest()
    for record in records:
        assert record.event.params is not None
        assert record.event.params["text"] == {
            "head": "v" * 1024,
            "bytes": 20_000,
            "sha256": digest,
        }
    assert (await bot.app.store.check_audit()).broken is None


async def test_a_refused_cancel_is_a_refusal_with_its_reason(bot: Bot) -> None:
    ran = await bot.say("!echo python-text mine", as_="local:alice")
    assert ran.outcome.job_id is not None
    job_id = ran.outcome.job_id
    said = await bot.say(f"!cancel {job_id}", as_="local:mallory", room="local:elsewhere")
    assert said.outcome.outcome == "refused"
    cancels = [r for r in await trail(bot) if r.event.action == "job.cancel"]
    assert len(cancels) == 1, "one entry, and it does not say `requested`"
    event = cancels[0].event
    assert (event.outcome, event.principal, event.room) == (
        "refused",
        "local:mallory",
        "local:elsewhere",
    )
    assert f"only local:alice, who asked for job {job_id}" in event.reason
    assert sent(cancels[0]) == f"!cancel {job_id}"
    assert (await bot.app.store.check_audit()).broken is None


async def test_an_allowed_cancel_is_recorded_as_requested_for_its_job(bot: Bot) -> None:
    ran = await bot.say("!echo python-text mine", as_="local:alice")
    said = await bot.say(f"!cancel {ran.outcome.job_id}", as_="local:alice")
    assert said.outcome.outcome == "succeeded"
    cancels = [r.event for r in await trail(bot) if r.event.action == "job.cancel"]
    assert [(e.outcome, e.job_id) for e in cancels] == [("requested", ran.outcome.job_id)]


async def test_an_expired_menu_click_is_audited(bot: Bot) -> None:
    replies: list[Reply] = []

    async def send(reply: Reply) -> None:
        replies.append(reply)

    inbound = Inbound(text="", principal="local:alice", room="local:ops-room", direct=True)
    outcome = await bot.app.dispatcher.choose(inbound, "no-such-menu", 0, send)
    assert outcome.outcome == "refused"
    record = await only_entry(bot)
    assert (record.event.outcome, record.event.principal) == ("refused", "local:alice")
    assert record.event.params is not None
    assert record.event.params["menu"] == "no-such-menu"


async def test_secrets_stay_masked_in_the_record_of_what_was_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "hunter2-s3cr3t-value"
    monkeypatch.setenv("AUDIT_TEST_TOKEN", secret)
    (tmp_path / "token").write_text("file-held-s3cret\n")
    settings = Settings.model_validate(
        {
            "secrets": {
                "TOKEN": "env:AUDIT_TEST_TOKEN",
                "OTHER": f"file:{tmp_path / 'token'}",
            }
        }
    )
    async with Bot.open(
        catalog_dir=str(ECHO), store_url=f"sqlite:///{tmp_path}/t.db", settings=settings
    ) as bot:
        await bot.say(f"!echo python-text hi --colour {secret}")
        await bot.say("!echo python-text file-held-s3cret")
        records = await trail(bot)
    dumped = json.dumps([(r.event.params, r.event.reason) for r in records])
    assert secret not in dumped
    assert "file-held-s3cret" not in dumped
    assert "********" in sent(records[0])
    assert records[1].event.params == {"text": "********"}


async def test_an_irc_guest_refusal_is_audited_and_nothing_runs(tmp_path: Path) -> None:
    line = (FIXTURES / "payloads" / "irc" / "privmsg_no_account.txt").read_text().splitlines()[0]
    # The recorded guest, asking for a command this catalog has.
    msg = parse_line(line.replace("!store status 42", "!echo table"))
    assert msg is not None
    inbound = to_event(msg, me="ops", account=None)
    assert isinstance(inbound, Inbound), "the engine sees the guest's message, to record it"
    replies: list[Reply] = []

    async def send(reply: Reply) -> None:
        replies.append(reply)

    async with Bot.open(
        catalog_dir=str(ECHO), store_url=f"sqlite:///{tmp_path}/t.db", settings=ROLES
    ) as bot:
        outcome = await bot.app.dispatcher.handle(inbound, send)
        assert outcome.outcome == "refused"
        assert [r.blocks for r in replies] == [(Status(UNVERIFIED_DENIAL, "error"),)]
        record = await only_entry(bot)
        assert await bot.app.store.list_jobs() == []
    event = record.event
    assert (event.action, event.outcome) == ("decision", "denied")  # policy decided
    assert (event.principal, event.room) == ("irc:~guest", "irc:#ops")
    assert sent(record) == "!echo table"
    assert event.reason == UNVERIFIED_DENIAL


async def test_a_job_refused_at_approval_time_has_its_end_audited(tmp_path: Path) -> None:
    def settings(alice_may: bool) -> Settings:
        allow = ["storage *"] if alice_may else ["nothing"]
        return Settings.model_validate(
            {
                "roles": [
                    {"name": "ops", "members": ["local:alice"], "allow": allow},
                    {"name": "storage-leads", "members": ["local:lead"], "allow": ["storage *"]},
                ]
            }
        )

    store = f"sqlite:///{tmp_path}/t.db"
    catalog = str(FIXTURES / "approval_catalog")
    async with Bot.open(catalog_dir=catalog, store_url=store, settings=settings(True)) as bot:
        asked = await bot.say("!storage wipe vol7", as_="local:alice", room="local:storage")
        assert asked.outcome.outcome == "awaiting_approval"
    # Restarted with alice's right to run it gone: the approval cannot start it.
    async with Bot.open(catalog_dir=catalog, store_url=store, settings=settings(False)) as bot:
        approved = await bot.say(f"!approve {asked.outcome.job_id}", as_="local:lead")
        assert "not run" in approved.text
        records = await trail(bot)
        assert (await bot.app.store.check_audit()).broken is None
    end = records[-1].event
    assert (end.action, end.outcome, end.job_id) == ("job.end", "failed", asked.outcome.job_id)
    assert (end.principal, end.room) == ("local:alice", "local:storage")
    assert "may no longer run it" in end.reason


def test_refusals_show_in_the_export_and_the_log_verifies(opsroom: Opsroom, workdir: Path) -> None:
    refused = opsroom(
        "run", "--as", "local:eve", "--room", "local:war-room", "--catalog", str(ECHO),
        "!echo python-text hi --colour \x1b]0;pwned\x07",
    )  # fmt: skip
    assert refused.code == 2
    r = opsroom("audit", "export", "--format", "json")
    assert r.code == 0, r.stderr
    entries = json.loads(r.stdout)
    assert len(entries) == 1
    entry = entries[0]
    assert (entry["action"], entry["outcome"]) == ("request", "refused")
    assert (entry["principal"], entry["room"]) == ("local:eve", "local:war-room")
    assert entry["command"] == "echo python-text"
    assert entry["params"] == {"text": "!echo python-text hi --colour \\x1b]0;pwned\\x07"}
    assert "unknown parameter --colour" in entry["reason"]
    verify = opsroom("audit", "verify")
    assert verify.code == 0, verify.stdout + verify.stderr
    assert "intact: 1 entries" in verify.stdout


# --------------------------------------------------------------------------- interrupted


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}


@pytest.fixture
def background() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate()


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_an_interrupted_job_gets_its_end_in_the_audit_trail(
    opsroom: Opsroom, workdir: Path, background: list[subprocess.Popen[str]]
) -> None:
    doomed = subprocess.Popen(
        [OPSROOM, "run", "--as", "local:alice", "--room", "local:ops", "--catalog", str(JOBS),
         "!slow nap --seconds 60"],
        cwd=workdir, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    background.append(doomed)
    db = workdir / "opsroom.db"

    def running() -> bool:
        try:
            with sqlite3.connect(db) as conn:
                row = conn.execute("SELECT 1 FROM jobs WHERE state = 'running' AND pid > 0")
                return row.fetchone() is not None
        except sqlite3.OperationalError:
            return False  # the tables are still being created

    _wait_for(running, 30, "the job to run")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()

    r = opsroom("jobs", "--json", "--catalog", str(JOBS))  # the next opsroom start reconciles
    assert r.code == 0, r.stderr
    assert [j["state"] for j in r.json_lines[0]] == ["interrupted"]
    entries = json.loads(opsroom("audit", "export", "--format", "json").stdout)
    assert [(e["action"], e["outcome"]) for e in entries] == [
        ("request", "allowed"),
        ("job.start", ""),
        ("job.end", "interrupted"),
    ]
    end = entries[-1]
    assert (end["principal"], end["room"], end["command"]) == (
        "local:alice",
        "local:ops",
        "slow nap",
    )
    assert end["job_id"] == entries[1]["job_id"]
    assert "ended before the job did" in end["reason"]
    verify = opsroom("audit", "verify")
    assert verify.code == 0, verify.stdout + verify.stderr
