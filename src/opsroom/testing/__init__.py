"""Test helpers shipped with opsroom, and its pytest plugin: the `bot` fixture.

A team tests its own scripts through opsroom the way chat runs them — parse, policy,
approval, the real runner with real child processes — in plain synchronous tests:

    def test_status(bot):
        said = bot.say("!store status 42", as_="slack:U024BE7LH")
        assert said.succeeded
        assert "payment terminal" in said.text

Installing opsroom registers this module with pytest (the `pytest11` entry point `opsroom`),
so no conftest is needed; docs/testing-your-scripts.md walks a team through it. opsroom's own
async tests drive the same engine with `Bot`:

    async with Bot.open(catalog_dir=path, store_url=f"sqlite:///{tmp}/t.db") as bot:
        said = await bot.say("!store status 42", as_="local:alice")

pytest imports this module at the start of every run in an environment where opsroom is
installed, and a program driving `Bot` imports it at its start, so at import it needs only
the standard library: the engine is imported when a bot is opened, and the fixtures (which
need pytest) live in `opsroom.testing.plugin`, which pytest loads through `pytest_plugins`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from opsroom.app import App
    from opsroom.config import Settings
    from opsroom.model.audit import AuditRecord
    from opsroom.model.blocks import File, Reply, Table
    from opsroom.model.catalog import Catalog
    from opsroom.model.jobs import Job, JobState
    from opsroom.router.outcome import Outcome

T = TypeVar("T")

# pytest registers this module (the `pytest11` entry point), then the modules named here:
# the fixtures are there, so that importing `Bot` does not import pytest (~45 ms at start).
pytest_plugins = ["opsroom.testing.plugin"]

DEFAULT_USER = "local:tester"
DEFAULT_ROOM = "local:test"
WAIT = 120.0  # seconds a call waits for its answer before the test fails instead of hanging
CONFIG_NAME = "opsroom.toml"
_POLL = 0.02  # seconds between looks at the store while waiting for a job


@dataclass(frozen=True, slots=True, repr=False)
class Said:
    """The replies to one message and what came of it."""

    replies: tuple[Reply, ...]
    outcome: Outcome

    @property
    def text(self) -> str:
        """All replies as a terminal would show them."""
        from opsroom.render.text import render_reply

        return "\n".join(render_reply(r) for r in self.replies)

    @property
    def job_id(self) -> int | None:
        """The job the message started (None: a built-in, a refusal, an ignored message)."""
        return self.outcome.job_id

    @property
    def state(self) -> JobState | None:
        """The job's state when the answer was complete."""
        return self.outcome.state

    @property
    def exit_code(self) -> int | None:
        """The script's exit code (None: it did not run or was killed)."""
        return self.outcome.exit_code

    @property
    def succeeded(self) -> bool:
        """Accepted and done: the job succeeded, or a built-in answered."""
        return self.outcome.outcome == "succeeded"

    @property
    def refused(self) -> bool:
        """Refused before anything ran: unknown command, bad value, not allowed."""
        return self.outcome.outcome == "refused"

    @property
    def awaiting_approval(self) -> bool:
        """The job waits for someone to approve it."""
        return self.outcome.outcome == "awaiting_approval"

    @property
    def tables(self) -> tuple[Table, ...]:
        """The tables the room was shown, in order."""
        from opsroom.model.blocks import Table

        return tuple(b for r in self.replies for b in r.blocks if isinstance(b, Table))

    @property
    def files(self) -> tuple[File, ...]:
        """The files the room was offered (their content: `SyncBot.attachments`)."""
        from opsroom.model.blocks import File

        return tuple(b for r in self.replies for b in r.blocks if isinstance(b, File))

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        # What a failed `assert said.succeeded` shows: the outcome and what the room saw.
        o = self.outcome
        job = f", job {o.job_id} {o.state.value if o.state else ''}" if o.job_id else ""
        code = f", exit code {o.exit_code}" if o.exit_code is not None else ""
        return f"Said({o.outcome}{job}{code}: {self.text!r})"


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file a job attached, as the store keeps it."""

    name: str
    content_type: str
    data: bytes

    @property
    def text(self) -> str:
        """The content as UTF-8 text."""
        return self.data.decode("utf-8")


class Bot:
    """An opsroom engine driven by async test code, with the same dispatch path as any adapter."""

    def __init__(self, app: App) -> None:
        self.app = app

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        *,
        catalog_dir: str | None = None,
        store_url: str,
        settings: Settings | None = None,
    ) -> AsyncIterator[Bot]:
        """Open an engine on a catalog and a store; closed on exit."""
        from opsroom.app import App
        from opsroom.config import Settings

        app = await App.open(settings or Settings(), catalog_dir=catalog_dir, store_url=store_url)
        try:
            yield cls(app)
        finally:
            await app.close()

    async def say(
        self, text: str, *, as_: str = DEFAULT_USER, room: str = DEFAULT_ROOM, direct: bool = True
    ) -> Said:
        """Send one message and collect every reply until the job (if any) ends."""
        replies: list[Reply] = []

        async def send(reply: Reply) -> None:
            replies.append(reply)

        outcome = await self.handle(text, send, as_=as_, room=room, direct=direct)
        return Said(tuple(replies), outcome)

    async def handle(
        self,
        text: str,
        send: Callable[[Reply], Awaitable[None]],
        *,
        as_: str = DEFAULT_USER,
        room: str = DEFAULT_ROOM,
        direct: bool = True,
    ) -> Outcome:
        """Send one message, every reply to `send`; returns when the answer is complete."""
        from opsroom.model.messages import Inbound

        inbound = Inbound(text=text, principal=as_, room=room, direct=direct)
        return await self.app.dispatcher.handle(inbound, send)

    async def wait(self, job_id: int) -> Job:
        """The job once it has ended (polls the store: any process may be running it)."""
        while True:
            job = await self.job(job_id)
            if job.state.finished:
                return job
            await asyncio.sleep(_POLL)

    async def job(self, job_id: int) -> Job:
        """The job as recorded; LookupError when there is none."""
        job = await self.app.store.get_job(job_id)
        if job is None:
            raise LookupError(f"there is no job {job_id}")
        return job

    async def attachments(self, job_id: int) -> list[Attachment]:
        """The files the job attached, with their content, in the order they came."""
        found = []
        for attachment_id, name, content_type, _ in await self.app.store.attachments(job_id):
            data = await self.app.store.attachment_data(attachment_id)
            found.append(Attachment(name, content_type, data or b""))
        return found


class _NoAnswer(TimeoutError):
    """The engine did not answer within the time the test allows."""


class _Engine:
    """One opsroom engine on an event loop of its own thread; the test thread calls in.

    A thread rather than a loop run per call: a job started with `SyncBot.start` keeps
    running (and its output keeps being read) while the test does something else.
    """

    def __init__(
        self, *, catalog_dir: str | None, store_url: str, settings: Settings | None
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="opsroom-bot", daemon=True)
        self._thread.start()
        self._opened: AbstractAsyncContextManager[Bot] = Bot.open(
            catalog_dir=catalog_dir, store_url=store_url, settings=settings
        )
        try:
            self.bot = self.call(self._opened.__aenter__(), None)
        except BaseException:
            self._stop()
            raise
        self.closed = False

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()

    def submit(self, work: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start `work` on the engine's loop."""
        return asyncio.run_coroutine_threadsafe(work, self.loop)

    def call(self, work: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """Run `work` on the engine's loop and wait for its result; _NoAnswer after `timeout`."""
        future = self.submit(work)
        try:
            return future.result(timeout)
        except TimeoutError:
            if future.done():
                raise  # raised by the work itself, not our wait
            future.cancel()  # a script still running is ended with its task
            raise _NoAnswer from None

    def close(self) -> None:
        """End what is still running, close the engine and stop the loop."""
        if self.closed:
            return
        self.closed = True
        try:
            self.call(self._shutdown(), None)
        finally:
            self._stop()

    async def _shutdown(self) -> None:
        # Messages still being answered (`start` without `result`) end with the test.
        me = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not me]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        await self._opened.__aexit__(None, None, None)

    def _stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()


class SyncBot:
    """The `bot` fixture: a running opsroom that plain tests talk to as people do in chat.

    Every call returns when the answer is complete, as `opsroom run` does; `start` returns at
    once for a job the test wants to watch, cancel or approve while it runs.
    """

    def __init__(self, engine: _Engine, *, user: str, room: str) -> None:
        self._engine = engine
        self.user = user
        self.room = room

    @classmethod
    def open(
        cls,
        *,
        catalog_dir: str | Path | None,
        store_url: str,
        settings: Settings | None = None,
        user: str = DEFAULT_USER,
        room: str = DEFAULT_ROOM,
    ) -> SyncBot:
        """Open an engine on a catalog folder and a store; `close` (or `with`) ends it."""
        folder = str(catalog_dir) if catalog_dir is not None else None
        engine = _Engine(catalog_dir=folder, store_url=store_url, settings=settings)
        return cls(engine, user=user, room=room)

    def close(self) -> None:
        """End running jobs and close the engine (for every view made with `as_`)."""
        self._engine.close()

    def __enter__(self) -> SyncBot:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- who is talking, and where ---------------------------------------------------------

    def as_(self, user: str, *, room: str | None = None) -> SyncBot:
        """The same bot, spoken to by `user` (e.g. "slack:U024BE7LH"), in `room` if given."""
        return SyncBot(self._engine, user=user, room=room or self.room)

    def in_room(self, room: str) -> SyncBot:
        """The same bot and user, in another room (e.g. "slack:C0OPS")."""
        return SyncBot(self._engine, user=self.user, room=room)

    @property
    def app(self) -> App:
        """The engine itself: settings, store, dispatcher."""
        return self._engine.bot.app

    @property
    def settings(self) -> Settings:
        """The settings the bot runs with."""
        return self.app.settings

    @property
    def catalog(self) -> Catalog:
        """The catalog served: its commands, and the issues of scripts that did not load."""
        return self.app.catalog

    # -- talking ---------------------------------------------------------------------------

    def say(
        self,
        text: str,
        *,
        as_: str | None = None,
        room: str | None = None,
        direct: bool = True,
        timeout: float = WAIT,
    ) -> Said:
        """Send one message; returns every reply once the answer (and its job) is complete.

        `direct=False` is a message in a room rather than to the bot: it needs the prefix.
        """
        work = self._engine.bot.say(
            text, as_=as_ or self.user, room=room or self.room, direct=direct
        )
        try:
            return self._engine.call(work, timeout)
        except _NoAnswer:
            raise TimeoutError(f"{text!r} was not answered within {timeout:g} s") from None

    def start(
        self, text: str, *, as_: str | None = None, room: str | None = None, direct: bool = True
    ) -> Started:
        """Send one message and return at once; the job runs on while the test goes on."""
        user, where = as_ or self.user, room or self.room
        before = self._engine.call(self._last_job_id(), WAIT)
        replies: list[Reply] = []

        async def send(reply: Reply) -> None:
            replies.append(reply)

        work = self._engine.bot.handle(text, send, as_=user, room=where, direct=direct)
        future = self._engine.submit(work)
        return Started(
            self._engine, future, replies, text=text, user=user, room=where, after=before
        )

    def approve(self, job_id: int, *, as_: str | None = None, timeout: float = WAIT) -> Said:
        """`approve <job>` as `as_`; when that approval decides, returns after the job ends."""
        return self.say(f"{self.settings.bot.prefix}approve {job_id}", as_=as_, timeout=timeout)

    def deny(self, job_id: int, reason: str = "", *, as_: str | None = None) -> Said:
        """`deny <job> [reason]` as `as_`."""
        text = f"{self.settings.bot.prefix}deny {job_id} {reason}".rstrip()
        return self.say(text, as_=as_)

    def cancel(self, job_id: int, *, as_: str | None = None) -> Said:
        """`cancel <job>` as `as_`."""
        return self.say(f"{self.settings.bot.prefix}cancel {job_id}", as_=as_)

    # -- what the jobs left ----------------------------------------------------------------

    def wait(self, job_id: int, *, timeout: float = WAIT) -> Job:
        """The job once it has ended; TimeoutError after `timeout` seconds."""
        try:
            return self._engine.call(self._engine.bot.wait(job_id), timeout)
        except _NoAnswer:
            now = self.job(job_id).state.value
            raise TimeoutError(f"job {job_id} is still {now} after {timeout:g} s") from None

    def job(self, job_id: int) -> Job:
        """The job as recorded now; LookupError when there is none."""
        return self._engine.call(self._engine.bot.job(job_id), WAIT)

    def output(self, job_id: int, *, stream: str | None = None) -> str:
        """The job's output as kept (secrets masked); `stream`: only "stdout" or "stderr"."""
        lines = self._engine.call(self.app.store.output(job_id), WAIT)
        return "\n".join(text for kind, text in lines if stream is None or kind == stream)

    def events(self, job_id: int) -> list[dict[str, Any]]:
        """The job's structured events (progress, table, status, attachment) as kept."""
        return self._engine.call(self.app.store.events(job_id), WAIT)

    def tables(self, job_id: int) -> list[Table]:
        """The tables the job produced, as kept."""
        from opsroom.model.blocks import Table

        return [
            Table(tuple(e["columns"]), tuple(tuple(row) for row in e["rows"]))
            for e in self.events(job_id)
            if e.get("type") == "table"
        ]

    def attachments(self, job_id: int) -> list[Attachment]:
        """The files the job attached, with their content."""
        return self._engine.call(self._engine.bot.attachments(job_id), WAIT)

    def audit(self, *, limit: int = 1000) -> list[AuditRecord]:
        """The audit log's latest entries, oldest first."""
        records = self._engine.call(self.app.store.audit(limit=limit), WAIT)
        return sorted(records, key=lambda r: r.id)

    async def _last_job_id(self) -> int:
        newest = await self.app.store.list_jobs(limit=1)
        return newest[0].id if newest else 0


class Started:
    """A message still being answered (`SyncBot.start`): its job runs while the test goes on."""

    def __init__(
        self,
        engine: _Engine,
        future: concurrent.futures.Future[Outcome],
        replies: list[Reply],
        *,
        text: str,
        user: str,
        room: str,
        after: int,
    ) -> None:
        self._engine = engine
        self._future = future
        self._replies = replies
        self.text = text
        self._user = user
        self._room = room
        self._after = after

    @property
    def replies(self) -> tuple[Reply, ...]:
        """The replies so far."""
        return tuple(self._replies)

    def done(self) -> bool:
        """True once the answer is complete."""
        return self._future.done()

    def result(self, timeout: float = WAIT) -> Said:
        """Every reply, once the answer (and its job) is complete."""
        try:
            outcome = self._future.result(timeout)
        except TimeoutError:
            if self._future.done():
                raise  # raised while answering, not by our wait
            raise TimeoutError(f"{self.text!r} was not answered within {timeout:g} s") from None
        return Said(tuple(self._replies), outcome)

    def job_id(self, timeout: float = WAIT) -> int:
        """The job the message started, as soon as it is recorded."""
        # Asked of the store: a job's first reply may come only after `foreground_seconds`.
        try:
            return self._engine.call(self._job_id(), timeout)
        except _NoAnswer:
            raise TimeoutError(f"{self.text!r} started no job within {timeout:g} s") from None

    async def _job_id(self) -> int:
        store = self._engine.bot.app.store
        while True:
            answered = self._future.done()
            mine = [
                j.id
                for j in await store.list_jobs(limit=50, requester=self._user)
                if j.id > self._after and j.room == self._room
            ]
            if mine:
                return min(mine)
            if answered:
                said = self.result(0)
                raise AssertionError(f"{self.text!r} started no job: {said!r}")
            await asyncio.sleep(_POLL)
