"""Workers (SPEC §8) with real processes: a bot (the engine, in this test process), `opsroom
worker` processes on two queues, and a throwaway PostgreSQL.

The bot here is the test process itself, so "never under the bot" is checked on the process
tree: the script reports its parent chain, which must hold its worker's pid and not ours.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opsroom.config import RunnerSettings, Settings, StoreSettings, WorkersSettings, load_settings
from opsroom.model.blocks import Code, Reply, Status
from opsroom.model.jobs import JobState
from opsroom.router.outcome import Outcome
from opsroom.testing import Bot
from pg_cluster import Cluster
from stores import new_store_url, row
from support import OPSROOM, Opsroom, async_wait_for, wait_for

HEARTBEAT = "0.5s"
LOST_AFTER = "3s"  # well under the 30 s default: a lost worker is found within seconds here

CHAIN = """
p=$$; chain=""
while [ "$p" -gt 1 ]; do
  chain="$chain $p"; stat=$(cat /proc/$p/stat); rest=${stat##*) }; set -- $rest; p=$2
done
echo "chain:$chain"
"""

PGID = 'stat=$(cat /proc/$$/stat); rest=${stat##*) }; set -- $rest; echo "pgid $3"\n'

EVENTS = """
ev() { printf '%s\\n' "$1" >&"$OPSROOM_EVENTS_FD"; }
echo "dry run: $OPSROOM_DRY_RUN"
ev '{"type":"progress","percent":50,"message":"half way"}'
ev '{"type":"table","columns":["host","rotated"],"rows":[["web1","3"]]}'
printf 'host,rotated\\nweb1,3\\n' > summary.csv
ev '{"type":"attachment","path":"summary.csv","content_type":"text/csv"}'
"""

SCRIPTS = {
    "lin/chain.sh": ('runs_on = "linux"', CHAIN),
    "win/chain.sh": ('runs_on = "windows"', CHAIN),
    "plain.sh": ("", CHAIN),
    "lin/count.sh": ('runs_on = "linux"', 'for i in $(seq 1 300); do echo "line $i"; done'),
    "lin/wait.sh": (
        'runs_on = "linux"\nbackground = true',
        PGID + "exec sleep 600",
    ),
    "doomed/wait.sh": (
        'runs_on = "doomed"\nbackground = true',
        PGID + "exec sleep 600",
    ),
    "doomed/quick.sh": ('runs_on = "doomed"', "echo quick"),
    "lin/secret.sh": (
        'runs_on = "linux"\nsecrets = ["W_TOKEN"]',
        'echo "token: $W_TOKEN"; echo "length: ${#W_TOKEN}"',
    ),
    "nobody/job.sh": ('runs_on = "nobody"', "echo never"),
    "lin/report.sh": ('runs_on = "linux"\ndry_run = true', EVENTS),
    "lin/one.sh": (
        'runs_on = "linux"\nconcurrency = 1\nbackground = true',
        'echo started; while [ ! -e "$OPSROOM_ARG_GATE" ]; do sleep 0.05; done; echo done',
        "# @arg gate! a file to wait for\n",
    ),
}
TOKEN = "s3cr3t-worker-token-4711"


def _script(directives: str, body: str, args: str = "") -> str:
    head = "".join(f"# opsroom: {line}\n" for line in directives.splitlines() if line)
    return f"#!/usr/bin/env bash\n{head}# @describe A command.\n{args}{body}\n"


def write_catalog(root: Path, scripts: Mapping[str, tuple[str, ...]]) -> Path:
    """A catalog folder holding `scripts` (path -> (directives, body[, argument tags]))."""
    for rel, parts in scripts.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_script(*parts))
    return root


@dataclass
class Place:
    """A store, a catalog, and where the workers keep their config and logs."""

    url: str
    catalog: Path
    folder: Path


@pytest.fixture(scope="module")
def place(postgres: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Place]:
    """One PostgreSQL database and catalog for the module's bot and workers."""
    folder = tmp_path_factory.mktemp("workers")
    catalog = write_catalog(folder / "catalog", SCRIPTS)
    with new_store_url("postgresql", folder, postgres) as url:
        yield Place(url, catalog, folder)


class WorkerProcess:
    """One `opsroom worker` process."""

    def __init__(self, place: Place, queue: str, name: str, *, catalog: Path | None = None):
        self.name = name
        self.queue = queue
        config = place.folder / f"{name}.toml"
        config.write_text(
            f'[store]\nurl = "{place.url}"\n'
            f'[catalog]\npath = "{catalog or place.catalog}"\ncache = false\n'
            f'[workers]\nheartbeat = "{HEARTBEAT}"\nlost_after = "{LOST_AFTER}"\n'
            '[secrets]\nW_TOKEN = "env:W_TOKEN_SOURCE"\n'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}
        env["W_TOKEN_SOURCE"] = TOKEN
        self.log = place.folder / f"{name}.log"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [OPSROOM, "worker", "--queue", queue, "--name", name, "--config", str(config)],
                cwd=place.folder,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.url = place.url
        wait_for(self._registered, 60, what=f"worker {name} to register")

    @property
    def pid(self) -> int:
        """The worker process's pid."""
        return self.proc.pid

    def _registered(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"worker {self.name} exited:\n{self.log.read_text()[-3000:]}")
        found = row(
            self.url,
            "SELECT id FROM workers WHERE name = :n AND stopped_at IS NULL AND lost_at IS NULL",
            n=self.name,
        )
        return found is not None

    def stop(self) -> None:
        """SIGTERM, and wait for it to end."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@contextmanager
def running_worker(
    place: Place, queue: str, name: str, *, catalog: Path | None = None
) -> Iterator[WorkerProcess]:
    """A worker for the length of the block."""
    worker = WorkerProcess(place, queue, name, catalog=catalog)
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture(scope="module")
def workers(place: Place) -> Iterator[dict[str, WorkerProcess]]:
    """Two workers on two queues, for the whole module."""
    with (
        running_worker(place, "linux", "lin-1") as linux,
        running_worker(place, "windows", "win-1") as windows,
    ):
        yield {"linux": linux, "windows": windows}


def settings_for(place: Place, **runner: object) -> Settings:
    """The bot's settings: the module's store, quick heartbeats."""
    return Settings(
        store=StoreSettings(url=place.url),
        workers=WorkersSettings.model_validate({"heartbeat": HEARTBEAT, "lost_after": LOST_AFTER}),
        runner=RunnerSettings.model_validate(runner),
    )


@asynccontextmanager
async def bot_on(place: Place, **runner: object) -> AsyncIterator[Bot]:
    """The bot: this process, on the module's store and catalog."""
    async with Bot.open(
        catalog_dir=str(place.catalog), store_url=place.url, settings=settings_for(place, **runner)
    ) as bot:
        yield bot


@dataclass
class BotRun:
    """One `opsroom run --json` process: its pid, replies and outcome."""

    pid: int
    replies: list[str]
    outcome: dict[str, Any]

    @property
    def chain(self) -> list[int]:
        """The parent chain the script printed (itself first)."""
        output = str(self.outcome["output"])
        line = next(t for t in output.splitlines() if t.startswith("chain:"))
        return [int(p) for p in line.removeprefix("chain:").split()]


def run_bot(
    place: Place, text: str, *, env: dict[str, str] | None = None, wait: bool = True
) -> BotRun:
    """`opsroom run` as the bot, a process of its own (whose pid the job's tree must lack).

    `wait=False`: `--no-wait`, the job is queued for a serving process and it returns.
    """
    config = place.folder / "bot.toml"
    config.write_text(
        f'[store]\nurl = "{place.url}"\n[catalog]\npath = "{place.catalog}"\ncache = false\n'
        f'[workers]\nheartbeat = "{HEARTBEAT}"\nlost_after = "{LOST_AFTER}"\n'
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")}
    proc = subprocess.Popen(
        [OPSROOM, "run", "--config", str(config), "--json", *([] if wait else ["--no-wait"]), text],
        cwd=place.folder,
        env={**base, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    out, err = proc.communicate(timeout=120)
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert lines, f"opsroom run printed nothing (exit {proc.returncode}): {err}"
    return BotRun(proc.pid, [json.dumps(r) for r in lines[:-1]], lines[-1])


async def output_line(bot: Bot, job_id: int, prefix: str) -> str:
    """The first kept output line of the job starting with `prefix`, once there is one."""

    async def found() -> str | None:
        lines = await bot.app.store.output(job_id)
        return next((t for _, t in lines if t.startswith(prefix)), None)

    line = await async_wait_for(found, 60, what=f"job {job_id} to print {prefix!r}")
    assert line is not None
    return line


@dataclass
class Started:
    """A message still being answered: its task, its job, and the replies so far."""

    task: asyncio.Task[Outcome]
    job_id: int
    replies: list[Reply]

    async def result(self) -> Outcome:
        """The outcome, once the answer (and its job) is complete."""
        return await asyncio.wait_for(self.task, 60)

    def said(self, words: str) -> bool:
        """Whether a status line the room was shown holds `words`."""
        return any(words in text for text in statuses(tuple(self.replies)))


async def started_job(bot: Bot, text: str) -> Started:
    """Send `text` without waiting for the answer."""
    before = await bot.app.store.list_jobs(limit=1)
    after = before[0].id if before else 0
    replies: list[Reply] = []

    async def send(reply: Reply) -> None:
        replies.append(reply)

    task = asyncio.create_task(bot.handle(text, send))

    async def made() -> int | None:
        jobs = await bot.app.store.list_jobs(limit=5)
        return next((j.id for j in jobs if j.id > after), None)

    job_id = await async_wait_for(made, 30, what=f"{text!r} to record a job")
    assert job_id is not None
    return Started(task, job_id, replies)


def group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies count as gone)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return any(
        _pgid_of(p) == pgid and _state_of(p) != "Z" for p in os.listdir("/proc") if p.isdigit()
    )


def _stat(pid: str) -> list[str]:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return text[text.rfind(")") + 2 :].split()


def _pgid_of(pid: str) -> int | None:
    fields = _stat(pid)
    return int(fields[2]) if len(fields) > 2 else None


def _state_of(pid: str) -> str:
    fields = _stat(pid)
    return fields[0] if fields else "Z"


def statuses(replies: tuple[Reply, ...]) -> list[str]:
    """The text of every status line the room was shown, in order."""
    return [b.text for r in replies for b in r.blocks if isinstance(b, Status)]


# --------------------------------------------------------------------------- where jobs run


def test_a_runs_on_job_runs_on_its_queues_worker_never_under_the_bot(
    place: Place, workers: dict[str, WorkerProcess]
) -> None:
    linux = run_bot(place, "!lin chain")
    windows = run_bot(place, "!win chain")
    assert linux.outcome["state"] == "succeeded", linux
    assert windows.outcome["state"] == "succeeded", windows
    on_linux, on_windows = linux.chain, windows.chain
    assert linux.pid not in on_linux, "a runs_on job never runs under the bot"
    assert windows.pid not in on_windows
    assert workers["linux"].pid in on_linux
    assert workers["windows"].pid not in on_linux
    assert workers["windows"].pid in on_windows
    assert workers["linux"].pid not in on_windows
    assert any("succeeded" in r for r in linux.replies), "the room is told as in embedded mode"


async def test_300_lines_printed_on_a_worker_arrive_complete_and_in_order(
    place: Place, workers: dict[str, WorkerProcess]
) -> None:
    async with bot_on(place) as bot:
        said = await bot.say("!lin count")
        kept = await bot.app.store.output(said.job_id or 0)
    expected = [f"line {i}" for i in range(1, 301)]
    assert said.outcome.state is JobState.SUCCEEDED, said
    assert [text for _, text in kept] == expected
    assert said.outcome.output.splitlines() == expected
    # The room sees what embedded mode shows: the last lines, and how many more there were.
    code = [b for r in said.replies for b in r.blocks if isinstance(b, Code)]
    assert code[-1].lines[-1] == "line 300"
    assert code[-1].more + len(code[-1].lines) == 300


async def test_a_secret_is_resolved_on_the_worker_and_masked(
    place: Place, workers: dict[str, WorkerProcess]
) -> None:
    # The bot's own settings hold no such secret: only the worker can resolve it.
    async with bot_on(place) as bot:
        said = await bot.say("!lin secret")
    assert said.outcome.state is JobState.SUCCEEDED, said
    assert said.outcome.output.splitlines() == ["token: ********", f"length: {len(TOKEN)}"]
    assert TOKEN not in said.text


async def test_a_queue_without_a_live_worker_waits_and_says_so_and_never_runs_elsewhere(
    place: Place, workers: dict[str, WorkerProcess]
) -> None:
    async with bot_on(place) as bot:
        started = await started_job(bot, "!nobody job")
        job_id = started.job_id

        async def waiting() -> bool:
            job = await bot.job(job_id)
            return (
                job.state is JobState.QUEUED
                and (await bot.app.store.remote_job(job_id)) is not None
            )

        await async_wait_for(waiting, 30, what="the job to be handed to queue nobody")
        cancel = await bot.say(f"!cancel {job_id}")
        outcome = await started.result()
        kept = await bot.app.store.output(job_id)
    assert started.said(f"job {job_id} nobody job is waiting for a worker on queue nobody")
    assert "cancelled before it started" in cancel.text
    assert outcome.state is JobState.CANCELLED
    assert kept == [], "it never ran anywhere"


def test_local_false_sends_commands_without_runs_on_to_queue_default(
    place: Place, workers: dict[str, WorkerProcess]
) -> None:
    with running_worker(place, "default", "default-1") as default:
        said = run_bot(place, "!plain", env={"OPSROOM_RUNNER_LOCAL": "false"})
    assert said.outcome["state"] == "succeeded", said
    assert default.pid in said.chain
    assert said.pid not in said.chain, "the bot's host runs nothing"
    here = run_bot(place, "!plain")
    assert here.pid in here.chain, "by default it runs where the bot runs"


async def test_with_sqlite_runs_on_and_local_false_are_refused_before_a_job_exists(
    place: Place, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path}/t.db"
    for runner, text in (({}, "!lin chain"), ({"local": False}, "!plain")):
        settings = Settings(runner=RunnerSettings.model_validate(runner))
        async with Bot.open(
            catalog_dir=str(place.catalog), store_url=store, settings=settings
        ) as bot:
            said = await bot.say(text)
            jobs = await bot.app.store.list_jobs()
        assert said.refused, said
        assert "workers need a PostgreSQL store; nothing was run" in said.text
        assert jobs == []


# --------------------------------------------------------------------------- control


async def test_cancel_from_chat_ends_the_job_and_its_process_group_on_the_worker(
    place: Place, workers: dict[str, WorkerProcess]
) -> None:
    async with bot_on(place) as bot:
        started = await started_job(bot, "!lin wait")
        job_id = started.job_id
        pgid = int((await output_line(bot, job_id, "pgid ")).split()[1])
        assert group_alive(pgid)
        cancel = await bot.say(f"!cancel {job_id}")
        outcome = await started.result()
    assert outcome.state is JobState.CANCELLED, started.replies
    assert f"job {job_id} lin wait: cancelled" in cancel.text
    assert not group_alive(pgid), "the whole process group on the worker is gone"


async def test_a_worker_killed_mid_job_has_it_interrupted_once_and_never_rerun(
    place: Place, workers: dict[str, WorkerProcess]
) -> None:
    async with bot_on(place) as bot:
        with running_worker(place, "doomed", "doomed-1") as doomed:
            started = await started_job(bot, "!doomed wait")
            job_id = started.job_id
            pgid = int((await output_line(bot, job_id, "pgid ")).split()[1])
            doomed.proc.kill()  # kill -9: no goodbye, no heartbeat ever again
            doomed.proc.wait(30)
            outcome = await started.result()
        assert outcome.state is JobState.INTERRUPTED, started.replies
        told = [s for s in statuses(tuple(started.replies)) if "was interrupted" in s]
        assert told == [
            f"job {job_id} doomed wait was interrupted: worker doomed-1 on {os.uname().nodename}"
            " stopped sending heartbeats while running it; it was not re-run"
        ]
        job = await bot.job(job_id)
        assert job.notified, "told once: no other process tells again"
        trail = [a.event for a in await bot.app.store.audit(limit=200)]
        ends = [(e.action, e.outcome) for e in trail if e.job_id == job_id]
        assert [e for e in ends if e[0] == "job.end"] == [("job.end", "interrupted")]
        # A new worker on the queue runs what comes after, never the interrupted job.
        with running_worker(place, "doomed", "doomed-2"):
            after = await bot.say("!doomed quick")
        assert after.outcome.state is JobState.SUCCEEDED, after
        again = await bot.job(job_id)
        lines = await bot.app.store.output(job_id)
    assert again.state is JobState.INTERRUPTED
    assert [t for _, t in lines if t.startswith("pgid ")] == [f"pgid {pgid}"], "never re-run"
    # What the dead worker left running on this host is ended, not left behind.
    wait_for(lambda: not group_alive(pgid), 30, what="the orphaned script to be ended")


async def test_a_per_command_limit_holds_across_workers(
    place: Place, workers: dict[str, WorkerProcess]
) -> None:
    gate = place.folder / "gate"
    with running_worker(place, "linux", "lin-2") as second_worker:
        async with bot_on(place) as bot:
            first = await started_job(bot, f"!lin one {gate}")
            await output_line(bot, first.job_id, "started")
            second = await started_job(bot, f"!lin one {gate}")
            behind = f"job {second.job_id} is queued behind job {first.job_id}"
            await async_wait_for(lambda: second.said(behind), 30, what="the second to queue")
            waiting = await bot.job(second.job_id)
            gate.touch()
            done = [await first.result(), await second.result()]
            jobs = [await bot.job(first.job_id), await bot.job(second.job_id)]
    assert waiting.state is JobState.QUEUED, "it waited while the other worker ran the first"
    assert [o.state for o in done] == [JobState.SUCCEEDED, JobState.SUCCEEDED]
    owners = {j.owner.split(":")[1] for j in jobs if j.owner}
    assert owners == {str(workers["linux"].pid), str(second_worker.pid)}, "two workers ran them"
    assert jobs[0].finished_at is not None
    assert jobs[1].started_at is not None
    assert jobs[1].started_at >= jobs[0].finished_at


async def test_a_job_queued_for_a_worker_is_said_to_start_only_once_the_worker_started_it(
    place: Place, workers: dict[str, WorkerProcess]
) -> None:
    gate = place.folder / "gate-announce"
    room: list[Reply] = []

    async def send(reply: Reply) -> None:
        room.append(reply)

    def said() -> list[str]:
        return statuses(tuple(room))

    with running_worker(place, "linux", "lin-3"):
        async with bot_on(place) as bot:
            first = await started_job(bot, f"!lin one {gate}")
            await output_line(bot, first.job_id, "started")
            # Asked with --no-wait and adopted by this bot: it says "starting" as it runs it.
            job_id = int(run_bot(place, f"!lin one {gate}", wait=False).outcome["job_id"])
            adopting = asyncio.create_task(bot.app.dispatcher.adopt_orphans(lambda _: send))
            # The other worker takes it, and its claim finds the one slot taken.
            behind = f"job {job_id} is queued behind job {first.job_id}"
            await async_wait_for(
                lambda: any(behind in t or "is starting" in t for t in said()),
                30,
                what="the worker to queue it",
            )
            while_queued, waiting = said(), await bot.job(job_id)
            gate.touch()
            outcomes = await asyncio.wait_for(adopting, 60)
            await first.result()
    assert waiting.state is JobState.QUEUED
    assert waiting.started_at is None
    assert [o.state for o in outcomes] == [JobState.SUCCEEDED]
    requester = waiting.requester
    queued = f"job {job_id} lin one is queued for a worker on queue linux — `!cancel {job_id}`"
    starting = f"job {job_id} lin one (queued by {requester}) is starting"
    assert not any("is starting" in t for t in while_queued), "told it starts while queued"
    texts = said()
    assert [t for t in texts if t.startswith(queued)] == [texts[0]], texts
    assert texts.count(starting) == 1, texts
    assert next(i for i, t in enumerate(texts) if behind in t) < texts.index(starting)
    # Said before anything the job printed or how it ended.
    shown = [r for r in room if any(isinstance(b, Code) for b in r.blocks)]
    at = {id(r): i for i, r in enumerate(room)}
    starting_at = next(i for i, r in enumerate(room) if starting in statuses((r,)))
    assert shown, "its output was shown"
    assert all(at[id(r)] > starting_at for r in shown)
    assert "succeeded" in texts[-1], texts


async def test_a_worker_whose_catalog_differs_refuses_the_job_and_runs_nothing(
    place: Place, workers: dict[str, WorkerProcess]
) -> None:
    theirs = write_catalog(
        place.folder / "stale-catalog", {"stale/job.sh": ('runs_on = "stale"', "echo old")}
    )
    write_catalog(place.catalog, {"stale/job.sh": ('runs_on = "stale"', "echo new")})
    with running_worker(place, "stale", "stale-1", catalog=theirs):
        async with bot_on(place) as bot:
            said = await bot.say("!stale job")
            kept = await bot.app.store.output(said.job_id or 0)
    assert said.outcome.state is JobState.FAILED, said
    assert (
        f"job {said.job_id} stale job: not run — worker stale-1 has a different copy of "
        "stale/job.sh than the bot checked; bring its catalog in step and ask again"
    ) in said.text
    assert kept == [], "nothing ran"


def test_opsroom_workers_lists_each_worker_and_what_it_runs(
    place: Place, workers: dict[str, WorkerProcess]
) -> None:
    config = place.folder / "lin-1.toml"
    listed = subprocess.run(
        [OPSROOM, "workers", "--config", str(config), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")},
    )
    assert listed.returncode == 0, listed.stderr
    by_name = {w["name"]: w for w in json.loads(listed.stdout)}
    assert {"lin-1", "win-1"} <= set(by_name)
    lin = by_name["lin-1"]
    assert (lin["queue"], lin["state"], lin["host"]) == ("linux", "live", os.uname().nodename)
    assert lin["os"].startswith("Linux")
    assert lin["version"]
    table = subprocess.run(
        [OPSROOM, "workers", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("OPSROOM_")},
    )
    header = table.stdout.splitlines()[0].split()
    assert header == [
        "name",
        "queue",
        "state",
        "host",
        "os",
        "version",
        "catalog",
        "heartbeat",
        "jobs",
    ]


def _console(place: Place, folder: Path) -> tuple[int, str, list[dict[str, Any]]]:
    """`opsroom serve` on the module's store: the /workers page and /api/v1/workers."""
    from test_web_serve import start_serve

    env = {"OPSROOM_STORE_URL": place.url, "OPSROOM_CATALOG_PATH": str(place.catalog)}
    served = start_serve(folder, env=env)
    try:
        with served.login() as client:
            page = client.get("/workers")
            api = client.get("/api/v1/workers")
    finally:
        served.stop()
    assert api.status_code == 200, api.text
    listed: list[dict[str, Any]] = api.json()
    return page.status_code, page.text, listed


async def test_the_console_lists_workers_and_the_jobs_they_run(
    place: Place, workers: dict[str, WorkerProcess], tmp_path: Path
) -> None:
    async with bot_on(place) as bot:
        started = await started_job(bot, "!lin wait")
        await output_line(bot, started.job_id, "pgid ")
        status, page, listed = await asyncio.to_thread(_console, place, tmp_path)
        await bot.say(f"!cancel {started.job_id}")
        await started.result()
    assert status == 200
    assert 'id="worker-lin-1"' in page
    assert f'<a href="/jobs/{started.job_id}">{started.job_id}</a>' in page
    lin = next(w for w in listed if w["name"] == "lin-1")
    assert (lin["queue"], lin["state"], lin["running_jobs"]) == ("linux", "live", [started.job_id])
    assert {w["name"] for w in listed} >= {"lin-1", "win-1"}


async def test_a_worker_without_the_jobs_catalog_commit_refuses_it(
    place: Place, workers: dict[str, WorkerProcess], tmp_path: Path
) -> None:
    from gitrepo import make_remote

    remote = make_remote(tmp_path)
    script = ('runs_on = "gitq"', "echo from git")
    remote.write("gitq/job.sh", _script(*script))
    commit = remote.commit("a job for queue gitq")
    remote.push()
    # The worker has the very same script, but from a folder: not the commit the job names.
    folder = write_catalog(tmp_path / "plain", {"gitq/job.sh": script})
    work = tmp_path / "work"
    work.mkdir()
    (work / "opsroom.toml").write_text(
        f'[store]\nurl = "{place.url}"\n'
        f'[catalog]\ngit = "{remote.url}"\npoll_interval = "0"\ncache = false\n'
    )
    settings = load_settings(str(work / "opsroom.toml"), environ={})
    with running_worker(place, "gitq", "gitq-1", catalog=folder):
        async with Bot.open(settings=settings, store_url=place.url) as bot:
            assert bot.app.deployer.live.current.commit == commit
            said = await bot.say("!gitq job")
            kept = await bot.app.store.output(said.job_id or 0)
    assert said.outcome.state is JobState.FAILED, said
    assert (
        f"worker gitq-1 does not have catalog commit {commit[:12]} (it has a folder outside "
        "git); update its catalog and ask again"
    ) in said.text
    assert kept == [], "nothing ran"


def test_a_worker_refuses_bad_input_and_a_sqlite_store_before_opening_anything(
    opsroom: Opsroom, workdir: Path
) -> None:
    bad = opsroom("worker", "--queue", "two words")
    assert bad.code == 2
    assert "'two words': a queue name is letters, digits and . _ : - (at most 200)" in bad.stderr
    on_sqlite = opsroom("worker", "--queue", "linux")
    assert on_sqlite.code == 2
    assert on_sqlite.stderr.strip() == (
        'opsroom: workers need a PostgreSQL store ([store] url = "postgresql://..."); '
        "sqlite:///opsroom.db is a SQLite file only this host can open"
    )
    assert list(workdir.iterdir()) == [], "nothing was created"


async def test_events_attachments_and_dry_run_come_through_a_worker_as_in_embedded_mode(
    place: Place, workers: dict[str, WorkerProcess]
) -> None:
    async with bot_on(place) as bot:
        said = await bot.say("!lin report --dry-run")
        events = await bot.app.store.events(said.job_id or 0)
        files = await bot.attachments(said.job_id or 0)
    assert said.outcome.state is JobState.SUCCEEDED, said
    assert said.outcome.output.splitlines() == ["dry run: 1"]
    shown = [type(b).__name__ for r in said.replies for b in r.blocks]
    assert "Progress" in shown
    assert "Table" in shown
    assert "File" in shown
    assert [e["type"] for e in events] == ["progress", "table", "attachment"]
    assert [(f.name, f.text) for f in files] == [("summary.csv", "host,rotated\nweb1,3\n")]
