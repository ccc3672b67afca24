"""A stateful model of what chat users and faults can do to jobs (SPEC §5.5, §6.3).

Hypothesis drives a real engine (`opsroom.testing.Bot` over a SQLite file, a catalog
written here, real child processes) through the Slack adapter's own delivery path with
random sequences of: requests by anyone; approvals and denials by anyone of any job (the
requester's own, non-members', people holding no role); cancels; Slack delivering the
same slash command again; restarts; a store that cannot be written while a message
arrives; and the approval deadline passing. After every step:

- no job's script ran more than once — counted in a file the scripts append to, never in
  opsroom's own store — and each run was asked for by someone allowed to run it and, when
  the command is gated, approved by enough distinct members of the role, none of them
  the requester;
- every job waits for approval or is in one terminal state, which never changes again, and
  the audit trail shows exactly one start and one end for each run;
- the audit hash chain verifies;
- the store agrees with a reference model of who may do what.

The engine reads the wall clock when it checks a vote (`policy.approval.check_vote`), so
the clock is moved only where the store takes one: `Store.expire_approvals(now=...)`, the
sweep every opsroom start runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shlex
import shutil
import sqlite3
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from opsroom.adapters.slack import create as create_slack
from opsroom.adapters.slack import translate
from opsroom.adapters.slack.adapter import SlackAdapter
from opsroom.config import Settings
from opsroom.engine.adapters import engine_services
from opsroom.errors import StoreError
from opsroom.model.approvals import VoteDecision
from opsroom.model.jobs import JobState
from opsroom.model.messages import Inbound
from opsroom.store import engine as store_engine
from opsroom.testing import Bot, Said

T = TypeVar("T")

settings.register_profile(
    "job-model",
    max_examples=25,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
# CI runs the same examples every time: a red build is a real change, not a new draw.
settings.register_profile("job-model-ci", settings.get_profile("job-model"), derandomize=True)
PROFILE = settings.get_profile("job-model-ci" if os.environ.get("CI") else "job-model")

# While the model holds the write lock, a writer gives up after this long instead of the
# 10 s a real store waits, so each fault costs a fraction of a second.
LOCKED_STORE_GIVES_UP_MS = 150

TEAM, CHANNEL = "T_MODEL", "C_OPS"
ALICE, BOB, CAROL, DAVE, ERIN, FRANK, ADA, MALLORY = (
    f"U_{name}" for name in ("ALICE", "BOB", "CAROL", "DAVE", "ERIN", "FRANK", "ADA", "MALLORY")
)
PEOPLE = (ALICE, BOB, CAROL, DAVE, ERIN, FRANK, ADA, MALLORY)


def who(user: str) -> str:
    """The opsroom principal of a Slack user."""
    return translate.principal(user)


def user_of(principal: str) -> str:
    """The Slack user of an opsroom principal."""
    return principal.partition(":")[2]


REQUESTER_IDS, LEAD_IDS = (ALICE, BOB, DAVE), (BOB, CAROL, ERIN)
# Who may do what, written out by hand rather than asked of opsroom's policy.
REQUESTERS = frozenset(map(who, REQUESTER_IDS))
LEADS = frozenset(map(who, LEAD_IDS))  # approve the gated commands
ADMINS = frozenset({who(ADA)})  # may cancel any job
HOLDS_A_ROLE = frozenset(who(u) for u in PEOPLE if u != MALLORY)
ROLES: list[dict[str, Any]] = [
    {"name": "requesters", "members": sorted(REQUESTERS), "allow": ["*"]},
    # Leads may themselves run only the ungated command.
    {"name": "leads", "members": sorted(LEADS), "allow": ["fast *"]},
    {"name": "watchers", "members": [who(FRANK)]},  # a role, but no command
    {"name": "operators", "members": sorted(ADMINS), "admin": True},
]


@dataclass(frozen=True)
class Command:
    """One command of the model's catalog: who may ask for it and how many must approve."""

    name: str
    approvals: int
    may_request: frozenset[str]

    @property
    def directives(self) -> str:
        """The `# opsroom:` lines of its script."""
        if not self.approvals:
            return ""
        lines = '# opsroom: approval = "leads"\n'
        if self.approvals > 1:
            lines += f"# opsroom: approvals = {self.approvals}\n"
        return lines


COMMANDS = {
    c.name: c
    for c in (
        Command("fast note", 0, REQUESTERS | LEADS),
        Command("gate one", 1, REQUESTERS),
        Command("gate two", 2, REQUESTERS),
    )
}
SCRIPT = """#!/usr/bin/env bash
{directives}# @describe Record that this job ran.
# @arg nonce! The test's tag of the request
printf '%s %s %s\\n' "$OPSROOM_JOB_ID" "$OPSROOM_REQUESTER" "$OPSROOM_ARG_NONCE" >> {log}
"""
GATED = ("gate two", "gate one")
COMMAND_NAMES = (*GATED, "fast note")
NO_SUCH_JOB = 10_000
APPROVAL_TTL = timedelta(hours=1)  # SPEC §6.3: unless the command sets approval_ttl


def write_catalog(root: Path, runs: Path) -> None:
    """The model's catalog: every script appends one line per run to `runs`."""
    for command in COMMANDS.values():
        group, name = command.name.split()
        (root / group).mkdir(parents=True, exist_ok=True)
        script = SCRIPT.format(directives=command.directives, log=shlex.quote(str(runs)))
        (root / group / f"{name}.sh").write_text(script)


@dataclass(frozen=True)
class Run:
    """One line of the run log: a script really ran."""

    job: int
    requester: str
    nonce: str


def read_runs(path: Path) -> list[Run]:
    """Every run the scripts recorded."""
    if not path.exists():
        return []
    runs = []
    for line in path.read_text().splitlines():
        job, requester, nonce = line.split(" ")
        runs.append(Run(int(job), requester, nonce))
    return runs


@dataclass(frozen=True)
class Action:
    """What someone asks of opsroom: a command (with the test's tag) or a verb on a job."""

    verb: str  # a command name, or approve | deny | cancel
    job: int | None = None
    nonce: str | None = None

    @property
    def text(self) -> str:
        """What follows `/ops`."""
        if self.verb in COMMANDS:
            return f"{self.verb} {self.nonce}"
        if self.verb == "deny":
            return f"deny {self.job} not during the freeze"
        return f"{self.verb} {self.job}"


@dataclass(frozen=True)
class Message:
    """One slash command as Slack delivers it; a redelivery carries the same trigger id."""

    user: str
    action: Action
    trigger: str

    def body(self) -> dict[str, Any]:
        """The slash-command payload Bolt hands to the adapter."""
        return {
            "team_id": TEAM,
            "channel_id": CHANNEL,
            "channel_name": "ops",
            "user_id": self.user,
            "user_name": self.user.lower(),
            "command": "/ops",
            "text": self.action.text,
            "trigger_id": self.trigger,
        }

    @property
    def key(self) -> str:
        """The delivery key the adapter records."""
        return translate.command_key(self.body())


@dataclass
class Expected:
    """The reference model's view of one job."""

    command: Command
    requester: str
    nonce: str
    state: JobState
    approvers: list[str] = field(default_factory=list)


async def _ack(*_args: Any, **_kwargs: Any) -> None:
    """Bolt's `ack`: the adapter acknowledges every slash command at once."""


class JobModel(RuleBasedStateMachine):
    """Requests, votes, cancels, redeliveries, restarts, store faults and expiry, at random."""

    root: ClassVar[Path]  # set by the test: each run gets a fresh folder under it

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="model-", dir=self.root))
        self.runs_log = self.dir / "runs.log"
        self.catalog = self.dir / "catalog"
        write_catalog(self.catalog, self.runs_log)
        self.db = self.dir / "opsroom.db"
        self.url = f"sqlite:///{self.db}"
        self.settings = Settings.model_validate({"store": {"url": self.url}, "roles": ROLES})
        self.loop = asyncio.Runner()
        self.stack: AsyncExitStack | None = None
        self.bot: Bot | None = None
        self.adapter: SlackAdapter | None = None
        self.expected: dict[int, Expected] = {}
        self.terminal: dict[int, JobState] = {}  # first terminal state seen in the store
        self.asked: dict[str, tuple[str, Command]] = {}  # nonce -> (requester, command)
        self.approve_sent: defaultdict[int, set[str]] = defaultdict(set)  # job -> senders
        self.messages: list[Message] = []
        self.messages_at_start = 0
        self.stored_keys: set[str] = set()  # delivery keys the store recorded
        self.recent_keys: set[str] = set()  # delivery keys this adapter instance saw
        self.tags = itertools.count(1)
        try:
            self.run(self._start())
        except BaseException:
            self.teardown()
            raise

    # -- the real parts --------------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one step of engine work on this model's event loop."""
        return self.loop.run(coro)

    async def _start(self) -> None:
        """Open the engine on the store and the catalog, and a Slack adapter in front of it."""
        self.stack = AsyncExitStack()
        self.bot = await self.stack.enter_async_context(
            Bot.open(catalog_dir=str(self.catalog), store_url=self.url, settings=self.settings)
        )
        # As `opsroom serve` builds it: deliveries are recorded in the engine's store.
        self.adapter = create_slack(
            {
                "mode": "socket",
                "bot_token": "env:SLACK_BOT_TOKEN",
                "app_token": "env:SLACK_APP_TOKEN",
                "api_url": "http://127.0.0.1:9/",  # never called: nothing connects
            },
            self.settings,
            services=engine_services(self.bot.app.dispatcher),
            environ={"SLACK_BOT_TOKEN": "xoxb-model", "SLACK_APP_TOKEN": "xapp-model"},
        )
        self.recent_keys = set()
        self.messages_at_start = len(self.messages)

        async def nowhere(_reply: Any) -> None:
            pass

        # `serve` adopts queued jobs left without a process when it starts; so do we.
        await self.bot.app.dispatcher.adopt_orphans(lambda _room: nowhere)

    async def _stop(self) -> None:
        if self.adapter is not None:
            await self.adapter.close()
            self.adapter = None
        if self.stack is not None:
            await self.stack.aclose()
            self.stack = None
            self.bot = None

    def teardown(self) -> None:
        """Close the engine and remove this run's files."""
        try:
            self.run(self._stop())
        finally:
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    async def _deliver(self, message: Message) -> Said | None:
        """Slack delivers `message`; what opsroom answered, or None when it was dropped."""
        inbound = await self._receive(message)
        return None if inbound is None else await self._answer(inbound)

    async def _receive(self, message: Message) -> Inbound | None:
        """The adapter's half: the message as the bridge gets it, or None when dropped."""
        assert self.adapter is not None
        # Bolt calls this listener for each `/ops` slash command; Bolt itself is left out
        # because it checks the bot token against a Slack server first.
        await self.adapter._on_command(_ack, message.body())
        events = []
        while not self.adapter._queue.empty():
            events.append(self.adapter._queue.get_nowait())
        if not events:
            return None
        [event] = events
        assert isinstance(event, Inbound)
        return event

    async def _answer(self, inbound: Inbound) -> Said:
        """The engine's half: handle the message and collect the replies."""
        assert self.bot is not None
        return await self.bot.say(
            inbound.text, as_=inbound.principal, room=inbound.room, direct=inbound.direct
        )

    @contextmanager
    def _store_locked(self) -> Iterator[None]:
        """Another process holds the store's write lock (a backup, a stuck writer)."""
        lock = sqlite3.connect(self.db, isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")
            yield
        finally:
            lock.close()  # rolls back: nothing it held is written

    # -- the reference model ---------------------------------------------------------------

    def _message(self, user: str, action: Action) -> Message:
        message = Message(user, action, trigger=f"trigger.{len(self.messages) + 1}")
        self.messages.append(message)
        return message

    def _expect(self, message: Message, said: Said) -> int | None:
        """Check what came of `message` against the reference model and move the model on.

        Returns the id of a job it created.
        """
        principal, action = who(message.user), message.action
        outcome = said.outcome
        refused = (outcome.outcome, outcome.job_id) == ("refused", None)
        command = COMMANDS.get(action.verb)
        if command is not None:
            assert action.nonce is not None
            if principal not in command.may_request:
                assert refused, f"{principal} may not run {command.name}: {said.text}"
                return None
            job_id = outcome.job_id
            assert job_id is not None, said.text
            assert job_id not in self.expected, f"job {job_id} handed out twice"
            state = JobState.AWAITING_APPROVAL if command.approvals else JobState.SUCCEEDED
            assert outcome.state is state, said.text
            self.expected[job_id] = Expected(command, principal, action.nonce, state)
            self.asked[action.nonce] = (principal, command)
            return job_id

        assert action.job is not None
        job = self.expected.get(action.job)
        if action.verb == VoteDecision.APPROVE.value:
            self.approve_sent[action.job].add(principal)
        if principal not in HOLDS_A_ROLE or job is None:
            assert refused, said.text
            return None
        if action.verb == "cancel":
            if principal != job.requester and principal not in ADMINS:
                assert refused, said.text
                return None
            assert outcome.outcome == "succeeded", said.text
            if job.state is JobState.AWAITING_APPROVAL:
                job.state = JobState.CANCELLED
            return None

        approve = action.verb == VoteDecision.APPROVE.value
        may_vote = (
            job.state is JobState.AWAITING_APPROVAL
            and principal != job.requester
            and principal in LEADS
            and not (approve and principal in job.approvers)
        )
        if not may_vote:
            assert refused, said.text
            return None
        if not approve:
            job.state = JobState.DENIED
            assert (outcome.outcome, outcome.state) == ("succeeded", JobState.DENIED), said.text
            return None
        job.approvers.append(principal)
        if len(job.approvers) < job.command.approvals:
            assert outcome.outcome == "awaiting_approval", said.text
            return None
        job.state = JobState.SUCCEEDED
        assert (outcome.outcome, outcome.state) == ("succeeded", JobState.SUCCEEDED), said.text
        return None

    def _send(self, message: Message) -> int | None:
        """Deliver a message for the first time, with the store working."""
        said = self.run(self._deliver(message))
        assert said is not None, f"a first delivery was dropped: {message}"
        self.recent_keys.add(message.key)
        self.stored_keys.add(message.key)
        return self._expect(message, said)

    # -- rules -----------------------------------------------------------------------------
    # Anyone may do anything to any job, but the strategies lean towards the people and the
    # jobs that move a request on, so most runs reach approvals, quorums and denials.

    def _waiting(self) -> list[int]:
        return sorted(i for i, e in self.expected.items() if e.state is JobState.AWAITING_APPROVAL)

    def _half_approved(self) -> list[int]:
        return [i for i in self._waiting() if self.expected[i].approvers]

    @initialize(
        asks=st.lists(
            st.tuples(st.sampled_from(REQUESTER_IDS), st.sampled_from(GATED)),
            min_size=1,
            max_size=3,
        )
    )
    def requests_are_waiting(self, asks: list[tuple[str, str]]) -> None:
        """Every run starts with gated requests waiting, so its steps go to deciding them."""
        for user, command in asks:
            self.request(user, command)

    @rule(
        user=st.one_of(st.sampled_from(REQUESTER_IDS), st.sampled_from(PEOPLE)),
        command=st.sampled_from(COMMAND_NAMES),
    )
    def request(self, user: str, command: str) -> None:
        """Someone asks for a command."""
        nonce = f"n{next(self.tags)}"
        self._send(self._message(user, Action(command, nonce=nonce)))

    @rule(
        # None: whoever asked for the job.
        user=st.one_of(st.none(), st.sampled_from(LEAD_IDS), st.sampled_from(PEOPLE)),
        verb=st.sampled_from(["approve", "approve", "deny", "cancel"]),
        which=st.integers(min_value=0),
        any_job=st.booleans(),
    )
    def act_on_job(self, user: str | None, verb: str, which: int, any_job: bool) -> None:
        """Someone approves, denies or cancels a job: mostly one still waiting.

        Any job includes one nobody asked for.
        """
        waiting = self._waiting()
        pool = waiting if waiting and not any_job else [*sorted(self.expected), NO_SUCH_JOB]
        job = pool[which % len(pool)]
        asked = self.expected.get(job)
        user = user or (user_of(asked.requester) if asked else ALICE)
        self._send(self._message(user, Action(verb, job=job)))

    @precondition(lambda self: bool(self._half_approved()))
    @rule(user=st.sampled_from((None, *LEAD_IDS)), which=st.integers(min_value=0))
    def a_lead_approves_a_half_approved_job(self, user: str | None, which: int) -> None:
        """A lead approves a job someone already approved: the quorum, or a double click.

        With no `user`, the last approver clicks Approve again.
        """
        waiting = self._half_approved()
        job = waiting[which % len(waiting)]
        user = user or user_of(self.expected[job].approvers[-1])
        self._send(self._message(user, Action(VoteDecision.APPROVE.value, job=job)))

    @precondition(lambda self: bool(self.messages))
    @rule(which=st.integers(min_value=0))
    def slack_delivers_again(self, which: int) -> None:
        """Slack redelivers an earlier slash command (a retry, an unacknowledged envelope)."""
        message = self.messages[which % len(self.messages)]
        said = self.run(self._deliver(message))
        seen = message.key in self.recent_keys or message.key in self.stored_keys
        if seen:
            assert said is None, f"a redelivery was handled again: {message} → {said}"
            return
        # Its first delivery met a failing store and this adapter is new: it is news.
        assert said is not None, f"a message never recorded was dropped: {message}"
        self.recent_keys.add(message.key)
        self.stored_keys.add(message.key)
        self._expect(message, said)

    # A rule without arguments is cheap to draw: without this, most steps were restarts.
    @precondition(lambda self: len(self.messages) >= self.messages_at_start + 2)
    @rule()
    def restart(self) -> None:
        """opsroom stops and starts again on the same store and catalog."""
        self.run(self._stop())
        self.run(self._start())

    @rule(
        user=st.sampled_from(PEOPLE),
        verb=st.sampled_from(
            [*sorted(COMMANDS), VoteDecision.APPROVE.value, VoteDecision.DENY.value, "cancel"]
        ),
        job=st.integers(min_value=1, max_value=8),
    )
    def message_while_the_store_is_locked(self, user: str, verb: str, job: int) -> None:
        """A message arrives while another process holds the store's write lock."""
        nonce = f"n{next(self.tags)}"
        action = Action(verb, nonce=nonce) if verb in COMMANDS else Action(verb, job=job)
        message = self._message(user, action)
        before = read_runs(self.runs_log)
        with self._store_locked():
            try:
                said = self.run(self._deliver(message))
            except StoreError:
                said = None  # the engine could not even record a refusal; still nothing ran
            else:
                assert said is not None, "a delivery that could not be recorded was dropped"
                assert said.outcome.outcome == "refused", said.text
                assert said.outcome.job_id is None, said.text
        self.recent_keys.add(message.key)
        assert read_runs(self.runs_log) == before, "something ran without an audit record"
        # The adapter keeps its key as soon as the store takes it again: a redelivery, even
        # to a new adapter after a restart, is recognised.
        assert self.adapter is not None
        self.run(self.adapter.deliveries.settle(timeout=30))
        self.stored_keys.add(message.key)

    @precondition(lambda self: bool(self._waiting()))
    @rule(which=st.integers(min_value=0))
    def approval_deadline_passes(self, which: int) -> None:
        """The clock reaches one waiting request's deadline and the expiry sweep runs.

        Every request made no later than that one expires; later ones stay open.
        """
        waiting = self._waiting()
        self.run(self._expire_at_deadline_of(waiting[which % len(waiting)]))

    async def _expire_at_deadline_of(self, job_id: int) -> None:
        assert self.bot is not None
        store = self.bot.app.store
        chosen = await store.approval(job_id)
        assert chosen is not None, f"gated job {job_id} has no approval request"
        due = []
        for waiting, expected in self.expected.items():
            if expected.state is not JobState.AWAITING_APPROVAL:
                continue
            request = await store.approval(waiting)
            assert request is not None, f"job {waiting} waits without an approval request"
            assert request.expires_at - request.requested_at == APPROVAL_TTL, request
            if request.expires_at <= chosen.expires_at:
                due.append(waiting)
        expired = await store.expire_approvals(now=chosen.expires_at)
        assert sorted(expired) == sorted(due)
        for waiting in due:
            self.expected[waiting].state = JobState.EXPIRED

    # -- what must always hold -------------------------------------------------------------

    @invariant()
    def everything_holds(self) -> None:
        """Runs, authorisation, approvals, terminal states, the audit chain, the model."""
        self.run(self._check())

    async def _check(self) -> None:
        assert self.bot is not None
        store = self.bot.app.store
        runs = read_runs(self.runs_log)

        # A job runs at most once.
        per_job = Counter(r.job for r in runs)
        assert all(n == 1 for n in per_job.values()), f"a job ran twice: {runs}"
        assert all(n == 1 for n in Counter(r.nonce for r in runs).values()), runs

        # Never without authorisation and its approvals.
        for run in runs:
            assert run.nonce in self.asked, f"a run nobody asked for: {run}"
            requester, command = self.asked[run.nonce]
            assert run.requester == requester, run
            assert requester in command.may_request, f"{requester} may not run {command}"
            if not command.approvals:
                continue
            sent = (self.approve_sent[run.job] & LEADS) - {requester}
            assert len(sent) >= command.approvals, f"job {run.job} ran with approvals {sent}"
            request = await store.approval(run.job)
            assert request is not None, f"gated job {run.job} ran without an approval request"
            approvers = request.approvers
            assert len(set(approvers)) == len(approvers) >= command.approvals, request
            assert set(approvers) <= LEADS, request
            assert requester not in approvers, request
            denied = [v for v in request.approvals if v.decision is VoteDecision.DENY]
            assert not denied, f"job {run.job} ran although denied: {denied}"

        # Exactly one terminal state, and it never changes.
        jobs = {j.id: j for j in await store.find_jobs(limit=1000)}
        for job in jobs.values():
            assert job.state is JobState.AWAITING_APPROVAL or job.state.finished, job
            if job.id in self.terminal:
                assert job.state is self.terminal[job.id], (job, self.terminal[job.id])
            elif job.state.finished:
                self.terminal[job.id] = job.state

        # The audit chain verifies, and records one start and one end for each run.
        verdict = await store.check_audit()
        assert verdict.broken is None, verdict.broken
        starts: Counter[int] = Counter()
        ends: Counter[int] = Counter()
        async for record in store.iter_audit():
            job_id = record.event.job_id
            if job_id is not None and record.event.action == "job.start":
                starts[job_id] += 1
            elif job_id is not None and record.event.action == "job.end":
                ends[job_id] += 1
        assert starts == per_job, (starts, per_job)
        assert ends == per_job, (ends, per_job)

        # The store agrees with the reference model.
        assert sorted(jobs) == sorted(self.expected), (sorted(jobs), sorted(self.expected))
        for job_id, expected in self.expected.items():
            job = jobs[job_id]
            assert (job.command, job.requester, job.state) == (
                expected.command.name,
                expected.requester,
                expected.state,
            ), (job, expected)
            ran = 1 if expected.state is JobState.SUCCEEDED else 0
            assert per_job.get(job_id, 0) == ran, (job, runs)


@pytest.fixture
def model_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the model keeps its runs; a locked store fails fast."""
    monkeypatch.setattr(store_engine, "BUSY_TIMEOUT_MS", LOCKED_STORE_GIVES_UP_MS)
    monkeypatch.setattr(JobModel, "root", tmp_path, raising=False)
    return tmp_path


def test_jobs_run_at_most_once_and_only_when_allowed_and_approved(model_root: Path) -> None:
    """Random sequences of requests, votes, cancels and faults never break the invariants."""
    run_state_machine_as_test(JobModel, settings=PROFILE)


def test_a_quorum_holds_through_refusals_redeliveries_restarts_and_a_locked_store(
    model_root: Path,
) -> None:
    """One fixed walk through the model over the path random runs reach only sometimes."""
    model = JobModel()
    try:
        model.request(ALICE, "gate two")
        [job] = model.expected

        def say(user: str, verb: str) -> None:
            model._send(model._message(user, Action(verb, job=job)))

        steps: list[tuple[Callable[..., None], tuple[Any, ...]]] = [
            (say, (ALICE, "approve")),  # 1: her own job
            (say, (FRANK, "approve")),  # 2: holds a role, not leads
            (say, (MALLORY, "deny")),  # 3: holds no role
            (say, (BOB, "approve")),  # 4: counts, one more needed
            (say, (BOB, "approve")),  # 5: twice does not count
            (model.slack_delivers_again, (4,)),
            (model.restart, ()),
            (model.slack_delivers_again, (4,)),  # the store remembers it across the restart
            (model.message_while_the_store_is_locked, (CAROL, "approve", job)),  # 6: refused
            (model.slack_delivers_again, (6,)),  # this adapter saw it: dropped
            (model.restart, ()),
            (model.slack_delivers_again, (6,)),  # recorded once the store was back: dropped
            (say, (ERIN, "approve")),  # the second lead: the job runs
            (say, (CAROL, "approve")),  # too late
            (say, (ALICE, "cancel")),  # already ended
        ]
        for step, args in steps:
            step(*args)
            model.everything_holds()
        assert model.expected[job].state is JobState.SUCCEEDED
        assert model.expected[job].approvers == [who(BOB), who(ERIN)]
        assert read_runs(model.runs_log) == [Run(job, who(ALICE), model.expected[job].nonce)]
    finally:
        model.teardown()


# -- holes the model found, fixed: each failed before its fix --------------------------------


def test_a_redelivery_runs_once_when_the_first_delivery_could_not_be_recorded(
    model_root: Path,
) -> None:
    """One slash command, delivered twice, must run at most once."""
    model = JobModel()
    try:
        message = model._message(ALICE, Action("fast note", nonce="once"))
        with model._store_locked():  # away while the delivery is recorded...
            inbound = model.run(model._receive(message))
        assert inbound is not None
        said = model.run(model._answer(inbound))  # ...and back for the request itself
        assert said.outcome.state is JobState.SUCCEEDED, said.text
        model.restart()
        again = model.run(model._deliver(message))
        assert again is None, f"the redelivery ran as job {again.outcome.job_id}"
        assert [r.nonce for r in read_runs(model.runs_log)] == ["once"]
    finally:
        model.teardown()


HOLD = """#!/usr/bin/env bash
# @describe Record that it started, then wait for the test to let it finish.
printf 'started\n' >> {log}
while [ ! -e {go} ]; do sleep 0.05; done
echo finished
"""


def test_a_job_whose_end_could_not_be_recorded_ends_once_the_store_is_back(
    model_root: Path,
) -> None:
    """Once the store is writable again, a job whose script ended is in a terminal state."""
    catalog, runs, go = model_root / "catalog", model_root / "runs.log", model_root / "go"
    (catalog / "slow").mkdir(parents=True)
    script = HOLD.format(log=shlex.quote(str(runs)), go=shlex.quote(str(go)))
    (catalog / "slow" / "hold.sh").write_text(script)
    db = model_root / "opsroom.db"
    url = f"sqlite:///{db}"
    asyncio.run(_end_cannot_be_recorded(catalog, url, db, runs, go))


async def _end_cannot_be_recorded(catalog: Path, url: str, db: Path, runs: Path, go: Path) -> None:
    settings = Settings.model_validate({"store": {"url": url}})
    async with Bot.open(catalog_dir=str(catalog), store_url=url, settings=settings) as bot:
        store = bot.app.store
        asked = asyncio.create_task(bot.say("!slow hold", as_="local:alice"))
        job = await _until(lambda: _running_with_pid(store, runs), "the job to start")
        warned = _Warnings()
        jobs_log = logging.getLogger("opsroom.jobs")
        jobs_log.addHandler(warned)
        lock = sqlite3.connect(db, isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")
            go.touch()  # the script ends while the store cannot be written

            async def met_the_lock() -> bool:
                # The engine gave up on the store, or said it is waiting for it.
                return asked.done() or warned.seen

            await _until(met_the_lock, "the engine to meet the locked store")
        finally:
            lock.close()
            jobs_log.removeHandler(warned)
        with contextlib.suppress(StoreError):
            await asyncio.wait_for(asked, timeout=30)
        assert runs.read_text() == "started\n"

        async def ended() -> bool:
            current = await store.get_job(job)
            return current is not None and current.state.finished

        await _until(ended, f"job {job} to reach a terminal state", timeout=5)


class _Warnings(logging.Handler):
    """Notes that the supervisor said it could not keep something yet and will retry."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen = False

    def emit(self, record: logging.LogRecord) -> None:
        """Remember a retry warning; other warnings do not prove the store was met."""
        self.seen = self.seen or record.getMessage().startswith("could not keep")


async def _running_with_pid(store: Any, runs: Path) -> int | None:
    if not runs.exists():
        return None
    [job] = await store.find_jobs()
    return int(job.id) if job.state is JobState.RUNNING and job.pid else None


async def _until(check: Any, what: str, timeout: float = 30) -> Any:
    """Poll `check` until it gives something truthy; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (found := await check()):
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return found
