"""Response and request bodies of the JSON API (they make the OpenAPI document useful)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from opsroom.model.jobs import Job


class Problem(BaseModel):
    """An error: what went wrong, for people."""

    detail: str


class Me(BaseModel):
    """The caller."""

    username: str
    principal: str
    admin: bool
    via: str = Field(description="session or token")
    csrf_token: str = Field(description="send as X-CSRF-Token with cookie-authenticated changes")


class MessageIn(BaseModel):
    """A chat message said in a web room."""

    model_config = ConfigDict(extra="forbid")

    room: str = Field(default="general", description="web:<name> or just <name>")
    text: str = Field(min_length=1, max_length=8000)


class Accepted(BaseModel):
    """The message was taken; replies arrive in the room."""

    accepted: bool = True
    room: str
    seq: int = Field(description="the message's place in the room's history")


class OutcomeOut(BaseModel):
    """What came of a message (the summary `opsroom run --json` prints last)."""

    outcome: str
    job_id: int | None
    state: str | None
    exit_code: int | None
    output: str


class RoomEvent(BaseModel):
    """One event of a room: a person's message or a bot reply (render.text.reply_to_dict)."""

    model_config = ConfigDict(extra="allow")

    seq: int
    room: str
    at: datetime
    author: str
    kind: str = Field(description="message | reply | error | job | progress | output | notice")
    text: str = ""
    job_id: int | None = None
    blocks: list[dict[str, Any]] = []


class RoomOut(BaseModel):
    """A web chat room."""

    room: str
    name: str


class JobOut(BaseModel):
    """A job as listed."""

    id: int
    command: str
    params: dict[str, Any]
    state: str
    requester: str
    room: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration: float | None
    exit_code: int | None
    dry_run: bool
    error: str | None
    catalog_commit: str | None
    output_lines: int
    output_truncated: bool
    cancel_requested_by: str | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        """From the store's job."""
        return cls(
            id=job.id,
            command=job.command,
            params=dict(job.params),
            state=job.state.value,
            requester=job.requester,
            room=job.room,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            duration=job.duration,
            exit_code=job.exit_code,
            dry_run=job.dry_run,
            error=job.error,
            catalog_commit=job.catalog_commit,
            output_lines=job.output_lines,
            output_truncated=job.output_truncated,
            cancel_requested_by=job.cancel_requested_by,
        )


class OutputLine(BaseModel):
    """One line a job printed."""

    stream: str
    text: str


class AttachmentOut(BaseModel):
    """A file a job attached."""

    id: int
    name: str
    content_type: str
    size: int
    url: str


class JobDetail(JobOut):
    """A job with the end of its output and its files."""

    output: list[OutputLine]
    attachments: list[AttachmentOut]


class CancelOut(OutcomeOut):
    """What `!cancel N` answered so far."""

    replies: list[dict[str, Any]]
    room: str | None = Field(None, description="the job's room, where its messages went")


class CommandOut(BaseModel):
    """A catalog command as listed."""

    name: str
    summary: str
    language: str
    aliases: list[str]
    params: int
    hidden: bool
    owner: str | None
    runnable: bool = Field(description="the caller may run it in the web chat's room")
    refused: str | None = Field(
        description="when not runnable: what the chat would answer the caller there"
    )


class TokenIn(BaseModel):
    """A new API token: a name to recognise it by, and whose it is (default: yours)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    username: str | None = None


class TokenOut(BaseModel):
    """An API token as listed (never its value)."""

    id: int
    name: str
    username: str
    created_at: datetime
    last_used_at: datetime | None


class TokenCreated(TokenOut):
    """A new API token; `token` is shown this once and never again."""

    token: str
