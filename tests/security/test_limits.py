"""Per-job resource limits: a job that reaches one fails with the limit named, and only that job
(issue 9, item 2; `[runner] max_memory`, `max_pids`, `max_cpu_seconds`, `cgroups`).

Real scripts through the real engine (`opsroom.testing.Bot`): one allocates past its memory,
one forks past its process count, one spins past its CPU time — while another job finishes
normally beside it and the bot keeps answering. On this host the limits are enforced by
cgroups (v1 memory and pids, v2 CPU accounting); with `cgroups = false` by rlimits, per
process.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from opsroom.config import RunnerSettings, Settings, load_settings
from opsroom.errors import ConfigError
from opsroom.model.jobs import JobState
from opsroom.runner.limits import Limits
from opsroom.testing import Bot
from support import Opsroom, alive

MiB = 1024 * 1024
PY = sys.executable


def _sh(body: str) -> str:
    return f"#!/usr/bin/env bash\n# @describe A command.\n{body}\n"


@asynccontextmanager
async def engine(tmp_path: Path, runner: RunnerSettings, body: str) -> AsyncIterator[Bot]:
    """A bot whose catalog has `hog` (the body) and `steady` (a job that just works)."""
    root = tmp_path / "catalog"
    root.mkdir()
    (root / "hog.sh").write_text(_sh(body))
    # Prints a line a tenth of a second for a second: it runs while the hog hits its limit.
    (root / "steady.sh").write_text(
        _sh('for i in $(seq 10); do echo "tick $i"; sleep 0.1; done; echo done')
    )
    async with Bot.open(
        catalog_dir=str(root),
        store_url=f"sqlite:///{tmp_path}/t.db",
        # A bounded timeout: should a limit fail to hold, the test fails without hogging the host.
        settings=Settings(runner=runner.model_copy(update={"timeout": 60.0})),
    ) as bot:
        assert not bot.app.catalog.issues, bot.app.catalog.issues
        yield bot


async def hit_beside_a_steady_job(bot: Bot) -> tuple[str, JobState | None]:
    """Run `hog` and `steady` at once; the hog's reply and state. The steady one succeeds."""
    hog, steady = await asyncio.gather(bot.say("!hog"), bot.say("!steady"))
    assert steady.outcome.state is JobState.SUCCEEDED, steady.text
    assert "done" in steady.text
    # The bot keeps answering after the hit.
    after = await bot.say("!steady")
    assert after.outcome.state is JobState.SUCCEEDED
    return hog.text, hog.outcome.state


async def test_a_job_past_its_memory_fails_with_the_limit_named(tmp_path: Path) -> None:
    # 512 MiB in 1 MiB pieces, each touched: far past the 64 MiB the job may use.
    body = f"{PY} -c 'b = [bytearray(1 << 20) for _ in range(512)]; print(\"allocated\")'"
    async with engine(tmp_path, RunnerSettings(max_memory=64 * MiB), body) as bot:
        text, state = await hit_beside_a_steady_job(bot)
    assert state is JobState.FAILED
    assert "memory limit 64 MiB reached" in text
    assert "allocated" not in text.split()  # not the word in bash's echo of the command


async def test_a_job_past_its_process_count_is_contained_and_named(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # A bounded storm (safe on a shared host even if the limit were gone): 300 sleepers.
    body = f"for i in $(seq 300); do sleep 60 & echo $! >> {pids}; done\nwait"
    async with engine(tmp_path, RunnerSettings(max_pids=20), body) as bot:
        text, state = await hit_beside_a_steady_job(bot)
    assert state is JobState.FAILED
    assert "process limit 20 reached" in text
    started = [int(p) for p in pids.read_text().split()]
    assert len(started) < 20, "the kernel refused the forks past the limit"
    assert [p for p in started if alive(p)] == []


async def test_a_job_past_its_cpu_time_fails_with_the_limit_named(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # Two spinners: the limit is the job's, all its processes together, not each one's.
    spin = f"{PY} -c 'while True: pass' & echo $! >> {pids}"
    body = f"{spin}\n{spin}\nwait"
    async with engine(tmp_path, RunnerSettings(max_cpu_seconds=1), body) as bot:
        text, state = await hit_beside_a_steady_job(bot)
    assert state is JobState.FAILED
    assert "CPU time limit 1 s reached" in text
    assert [p for p in map(int, pids.read_text().split()) if alive(p)] == []


async def test_without_cgroups_cpu_time_is_limited_per_process(tmp_path: Path) -> None:
    body = f"exec {PY} -c 'while True: pass'"
    runner = RunnerSettings(max_cpu_seconds=1, cgroups=False)
    async with engine(tmp_path, runner, body) as bot:
        text, state = await hit_beside_a_steady_job(bot)
    assert state is JobState.FAILED
    assert "CPU time limit 1 s reached" in text


async def test_without_cgroups_memory_is_limited_per_process(tmp_path: Path) -> None:
    # 1 GiB at once is refused by the address-space limit: the script sees MemoryError.
    body = f"{PY} -c 'b = bytearray(1 << 30); print(\"allocated\")'"
    runner = RunnerSettings(max_memory=256 * MiB, cgroups=False)
    async with engine(tmp_path, runner, body) as bot:
        text, state = await hit_beside_a_steady_job(bot)
    assert state is JobState.FAILED
    assert "MemoryError" in text
    assert "allocated" not in text.split()  # not the word in bash's echo of the command


async def test_zero_turns_a_limit_off(tmp_path: Path) -> None:
    body = f"{PY} -c 'b = bytearray(256 << 20); print(\"allocated\")'"
    async with engine(tmp_path, RunnerSettings(max_memory=0, max_pids=0), body) as bot:
        said = await bot.say("!hog")
    assert said.outcome.state is JobState.SUCCEEDED, said.text
    assert "allocated" in said.text.split()


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("", (4 * 1024 * MiB, 512, 0.0, True)),
        ('max_memory = "2GiB"', (2 * 1024 * MiB, 512, 0.0, True)),
        ('max_memory = "512MB"', (512_000_000, 512, 0.0, True)),
        ("max_memory = 0\nmax_pids = 0", (0, 0, 0.0, True)),
        ("max_pids = 64\nmax_cpu_seconds = 90", (4 * 1024 * MiB, 64, 90.0, True)),
        ("cgroups = false", (4 * 1024 * MiB, 512, 0.0, False)),
    ],
)
def test_limits_are_read_from_the_runner_section(
    tmp_path: Path, toml: str, expected: tuple[int, int, float, bool]
) -> None:
    path = tmp_path / "opsroom.toml"
    path.write_text(f"[runner]\n{toml}\n")
    runner = load_settings(str(path), environ={}).runner
    assert (runner.max_memory, runner.max_pids, runner.max_cpu_seconds, runner.cgroups) == expected


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('max_memory = "lots"', "runner.max_memory"),
        ('max_memory = "1MiB"', "runner.max_memory"),
        ("max_memory = -1", "runner.max_memory"),
        ("max_pids = -1", "runner.max_pids"),
        ("max_cpu_seconds = -5", "runner.max_cpu_seconds"),
        ('cgroups = "yes"', "runner.cgroups"),
    ],
)
def test_bad_limits_are_refused_with_their_key(tmp_path: Path, toml: str, key: str) -> None:
    path = tmp_path / "opsroom.toml"
    path.write_text(f"[runner]\n{toml}\n")
    with pytest.raises(ConfigError, match=key):
        load_settings(str(path), environ={})


def test_limits_are_named_as_people_write_them() -> None:
    assert Limits(memory=2 * 1024 * MiB).memory_reason() == "memory limit 2 GiB reached"
    assert Limits(memory=1536 * MiB).memory_reason() == "memory limit 1.5 GiB reached"
    assert Limits(pids=512).pids_reason() == "process limit 512 reached"
    assert Limits(cpu_seconds=60).cpu_reason() == "CPU time limit 60 s reached"


def test_config_check_says_how_jobs_are_contained(opsroom: Opsroom) -> None:
    r = opsroom("config", "check")
    assert r.code == 0, r.stderr
    assert "job isolation: a cgroup v2 per job under /sys/fs/cgroup/unified" in r.stderr
    assert (
        "job limits: memory 4 GiB (cgroup v1), processes 512 (cgroup v1), CPU time unlimited"
        in r.stderr
    )
    off = opsroom("config", "check", env={"OPSROOM_RUNNER_CGROUPS": "false"})
    assert off.code == 0, off.stderr
    assert "job isolation: fallback (turned off by [runner] cgroups = false)" in off.stderr
    assert "memory 4 GiB (rlimit per process), processes 512 NOT enforced" in off.stderr
    assert os.path.isdir("/sys/fs/cgroup/unified")
