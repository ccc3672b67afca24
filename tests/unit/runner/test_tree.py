"""Finding a job's processes by token, group and family (SPEC §5.5), with real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from opsroom.runner.tree import (
    TOKEN_VAR,
    enable_subreaper,
    end_processes,
    job_processes,
    manage,
    new_token,
    release,
)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        p.kill()
        p.wait()
        release(p.pid)


def sleeper(procs: list[subprocess.Popen[bytes]], env: dict[str, str], **kw: object) -> int:
    p = subprocess.Popen(["sleep", "60"], env={"PATH": "/usr/bin:/bin", **env}, **kw)  # type: ignore[call-overload]
    procs.append(p)
    manage(p.pid)  # Popen collects its exit status, not end_processes
    return int(p.pid)


def test_tokens_are_fresh_and_the_subreaper_is_idempotent() -> None:
    assert len({new_token() for _ in range(100)}) == 100
    assert all(len(t) == 32 for t in (new_token(), new_token()))
    assert enable_subreaper() is sys.platform.startswith("linux")
    assert enable_subreaper() is sys.platform.startswith("linux")


def test_finds_carriers_their_group_and_descendants_only(
    procs: list[subprocess.Popen[bytes]],
) -> None:
    token = new_token()
    carrier = sleeper(procs, {TOKEN_VAR: token}, process_group=0)
    # Same group as the carrier, environment cleared: still the job's.
    member = sleeper(procs, {}, process_group=carrier)
    # A shell that carries the token and a child that dropped it and left the session.
    shell = subprocess.Popen(
        ["bash", "-c", "env -i setsid sleep 60 & echo $!; wait"],
        env={"PATH": "/usr/bin:/bin", TOKEN_VAR: token},
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    procs.append(shell)
    assert shell.stdout is not None
    dropped = int(shell.stdout.readline())
    shell.stdout.close()
    other = sleeper(procs, {TOKEN_VAR: new_token()}, start_new_session=True)
    plain = sleeper(procs, {})
    found = job_processes(token)
    assert {carrier, member, shell.pid, dropped} <= set(found)
    assert other not in found
    assert plain not in found
    assert os.getpid() not in found
    assert job_processes(token, pgid=other) == sorted({*found, other})
    os.kill(dropped, 9)


def test_a_busy_host_yields_only_the_job(procs: list[subprocess.Popen[bytes]]) -> None:
    # How fast one scan is on such a host: bench/bench_supervision.py.
    token = new_token()
    for _ in range(300):
        sleeper(procs, {"X": "y"})
    mine = sleeper(procs, {TOKEN_VAR: token})
    assert job_processes(token) == [mine]


async def test_end_processes_terms_kills_and_reports(procs: list[subprocess.Popen[bytes]]) -> None:
    token = new_token()
    stubborn = subprocess.Popen(
        ["bash", "-c", "trap '' TERM; echo trapped; while true; do sleep 0.05; done"],
        env={"PATH": "/usr/bin:/bin", TOKEN_VAR: token},
        start_new_session=True,
        stdout=subprocess.PIPE,
    )
    procs.append(stubborn)
    manage(stubborn.pid)
    polite = sleeper(procs, {TOKEN_VAR: token})
    assert stubborn.stdout is not None
    assert stubborn.stdout.readline() == b"trapped\n"  # the trap is set: TERM is ignored now
    stubborn.stdout.close()
    ended = await end_processes(token, pgid=None, grace=0.5)
    assert {stubborn.pid, polite} <= set(ended)
    assert stubborn.wait(timeout=2) == -9  # ignored TERM, so KILLed after the grace
    assert procs[-1].wait(timeout=2) == -15
    assert job_processes(token) == []
    assert await end_processes(token, pgid=None, grace=0.5) == []
