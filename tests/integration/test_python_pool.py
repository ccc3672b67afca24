"""Python jobs forked from a warm interpreter (runner/pool.py): faster, and just as isolated.

Real fork servers, real jobs through build_launch + run_local, checked from /proc and from
what the scripts themselves see; each pooled run is compared with a cold one.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from types import MappingProxyType

import pytest

from opsroom.config import RunnerSettings, Settings, load_settings
from opsroom.errors import ConfigError
from opsroom.model.commands import CommandSpec, Invocation, Language
from opsroom.model.jobs import ExitEvent, JobEvent, JobState, OutputLine, TableEvent
from opsroom.runner.argv import Launch, build_launch
from opsroom.runner.local import run_local
from opsroom.runner.pep723 import ensure_environment
from opsroom.runner.pool import PoolStats, PythonPool
from opsroom.runner.tree import job_processes, new_token
from opsroom.testing import Bot
from support import alive, async_wait_for, ignored_in, started_ignoring

MODES = ["cgroup", "fallback"]

# What a job can tell about itself: enough to check where it runs and what it shares.
WHOAMI = """
import json, os, random, sys


def main():
    import json as again
    again.runs = getattr(again, "runs", 0) + 1  # module state: must never carry over
    token = os.environ["OPSROOM_JOB_TOKEN"]
    with open("/proc/self/environ", "rb") as f:
        started_with = f.read().split(b"\\0")
    with open("/proc/self/cgroup") as f:
        v2 = [line[3:] for line in f.read().splitlines() if line.startswith("0::")]
    print(json.dumps({
        "pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgid(0), "sid": os.getsid(0),
        "runs": again.runs, "cgroup": v2[0] if v2 else "",
        "token_in_environ": ("OPSROOM_JOB_TOKEN=" + token).encode() in started_with,
        "stdin": os.readlink("/proc/self/fd/0"),
        "events_fd": os.environ["OPSROOM_EVENTS_FD"],
        "cwd": os.getcwd(),
        "random": random.random(),
    }))
"""


class Jobs:
    """Scripts in a catalog of their own, run cold or from one pool."""

    def __init__(self, tmp_path: Path, pool: PythonPool, mode: str = "cgroup") -> None:
        self.pool = pool
        self.settings = RunnerSettings(cgroups=mode == "cgroup")
        self.catalog = tmp_path / "catalog"
        self.catalog.mkdir(exist_ok=True)
        self.work = tmp_path / "work"
        self.work.mkdir(exist_ok=True)

    def launch(
        self,
        text: str,
        *,
        name: str = "job.py",
        secrets: dict[str, str] | None = None,
        token: str | None = None,
        python: str | None = None,
    ) -> Launch:
        (self.catalog / name).write_text(textwrap.dedent(text), encoding="utf-8")
        spec = CommandSpec(
            name="t", path=name, language=Language.PYTHON, secrets=tuple(secrets or {})
        )
        return build_launch(
            spec,
            Invocation("t", MappingProxyType({})),
            catalog_root=self.catalog,
            job_id=7,
            requester="local:alice",
            room="local:term",
            settings=self.settings,
            secrets=secrets or {},
            workdir=self.work,
            token=token or new_token(),
            python=python,
        )

    def script_launch(self, text: str, *args: str, name: str = "cli.py") -> Launch:
        """`python <script> <args>`, as an argparse/click/typer script is launched."""
        boot = self.launch("def main():\n    pass\n", name="unused.py")
        (self.catalog / name).write_text(textwrap.dedent(text), encoding="utf-8")
        script = str(self.catalog / name)
        return Launch((boot.argv[0], script, *args), boot.env, boot.cwd, boot.limits, warm=True)

    async def run(
        self, launch: Launch, *, pooled: bool = True, **kw: object
    ) -> tuple[ExitEvent, list[JobEvent]]:
        events: list[JobEvent] = []
        end = await run_local(
            launch,
            on_event=events.append,
            pool=self.pool if pooled else None,
            **{"timeout": 60.0, "kill_grace": 1.0, **kw},  # type: ignore[arg-type]
        )
        return end, events

    async def warm(self, launch: Launch) -> None:
        """The first job of an environment starts its server (and runs cold itself)."""
        misses = self.pool.stats().misses
        end, _ = await self.run(launch)
        assert end.state is JobState.SUCCEEDED
        assert self.pool.stats().misses == misses + 1


def lines(events: list[JobEvent], stream: str = "stdout") -> list[str]:
    return [e.text for e in events if isinstance(e, OutputLine) and e.stream == stream]


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


@pytest.fixture
async def pool() -> AsyncIterator[PythonPool]:
    pool = PythonPool(4)
    yield pool
    await pool.close()


@pytest.mark.parametrize("mode", MODES)
async def test_a_job_is_a_fresh_fork_of_the_warm_server_in_its_own_session_and_cgroup(
    tmp_path: Path, pool: PythonPool, mode: str
) -> None:
    jobs = Jobs(tmp_path, pool, mode)
    seen = []
    for _ in range(3):
        launch = jobs.launch(WHOAMI)
        end, events = await jobs.run(launch)
        assert end == ExitEvent(0, JobState.SUCCEEDED)
        seen.append((json.loads(lines(events)[0]), launch.env["OPSROOM_JOB_TOKEN"]))
    (cold, _), *forked = seen
    assert cold["ppid"] == os.getpid(), "the first job of an environment starts cold"
    server = forked[0][0]["ppid"]
    assert server != os.getpid()
    assert any(arg.endswith("python_pool.py") for arg in cmdline(server))
    assert {me["ppid"] for me, _ in forked} == {server}, "one server per environment"
    for me, token in forked:
        assert me["pid"] == me["pgid"] == me["sid"], "a session and process group of its own"
        assert me["runs"] == 1, "nothing a job did to a module reaches the next"
        assert me["token_in_environ"], "found by its token in /proc like any job process"
        assert me["stdin"] == "/dev/null"
        assert me["cwd"] == str(jobs.work)
        if mode == "cgroup":
            assert me["cgroup"].endswith(f"/opsroom-job-{token}")
    assert forked[0][0]["pid"] != forked[1][0]["pid"]
    # Python's own after-fork steps ran in each (a child born in its cgroup is forked by
    # clone3, not os.fork): `random` was seeded afresh, so no two jobs share a sequence.
    assert forked[0][0]["random"] != forked[1][0]["random"]
    assert pool.stats().size == 1
    assert (pool.stats().hits, pool.stats().misses) == (2, 1)


# Looks for any value shaped like another job's secret in its own memory: a server that
# had read a job's environment would have left it in the heap every later job copies.
SNOOP = """
import json, os, re


def main():
    shape = re.compile(("SECRET" + "POOL") + rb"[0-9a-f]{32}".decode())
    found = []
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
        for line in maps:
            span, perms = line.split()[:2]
            start, end = (int(x, 16) for x in span.split("-"))
            if not perms.startswith("r") or line.rstrip().endswith(("[vvar]", "[vsyscall]")):
                continue
            try:
                mem.seek(start)
                chunk = mem.read(end - start)
            except OSError:
                continue
            found += [m.decode() for m in re.findall(shape.pattern.encode(), chunk)]
    with open(f"/proc/{os.getppid()}/environ", "rb") as f:
        parent_env = f.read().decode(errors="replace")
    print(json.dumps({"env": sorted(os.environ), "found": found, "parent_env": parent_env}))
"""


async def test_a_job_sees_no_other_jobs_environment_or_secret(
    tmp_path: Path, pool: PythonPool
) -> None:
    jobs = Jobs(tmp_path, pool)
    secret = "SECRETPOOL" + os.urandom(16).hex()
    await jobs.warm(jobs.launch("def main():\n    pass\n"))
    owner = jobs.launch(
        "import os\n\ndef main():\n    print(len(os.environ['API_KEY']))\n",
        name="owner.py",
        secrets={"API_KEY": secret},
    )
    end, events = await jobs.run(owner)
    assert (end.state, lines(events)) == (JobState.SUCCEEDED, ["42"])
    snoop = jobs.launch(SNOOP, name="snoop.py")
    end, events = await jobs.run(snoop)
    assert end.state is JobState.SUCCEEDED, lines(events, "stderr")
    pooled = json.loads(lines(events)[0])
    _, events = await jobs.run(snoop, pooled=False)
    cold = json.loads(lines(events)[0])
    assert pooled["found"] == [], "another job's secret is in this job's memory"
    assert "API_KEY" not in pooled["env"]
    assert pooled["env"] == cold["env"], "exactly the environment a fresh interpreter gets"
    assert secret not in pooled["parent_env"]
    assert "OPSROOM_JOB_TOKEN" not in pooled["parent_env"], "the server carries no job's token"
    assert pool.stats().hits == 2


# Scripts whose pooled run must look exactly like a fresh interpreter's, run both ways.
BOOTSTRAPPED = {
    "rows": """
        def main():
            return [{"host": "a", "up": True}, {"host": "b", "up": False}]
    """,
    "raises": """
        def helper():
            raise RuntimeError("disk full")

        def main():
            helper()
    """,
    "no-main": "x = 1\n",
    "exits": """
        import sys

        def main():
            print("partial")
            sys.exit(4)
    """,
}
SCRIPTS = {
    "argparse": """
        import argparse, sys
        parser = argparse.ArgumentParser()
        parser.add_argument("--name")
        args = parser.parse_args()
        print(f"name={args.name} main={__name__} argv={sys.argv[1:]}")
        raise SystemExit(3)
    """,
    "bad-option": """
        import argparse
        argparse.ArgumentParser(prog="cli").parse_args()
    """,
    "uncaught": """
        def deeper():
            return 1 / 0

        if __name__ == "__main__":
            deeper()
    """,
    "exit-message": """
        import sys
        sys.exit("bye for now")
    """,
    "at-exit": """
        import atexit, os, threading
        done = threading.Event()
        out = open(os.path.join(os.getcwd(), "left-open.txt"), "w")  # never closed
        out.write("kept")

        def later():
            done.wait()
            print("thread finished")

        threading.Thread(target=later).start()
        atexit.register(lambda: print("atexit ran"))
        print("main done")
        done.set()
    """,
}


def _same(events: list[JobEvent], work: Path) -> list[object]:
    """Events with what differs between any two runs (pids, the job's folder) masked."""
    masked: list[object] = []
    for e in events:
        if isinstance(e, OutputLine):
            masked.append((e.stream, re.sub(r"\d{3,}", "N", e.text.replace(str(work), "W"))))
        else:
            masked.append(e)
    return masked


@pytest.mark.parametrize("name", sorted(BOOTSTRAPPED) + sorted(SCRIPTS))
async def test_a_pooled_run_is_the_same_as_a_cold_one(
    tmp_path: Path, pool: PythonPool, name: str
) -> None:
    jobs = Jobs(tmp_path, pool)
    await jobs.warm(jobs.launch("def main():\n    pass\n", name="warm.py"))
    if name in BOOTSTRAPPED:
        launch = jobs.launch(BOOTSTRAPPED[name])
    else:
        launch = jobs.script_launch(SCRIPTS[name], "--name", "$(touch x) `id` -v")
    left_open = jobs.work / "left-open.txt"
    results = []
    for pooled in (False, True):
        left_open.unlink(missing_ok=True)
        end, events = await jobs.run(launch, pooled=pooled)
        kept = left_open.read_text() if left_open.exists() else None
        results.append((end, _same(events, jobs.work), kept))
    assert results[0] == results[1]
    assert pool.stats().hits == 1, "the second run was forked"
    if name == "rows":
        assert any(isinstance(e, TableEvent) for e in results[1][1])
    if name == "uncaught":
        assert "python_pool" not in str(results[1][1]), "only the script's own frames"
    if name == "at-exit":
        assert results[1][2] == "kept", "what the script left open is flushed at its exit"
        assert ("stdout", "thread finished") in results[1][1]
        assert ("stdout", "atexit ran") in results[1][1]


TREE = """
import os, signal, subprocess, sys, time

signal.signal(signal.SIGTERM, signal.SIG_IGN)


def main():
    child = subprocess.Popen(["sleep", "300"])
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(1, f"daemon={os.getpid()}\\n".encode())  # one write: never interleaved
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            while True:
                time.sleep(1)
        os._exit(0)
    os.write(1, f"main={os.getpid()}\\nchild={child.pid}\\n".encode())
    while True:
        time.sleep(0.1)
"""


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("how", ["timeout", "cancel"])
async def test_timeout_and_cancel_end_a_pooled_jobs_whole_tree(
    tmp_path: Path, pool: PythonPool, mode: str, how: str
) -> None:
    jobs = Jobs(tmp_path, pool, mode)
    await jobs.warm(jobs.launch("def main():\n    pass\n", name="warm.py"))
    launch = jobs.launch(TREE)
    token = launch.env["OPSROOM_JOB_TOKEN"]
    events: list[JobEvent] = []
    cancel = asyncio.Event()

    def pids() -> dict[str, int]:
        return {k: int(v) for t in lines(events) for k, v in [t.split("=", 1)]}

    async def press() -> None:
        await async_wait_for(lambda: len(pids()) == 3, what="the tree to start")
        if how == "cancel":
            cancel.set()

    _, end = await asyncio.gather(
        press(),
        run_local(
            launch,
            on_event=events.append,
            pool=pool,
            timeout=2.0 if how == "timeout" else 60,
            kill_grace=0.5,
            cancel=cancel,
        ),
    )
    assert end.state is (JobState.TIMED_OUT if how == "timeout" else JobState.CANCELLED)
    assert pool.stats().hits == 1
    assert {k: p for k, p in pids().items() if alive(p)} == {}
    assert job_processes(token) == []
    assert [
        top for top, dirs, _ in os.walk("/sys/fs/cgroup") if f"opsroom-job-{token}" in dirs
    ] == []


async def test_a_killed_server_is_replaced_and_the_next_job_runs(
    tmp_path: Path, pool: PythonPool
) -> None:
    jobs = Jobs(tmp_path, pool)
    await jobs.warm(jobs.launch(WHOAMI))
    end, events = await jobs.run(jobs.launch(WHOAMI))
    first = json.loads(lines(events)[0])["ppid"]
    os.kill(first, signal.SIGKILL)
    await async_wait_for(lambda: not alive(first), what="the server to die")
    for _ in range(2):
        # The first may find the server dead before the pool has noticed: it starts cold.
        end, events = await jobs.run(jobs.launch(WHOAMI))
        assert end.state is JobState.SUCCEEDED
    second = json.loads(lines(events)[0])["ppid"]
    assert second not in (first, os.getpid()), "forked from a new server"
    assert pool.stats().size == 1


WAITS = """
import os, sys, time


def main():
    print(f"waiting {os.getppid()}", flush=True)
    while not os.path.exists(os.path.join(os.getcwd(), "go")):
        time.sleep(0.01)
    print("went on")
    return 5
"""


async def test_a_job_outlives_its_killed_server_and_ends_with_its_own_status(
    tmp_path: Path, pool: PythonPool
) -> None:
    # Without a cgroup opsroom is the jobs' subreaper: the orphaned job comes to it.
    jobs = Jobs(tmp_path, pool, "fallback")
    await jobs.warm(jobs.launch("def main():\n    pass\n", name="warm.py"))
    events: list[JobEvent] = []
    task = asyncio.ensure_future(
        run_local(jobs.launch(WAITS), on_event=events.append, pool=pool, timeout=60, kill_grace=1)
    )
    said = await async_wait_for(lambda: lines(events), what="the job to start")
    server = int(said[0].split()[1])
    assert server != os.getpid()
    os.kill(server, signal.SIGKILL)
    await async_wait_for(lambda: not alive(server), what="the server to die")
    (jobs.work / "go").touch()
    end = await task
    assert end == ExitEvent(5, JobState.FAILED, "exited with status 5")
    assert lines(events) == [f"waiting {server}", "went on"]


async def test_each_python_environment_gets_a_server_of_its_own(
    tmp_path: Path, pool: PythonPool
) -> None:
    env_python = await ensure_environment([], None, cache_dir=tmp_path / "envs")
    jobs = Jobs(tmp_path, pool)
    where = "import sys\n\ndef main():\n    print(sys.prefix)\n"
    for python in (None, str(env_python)):
        await jobs.warm(jobs.launch(where, python=python))
        end, events = await jobs.run(jobs.launch(where, python=python))
        assert end.state is JobState.SUCCEEDED
        expected = sys.prefix if python is None else str(tmp_path / "envs")
        assert lines(events)[0].startswith(expected)
    assert pool.stats() == PoolStats(size=2, hits=2, misses=2)


# -- [runner] python_pool, through the engine ---------------------------------------------


async def _ppids(
    tmp_path: Path, settings: Settings, jobs: int, *, spawner: bool = False
) -> tuple[list[int], list[bool], int | None]:
    """Each job's parent pid, and whether it is a fork of a pool server (its command line
    is the server's); the spawner's pid when `spawner` (waited for before the first job)."""
    catalog = tmp_path / "catalog"
    catalog.mkdir(parents=True)
    (catalog / "ppid.py").write_text(
        '"""Print the parent pid."""\nimport os\n\n\ndef main() -> None:\n'
        '    with open("/proc/self/cmdline", "rb") as f:\n'
        '        forked = b"python_pool.py" in f.read()\n'
        '    print(f"ppid={os.getppid()} forked={forked}")\n'
    )
    ppids: list[int] = []
    forks: list[bool] = []
    async with Bot.open(
        catalog_dir=str(catalog), store_url=f"sqlite:///{tmp_path}/t.db", settings=settings
    ) as bot:
        pool = bot.app.dispatcher.supervisor.python_pool
        spawner_pid = await pool.spawner_ready() if spawner else None
        for _ in range(jobs):
            said = await bot.say("!ppid", as_="local:alice")
            for ppid, forked in re.findall(r"ppid=(\d+) forked=(\w+)", said.text):
                ppids.append(int(ppid))
                forks.append(forked == "True")
    return ppids, forks, spawner_pid


async def test_python_pool_zero_starts_every_job_as_a_fresh_interpreter(tmp_path: Path) -> None:
    off = Settings.model_validate({"runner": {"python_pool": 0, "spawner": False}})
    assert await _ppids(tmp_path / "off", off, 3) == ([os.getpid()] * 3, [False] * 3, None)
    # With the spawner, still a fresh interpreter each, exec'd by the spawner.
    spawned = Settings.model_validate({"runner": {"python_pool": 0}})
    ppids, forks, spawner_pid = await _ppids(tmp_path / "spawned", spawned, 3, spawner=True)
    assert spawner_pid is not None
    assert spawner_pid != os.getpid()
    assert (ppids, forks) == ([spawner_pid] * 3, [False] * 3)
    ppids, forks, _ = await _ppids(tmp_path / "on", Settings(), 3)
    assert ppids[0] == os.getpid(), "the first one starts cold while its server starts"
    assert not forks[0]
    assert os.getpid() not in ppids[1:], "the others are forked by the server"
    assert forks[1:] == [True, True]


async def test_spawner_false_starts_every_job_from_opsroom_itself(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "ppid.sh").write_text("#!/usr/bin/env bash\n# @describe Parent.\necho ppid=$PPID\n")
    for spawner, expected_other in ((False, False), (True, True)):
        settings = Settings.model_validate({"runner": {"spawner": spawner}})
        async with Bot.open(
            catalog_dir=str(catalog),
            store_url=f"sqlite:///{tmp_path}/{spawner}.db",
            settings=settings,
        ) as bot:
            pid = await bot.app.dispatcher.supervisor.python_pool.spawner_ready()
            assert (pid is not None) is spawner
            said = await bot.say("!ppid", as_="local:alice")
            ppid = int(re.findall(r"ppid=(\d+)", said.text)[0])
            assert (ppid != os.getpid()) is expected_other
            assert ppid == (pid if spawner else os.getpid())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[runner]\npython_pool = -1\n", "runner.python_pool"),
        ("[runner]\npython_pool = 65\n", "runner.python_pool"),
        ("[runner]\npython_pools = 2\n", "runner.python_pools: unknown key"),
        ("[runner]\nspawner = 1\n", "runner.spawner"),
        ("[runner]\nspawners = false\n", "runner.spawners: unknown key"),
    ],
)
def test_python_pool_is_checked_when_the_config_is_read(
    tmp_path: Path, text: str, expected: str
) -> None:
    (tmp_path / "opsroom.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_settings(environ={}, cwd=tmp_path)
    (tmp_path / "opsroom.toml").write_text("[runner]\npython_pool = 0\n", encoding="utf-8")
    assert load_settings(environ={}, cwd=tmp_path).runner.python_pool == 0


def test_the_server_parses_as_the_oldest_python_it_may_run_on() -> None:
    # It runs inside PEP 723 environments, whatever their Python: no newer syntax.
    server = Path(__file__).parents[2] / "src/opsroom/runner/bootstrap/python_pool.py"
    tree = ast.parse(server.read_text(encoding="utf-8"), feature_version=(3, 8))  # or SyntaxError
    assert "serve" in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


SIGNALS = """
def main():
    with open("/proc/self/status") as f:
        print(next(line for line in f if line.startswith("SigIgn:")).strip())
"""


async def test_a_pooled_job_gets_signals_its_launcher_ignored_at_their_defaults(
    tmp_path: Path,
) -> None:
    # opsroom started in the background (SIGINT, SIGQUIT ignored) under nohup (SIGHUP): its
    # servers inherit that; a job forked from one must not, as a cold one does not.
    seen = {}
    with started_ignoring():
        pool = PythonPool(1)
        try:
            jobs = Jobs(tmp_path, pool)
            await jobs.warm(jobs.launch("def main():\n    pass\n", name="warm.py"))
            for pooled in (True, False):
                end, events = await jobs.run(jobs.launch(SIGNALS), pooled=pooled)
                assert end.state is JobState.SUCCEEDED, lines(events, "stderr")
                seen[pooled] = lines(events)[0]
            assert pool.stats().hits == 1
        finally:
            await pool.close()
    assert {pooled: ignored_in(line) for pooled, line in seen.items()} == {True: [], False: []}
    assert seen[True] == seen[False]
