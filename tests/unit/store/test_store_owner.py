"""Owner ids name a process; owner_alive tells a live owner from one that is gone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from opsroom.store.owner import owner_alive, owner_id


def child_owner() -> str:
    """The owner id of a child process that has exited (and been reaped) since."""
    done = subprocess.run(
        [sys.executable, "-c", "from opsroom.store.owner import owner_id; print(owner_id())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_owner_id_names_this_process() -> None:
    host, pid, boot, start = owner_id().rsplit(":", 3)
    assert host == socket.gethostname()
    assert pid == str(os.getpid())
    assert boot == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert start.isdigit()
    assert owner_id() == owner_id()


def test_this_process_is_alive() -> None:
    assert owner_alive(owner_id())


def test_an_exited_process_is_not_alive() -> None:
    owner = child_owner()
    assert owner != owner_id()
    assert not owner_alive(owner)


def test_a_running_child_is_alive_until_it_exits() -> None:
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from opsroom.store.owner import owner_id; print(owner_id(), flush=True); input()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        assert child.stdin is not None
        owner = child.stdout.readline().strip()
        assert owner_alive(owner)
        child.stdin.close()
        child.wait(timeout=10)
    assert not owner_alive(owner)


def test_a_reused_pid_is_not_the_same_owner() -> None:
    host, pid, boot, start = owner_id().rsplit(":", 3)
    assert not owner_alive(f"{host}:{pid}:{boot}:{int(start) + 1}")


def test_a_reboot_ends_every_owner() -> None:
    host, pid, _boot, start = owner_id().rsplit(":", 3)
    assert not owner_alive(f"{host}:{pid}:00000000-0000-0000-0000-000000000000:{start}")


@pytest.mark.parametrize(
    "owner",
    [
        "build-host-elsewhere:1:00000000-0000-0000-0000-000000000000:1",  # other host
        "worker:procrastinate-17",  # a form this version does not know
        "",
    ],
)
def test_owners_that_cannot_be_checked_are_assumed_alive(owner: str) -> None:
    assert owner_alive(owner)
