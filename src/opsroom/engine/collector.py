"""Gathers one running job's events: masks, stores within the cap, throttles live replies.

Everything a job offers passes the job's masker here, whatever the runner already did:
lines, progress messages, table cells, status lines, attachments' names and text contents.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from opsroom.errors import StoreError
from opsroom.model.blocks import Block, Code, File, Progress, Reply, Status, Table
from opsroom.model.jobs import (
    AttachmentEvent,
    ExitEvent,
    Job,
    JobEvent,
    JobState,
    OutputLine,
    ProgressEvent,
    StatusEvent,
    Stream,
    TableEvent,
)
from opsroom.policy.masking import Masker
from opsroom.router.builtins import format_duration
from opsroom.store.output import line_bytes

if TYPE_CHECKING:
    from opsroom.engine.output import OutputWriter
    from opsroom.store import Store

Send = Callable[[Reply], Awaitable[None]]

_PROGRESS_EVERY = 1.0
OUTCOME_KEEP_BYTES = 64 * 1024  # a job's whole output, held for its outcome up to this size
LIVE_EVERY = 2.0  # seconds between batches of live output once a job is in the background
REPLY_TAIL = 40


class Collector:
    """Receives a job's events from the runner; memory stays bounded whatever it prints."""

    def __init__(
        self,
        store: Store,
        job: Job,
        send: Send,
        *,
        writer: OutputWriter,
        masker: Masker,
        output_cap: int,
        attachment_cap: int,
        prefix: str = "!",
        base_url: str | None = None,
    ) -> None:
        self.store = store
        self.writer = writer
        self.job = job
        self.send = send
        self.masker = masker
        self.mask = masker.mask
        self.output_cap = output_cap
        self.attachment_cap = attachment_cap
        self.workdir: str | None = None  # set once the job's working folder exists
        self.prefix = prefix
        # Where "N more lines — full log" points: the job's page, or the command showing it.
        self.link = f"{base_url.rstrip('/')}/jobs/{job.id}" if base_url else f"{prefix}job {job.id}"
        self.tail: deque[str] = deque(maxlen=REPLY_TAIL)  # lines not yet shown in the room
        self.events: list[Mapping[str, Any]] = []
        self.blocks: list[Block] = []
        self.count = 0
        # Every line so far, as the store keeps them (a prefix under the cap), while they
        # are few: the outcome's output then needs no read. None once they were too many.
        self.lines: list[str] | None = []
        self._lines_bytes = 0
        self.last_progress = 0.0
        self._lock = asyncio.Lock()  # event flushes from on_event and tick must not interleave
        self.live = False  # the job went to the background: lines are shown in batches
        self.shown = 0  # lines already shown in the room
        self.last_live = time.monotonic()

    async def on_event(self, event: JobEvent) -> None:
        """Receive one event from the runner."""
        match event:
            case OutputLine(stream=stream, text=text):
                text = self.mask(text)
                self.tail.append(text)
                self.count += 1
                self._hold(text)
                await self.writer.add(self.job.id, stream.value, text)
            case ProgressEvent(percent=percent, message=message):
                message = self.mask(message)
                self.events.append({"type": "progress", "percent": percent, "message": message})
                now = time.monotonic()
                if now - self.last_progress >= _PROGRESS_EVERY or (percent or 0) >= 100:
                    self.last_progress = now
                    await self.send(
                        Reply((Progress(percent, message),), job_id=self.job.id, kind="progress")
                    )
            case TableEvent(columns=columns, rows=rows):
                cols = tuple(self.mask(c) for c in columns)
                masked = tuple(tuple(self.mask(c) for c in row) for row in rows)
                self.blocks.append(Table(cols, masked))
                self.events.append(
                    {"type": "table", "columns": list(cols), "rows": [list(r) for r in masked]}
                )
            case StatusEvent(text=text, level=level):
                text = self.mask(text)
                self.blocks.append(Status(text, level))
                self.events.append({"type": "status", "text": text, "level": level})
            case AttachmentEvent(name=name, content_type=ctype):
                # Imported on the first attachment: most jobs attach nothing (start-up cost).
                from opsroom.runner.attachments import AttachmentRefused, read_attachment

                name = self.mask(name)
                # Read now: the working folder is removed when the job ends. Re-opened
                # without following symlinks: the script may have swapped the file since.
                try:
                    data = read_attachment(event, root=self.workdir, limit=self.attachment_cap)
                    data = self._masked_file(data)
                except (AttachmentRefused, OSError) as e:
                    await self.on_event(
                        OutputLine(Stream.STDERR, f"opsroom: attachment {name} refused: {e}")
                    )
                    return
                await self.store.add_attachment(
                    self.job.id, name=name, content_type=ctype, data=data
                )
                size = len(data)
                self.blocks.append(File(name, size, self.job.id, ctype))
                self.events.append({"type": "attachment", "name": name, "size": size})
            case ExitEvent():
                pass

    def _hold(self, text: str) -> None:
        """Hold a masked line for the outcome while all of them fit under both limits."""
        if self.lines is None:
            return
        self._lines_bytes += line_bytes(text)
        if self._lines_bytes > min(self.output_cap, OUTCOME_KEEP_BYTES):
            self.lines = None  # the store has them (or the cap's share of them)
        else:
            self.lines.append(text)

    def output(self) -> str | None:
        """The job's kept output joined by newlines, as the store has it; None: read it."""
        return None if self.lines is None else "\n".join(self.lines)

    def _masked_file(self, data: bytes) -> bytes:
        """The file with its secrets masked; AttachmentRefused for a binary file holding one."""
        text = data.decode("utf-8", errors="surrogateescape")
        masked = self.mask(text)
        if masked == text:
            return data
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            from opsroom.runner.attachments import AttachmentRefused

            # Masking would corrupt it without telling anyone: refuse it instead.
            raise AttachmentRefused(
                "it holds a secret and is not text, so it cannot be masked"
            ) from None
        return masked.encode("utf-8")

    def go_live(self) -> None:
        """From now on, show new lines in throttled batches while the job runs."""
        self.live = True
        self.last_live = time.monotonic()

    def due(self, now: float) -> bool:
        """Whether a tick now has something to do: events to keep, or live lines to show."""
        return bool(self.events) or self._live_due(now)

    def _live_due(self, now: float) -> bool:
        return self.live and bool(self.tail) and now - self.last_live >= LIVE_EVERY

    async def tick(self) -> None:
        """Called about once a second: store pending lines, show a batch of live output."""
        now = time.monotonic()
        if self.events:
            with contextlib.suppress(StoreError):  # kept, and tried again at the next tick
                await self.flush_events()
        if self._live_due(now):
            self.last_live = now
            more = self.count - self.shown - len(self.tail)
            lines = tuple(self.tail)
            self.shown = self.count
            self.tail.clear()
            await self.send(
                Reply(
                    (Code(lines, more=more, link=self.link),),
                    job_id=self.job.id,
                    kind="output",
                )
            )

    async def flush_events(self) -> None:
        """Keep the structured events gathered so far."""
        async with self._lock:
            if self.events:
                events, self.events = self.events, []
                try:
                    await asyncio.shield(self.store.append_events(self.job.id, events))
                except StoreError:
                    self.events = events + self.events  # kept for the next attempt
                    raise

    def final_reply(self, job: Job, exit_event: ExitEvent) -> Reply:
        """What the room sees when the job ends: the last lines, tables, files, the outcome."""
        blocks: list[Block] = []
        if self.tail:
            more = self.count - self.shown - len(self.tail)
            blocks.append(Code(tuple(self.tail), more=more, link=self.link))
        blocks.extend(self.blocks)
        took = ""
        if job.started_at is not None:
            took = f" in {format_duration(time.time() - job.started_at.timestamp())}"
        # Its last lines were kept with its end: the ended job says whether they fit.
        if job.output_truncated or not self.writer.keeping(job.id):
            blocks.append(
                Status(
                    f"the stored log of job {job.id} stopped at the {self.output_cap:,}-byte cap; "
                    f"{self.count:,} lines were printed",
                    "warning",
                )
            )
        # The outcome comes last, always: bridges recognise a job's final reply by it.
        state = exit_event.state
        if state is JobState.SUCCEEDED:
            blocks.append(Status(f"job {job.id} {job.command}: succeeded{took}", "success"))
        else:
            why = f" — {self.mask(exit_event.message)}" if exit_event.message else ""
            code = f" (exit code {exit_event.exit_code})" if exit_event.exit_code else ""
            words = state.value.replace("_", " ")
            blocks.append(Status(f"job {job.id} {job.command}: {words}{code}{took}{why}", "error"))
        return Reply(tuple(blocks), job_id=job.id, kind="job")
