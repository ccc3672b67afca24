"""Notices between the processes sharing a store: LISTEN/NOTIFY on PostgreSQL (SPEC §8),
a doorbell beside the file on SQLite (`bell.py`).

A writer sends a notice inside the transaction that commits what it tells of, and
PostgreSQL delivers it only once that transaction has committed: whoever is woken by one
finds the rows. Notices are hints, never the record. Each process listens on one connection
of its own (psycopg 3, autocommit), opened on first use and opened again when it drops;
notices sent while it was away are gone, so every waiter is woken once it is back, and
waiters look again on their own every `[workers] recheck` in case one was missed anyway.
On SQLite the transaction keeps its notices and the store rings them once it committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from opsroom.retry import Backoff
from opsroom.store.database import PENDING, Part
from opsroom.store.url import redacted
from opsroom.tasks import raise_if_cancelled, stop_task

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("opsroom.store")

CHANNEL = "opsroom_jobs"
QUIET_CHECK_SECONDS = 10.0  # a listening connection quiet this long is checked (it may be dead)
_RECONNECT = Backoff(first=0.05, cap=5.0)


class Topic(StrEnum):
    """What a notice tells about a job; its payload is `<topic>:<job id>`."""

    REPLIES = "replies"  # a worker kept replies for the job's room
    CANCEL = "cancel"  # someone asked for the job to be cancelled
    END = "end"  # the job's end was recorded (a waiting `cancel` answers)


async def send_notices(conn: AsyncConnection, topic: Topic, job_ids: list[int]) -> None:
    """Tell listeners of `topic` for each job once the caller's transaction commits.

    PostgreSQL sends them at the commit; on SQLite the transaction keeps them for the store
    to ring once it committed (`Database.write`, `Database.durable`): a transaction rolled
    back rings nothing (a savepoint's work undone inside one may: a needless look, no more).
    """
    if not job_ids:
        return
    payloads = [f"{topic.value}:{job_id}" for job_id in dict.fromkeys(job_ids)]
    if conn.dialect.name != "postgresql":
        pending = conn.info.get(PENDING)
        if pending is not None:
            pending.extend(payloads)
        return
    await conn.execute(
        text("SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS text[])) AS p"),
        {"channel": CHANNEL, "payloads": payloads},
    )


class Waiter:
    """Woken by each notice of one topic and job (and when the listener reconnects)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def clear(self) -> None:
        """Forget earlier wake-ups: call it before looking, so none after the look is lost."""
        self._event.clear()

    def wake(self) -> None:
        """Wake whoever waits (or will wait next)."""
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """Wait for a wake-up since the last `clear`, at most `timeout` s; whether one came."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._event.wait()
                return True
        return False


class Listening:
    """The waiters a process's notices wake, by topic and job (PostgreSQL's or SQLite's)."""

    def __init__(self) -> None:
        self._waiters: dict[tuple[Topic, int | None], set[Waiter]] = {}
        self.notices = 0  # notices received in all

    def start(self) -> None:
        """Listen from now on (on the running event loop)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Stop listening."""
        raise NotImplementedError

    @contextlib.contextmanager
    def watch(
        self, job_id: int | None, *topics: Topic, waiter: Waiter | None = None
    ) -> Iterator[Waiter]:
        """A waiter (`waiter`, or a new one) woken by notices of `topics` for `job_id` (None:
        for any job), for the length of the block."""
        self.start()
        waiter = waiter or Waiter()
        keys = [(topic, job_id) for topic in topics]
        for key in keys:
            self._waiters.setdefault(key, set()).add(waiter)
        try:
            yield waiter
        finally:
            for key in keys:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[key]

    def _dispatch(self, payload: str) -> None:
        self.notices += 1
        topic, _, job = payload.partition(":")
        try:
            of, job_id = Topic(topic), int(job)
        except ValueError:
            return  # not one of ours: someone else's notice on the channel
        for key in ((of, job_id), (of, None)):
            for waiter in self._waiters.get(key, ()):
                waiter.wake()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.wake()


class Listener(Listening):
    """One process's listening connection to PostgreSQL, and the waiters its notices wake."""

    def __init__(self, conninfo: str, *, password: str | None = None) -> None:
        super().__init__()
        self._conninfo = conninfo
        # Named, so that `pg_stat_activity` tells its connections apart.
        self._params: dict[str, Any] = {"application_name": "opsroom notices"}
        if password is not None:
            self._params["password"] = password
        self._task: asyncio.Task[None] | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self.connections = 0  # how many times it has (re)connected and listened

    @property
    def listening(self) -> bool:
        """Whether a connection listens now."""
        return self._conn is not None and not self._conn.closed

    @property
    def backend_pid(self) -> int | None:
        """The server process of the listening connection (None while it has none)."""
        return self._conn.info.backend_pid if self.listening and self._conn else None

    def start(self) -> None:
        """Listen from now on (in the background, on the running event loop)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._listen())

    async def close(self) -> None:
        """Stop listening and close the connection."""
        task, self._task = self._task, None
        await stop_task(task)

    async def _listen(self) -> None:
        """Listen until cancelled: connect, wake everyone, pass notices on; reconnect on loss."""
        import psycopg

        delays = _RECONNECT.delays()
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, **self._params
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._conn = conn
                    self.connections += 1
                    delays = _RECONNECT.delays()  # it worked: the next loss retries at once
                    # What was sent before this connection listened is gone: look again.
                    self._wake_all()
                    await self._receive(conn)
            except (psycopg.Error, OSError, TimeoutError) as e:
                raise_if_cancelled()  # closing the connection after a cancel may fail
                log.warning(
                    "notices from the store %s stopped (%s); listening again",
                    redacted(self._conninfo),
                    e,
                )
            finally:
                self._conn = None
            await asyncio.sleep(next(delays))

    async def _receive(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Pass notices on until the connection fails; a quiet one is checked now and then."""
        while True:
            async for notice in conn.notifies(timeout=QUIET_CHECK_SECONDS):
                self._dispatch(notice.payload)
            async with asyncio.timeout(QUIET_CHECK_SECONDS):
                await conn.execute("SELECT 1")  # a dead connection says so here


class Notices(Part):
    """The store's listener, opened on first use: PostgreSQL's connection, SQLite's bell."""

    _listener: Listening | None = None
    _refused = False  # SQLite: the doorbell could not be had; waiters look on their own

    @property
    def listener(self) -> Listening | None:
        """This process's listener for notices; None where it has none (a SQLite store
        whose doorbell folder cannot be used)."""
        if self._listener is not None or self._refused:
            return self._listener
        if self._db.url.lower().startswith("postgres"):
            scheme, _, rest = self._db.url.partition("://")
            conninfo = f"{scheme.split('+', 1)[0]}://{rest}"
            self._listener = Listener(conninfo, password=self._db.password)
        elif self._db.bell is not None:
            from opsroom.store.bell import Doorbell

            bell = Doorbell(self._db.bell)
            if bell.open():
                self._listener = bell
            else:
                self._refused = True
        return self._listener

    async def close_notices(self) -> None:
        """Stop listening (if it ever started)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()
