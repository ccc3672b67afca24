"""Processes sharing a SQLite store tell each other what they did: the doorbell (store/bell.py).

Real SQLite files, real child processes writing to them, real Unix sockets: a cancel asked
from another process wakes the one running the job the moment it is committed, a write rolled
back rings nothing, a socket a dead process left is cleared away, and a store whose folder
cannot be used goes on without notices (its waiters look on their own, as before).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from opsroom.errors import StoreError
from opsroom.model.jobs import JobState
from opsroom.store import Limits, Store, owner_id
from opsroom.store.bell import Doorbell, folder_of, ring
from opsroom.store.notify import Topic, send_notices

NO_LIMITS = Limits(total=1000, per_command=None, per_user=1000)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(f"sqlite:///{tmp_path / 'opsroom.db'}")
    yield store
    await store.close()


async def running_job(store: Store) -> int:
    job = await store.create_job(
        command="storage migrate", params={}, requester="local:alice", room="local:ops"
    )
    assert (await store.claim_job(job.id, owner=owner_id(), limits=NO_LIMITS)).claimed
    return job.id


def in_another_process(database: Path, statement: str) -> None:
    """Run `statement` (awaited, `store` open on the same file) in a new Python process."""
    program = (
        "import asyncio\n"
        "from opsroom.store import Store\n"
        "async def main():\n"
        f"    store = await Store.open({f'sqlite:///{database}'!r})\n"
        "    try:\n"
        f"        await {statement}\n"
        "    finally:\n"
        "        await store.close()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", program], check=True, timeout=60)


async def test_a_cancel_asked_in_another_process_wakes_the_process_running_the_job(
    store: Store, tmp_path: Path
) -> None:
    job_id = await running_job(store)
    listener = store.listener
    assert listener is not None  # SQLite has one now: the doorbell beside the file
    with listener.watch(None, Topic.CANCEL) as cancels, listener.watch(job_id, Topic.END) as end:
        in_another_process(tmp_path / "opsroom.db", f"store.request_cancel({job_id}, by='ops')")
        # Woken by the notice itself: nothing here looks at the store on a timer.
        assert await cancels.wait(30)
        assert await store.cancel_requests([job_id]) == {job_id: "ops"}
        assert not await end.wait(0)  # asked, not ended: no end was told
    queued = await store.create_job(command="c", params={}, requester="local:a", room="local:x")
    with listener.watch(queued.id, Topic.END) as end:
        in_another_process(tmp_path / "opsroom.db", f"store.request_cancel({queued.id}, by='o')")
        assert await end.wait(30)  # a queued job cancelled is over at once: its end is told
    gone = await store.get_job(queued.id)
    assert gone is not None
    assert gone.state is JobState.CANCELLED


async def test_a_write_rolled_back_rings_nothing(store: Store) -> None:
    listener = store.listener
    assert listener is not None

    async def tell_then_fail() -> None:
        async with store._db.write("tell, then fail") as conn:
            await send_notices(conn, Topic.CANCEL, [1])
            raise StoreError("changed my mind")

    with listener.watch(None, Topic.CANCEL) as waiter:
        with pytest.raises(StoreError, match="changed my mind"):
            await tell_then_fail()
        async with store._db.write("tell") as conn:
            await send_notices(conn, Topic.CANCEL, [2, 2, 3])
        assert await waiter.wait(30)
    # Only the committed transaction's notices came, each job once.
    assert listener.notices == 2


async def test_a_socket_left_by_a_process_that_died_is_cleared_by_the_next_ring(
    store: Store, tmp_path: Path
) -> None:
    assert store.listener is not None
    folder = folder_of(str(tmp_path / "opsroom.db"))
    left = os.path.join(folder, "12345-deadbeef")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(left)
    dead.close()  # closed without leaving the folder, as a process killed with -9
    assert sorted(os.listdir(folder)) != [os.path.basename(left)]  # ours is there too
    assert ring(folder, ["cancel:1"]) == 1  # only the live one heard it
    assert not os.path.exists(left)


async def test_a_store_whose_folder_cannot_be_used_has_no_listener(tmp_path: Path) -> None:
    database = tmp_path / "opsroom.db"
    Path(folder_of(str(database))).write_text("not a folder")
    store = await Store.open(f"sqlite:///{database}")
    try:
        assert store.listener is None  # its waiters look on their own, as without notices
        job_id = await running_job(store)
        await store.request_cancel(job_id, by="ops")  # writes still work, and ring nobody
        assert await store.cancel_requests([job_id]) == {job_id: "ops"}
    finally:
        await store.close()
    deep = tmp_path / ("d" * 100)
    assert not Doorbell(folder_of(str(deep / "opsroom.db"))).open()  # too long for a socket


async def test_closing_the_store_takes_its_socket_out_of_the_folder(
    store: Store, tmp_path: Path
) -> None:
    listener = store.listener
    assert listener is not None
    folder = folder_of(str(tmp_path / "opsroom.db"))
    assert len(os.listdir(folder)) == 1
    # Hidden: what copies or lists the store's files by name (`opsroom.db*`) finds files only.
    assert [p for p in tmp_path.glob("opsroom.db*") if not p.is_file()] == []
    assert os.path.basename(folder) == ".opsroom.db.notices"
    assert os.stat(folder).st_mode & 0o777 == 0o700  # nobody else's process may ring
    await store.close()
    assert os.listdir(folder) == []
    assert ring(folder, ["end:1"]) == 0
