"""The tables, as SQLAlchemy Core metadata (the migrations in `migrations/` create them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    false,
)

from opsroom.store.engine import any_length

HEAD_REVISION = "0010"
"""The newest migration; `open` skips Alembic when the database already says this."""

GENESIS_HASH = "0" * 64
"""The `prev_hash` of the first audit entry."""

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps none, so it stores UTC wall time)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Normalise to UTC; naive datetimes are refused rather than guessed."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Attach UTC to what SQLite hands back naive."""
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("command", any_length(200), nullable=False),
    Column("params", Text, nullable=False),  # JSON object
    Column("state", String(32), nullable=False),
    Column("requester", any_length(300), nullable=False),
    Column("room", any_length(300), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("exit_code", Integer, nullable=True),
    Column("catalog_commit", String(64), nullable=True),
    Column("script_hash", String(128), nullable=True),
    Column("owner", any_length(300), nullable=True),
    Column("dry_run", Boolean, nullable=False, default=False),
    Column("error", Text, nullable=True),
    # --- 0002: job control across processes -------------------------------------------------
    Column("pid", Integer, nullable=True),
    Column("process_token", String(128), nullable=True),
    Column("cancel_requested_at", UTCDateTime, nullable=True),
    Column("cancel_requested_by", any_length(300), nullable=True),
    Column("output_lines", BigInteger, nullable=False, default=0, server_default="0"),
    Column("output_bytes", BigInteger, nullable=False, default=0, server_default="0"),
    # Bytes actually kept in job_output, measured the same way, so the cap needs no SUM().
    Column("output_stored_bytes", BigInteger, nullable=False, default=0, server_default="0"),
    Column("output_truncated", Boolean, nullable=False, default=False, server_default=false()),
    Column("notified", Boolean, nullable=False, default=False, server_default=false()),
    # Place in the queue: set when the job enters `queued` (also after an approval), so a
    # job approved late lines up behind those already waiting; ties go to the lower id.
    Column("queue_seq", BigInteger, nullable=True),
    Index(None, "state"),
    Index(None, "command", "state"),
    Index(None, "requester", "state"),
    Index(None, "queue_seq"),
    sqlite_autoincrement=True,  # ids are never reused, even after deletes
)

job_output = Table(
    "job_output",
    metadata,
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("stream", String(16), nullable=False),
    Column("text", Text, nullable=False),
)

job_events = Table(
    "job_events",
    metadata,
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("data", Text, nullable=False),  # JSON object
)

attachments = Table(
    "attachments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("name", any_length(300), nullable=False),
    Column("content_type", any_length(200), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    sqlite_autoincrement=True,  # ids appear in links; never hand one to a different file
)

audit = Table(
    "audit",
    metadata,
    # Assigned by the store (last id + 1 under a lock), so ids stay gap-free on every
    # backend and are part of the hashed entry.
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime, nullable=False),
    Column("action", String(64), nullable=False),
    Column("principal", any_length(300), nullable=False),
    Column("room", any_length(300), nullable=False),
    Column("command", any_length(200), nullable=False),
    Column("params", Text, nullable=True),  # JSON, secrets already masked by the caller
    Column("job_id", Integer, nullable=True),  # no foreign key: the trail outlives jobs
    Column("outcome", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("catalog_commit", String(64), nullable=True),
    Column("script_hash", String(128), nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index(None, "job_id"),
)

# --- 0003: approvals (SPEC §6.3) -----------------------------------------------------------

approvals = Table(
    "approvals",
    metadata,
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("role", any_length(200), nullable=False),
    Column("required", Integer, nullable=False),
    Column("params_hash", String(64), nullable=False),
    Column("requested_by", any_length(300), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("state", String(16), nullable=False),  # ApprovalState
    Column("decided_at", UTCDateTime, nullable=True),
    Index(None, "state", "expires_at"),
    Index(None, "role", "state"),
)

approval_votes = Table(
    "approval_votes",
    metadata,
    Column("job_id", Integer, ForeignKey("approvals.job_id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("approver", any_length(300), nullable=False),
    Column("decision", String(16), nullable=False),  # VoteDecision
    Column("reason", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
)

# --- 0004: the web console: chat history, accounts, sessions, API tokens (SPEC §9) -------

messages = Table(
    "messages",
    metadata,
    # The id is the event's `seq`: SSE `id:` and `Last-Event-ID` resume from it.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("room", any_length(300), nullable=False),
    Column("author", any_length(300), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("payload", Text, nullable=False),  # JSON object
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "room", "id"),
    sqlite_autoincrement=True,
)

web_users = Table(
    "web_users",
    metadata,
    Column("username", any_length(100), primary_key=True),
    Column("password_hash", String(300), nullable=False),  # scrypt, salted; never the password
    Column("admin", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),  # sha256 of the cookie value
    Column(
        "username",
        any_length(100),
        ForeignKey("web_users.username", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index(None, "expires_at"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", any_length(200), nullable=False),
    Column(
        "username",
        any_length(100),
        ForeignKey("web_users.username", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 of the token
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
    sqlite_autoincrement=True,
)

# --- 0005: chat deliveries already received (platform retries run once) ----------------

deliveries = Table(
    "deliveries",
    metadata,
    Column("key", any_length(300), primary_key=True),  # e.g. slack:<team>:<channel>:<ts>
    Column("received_at", UTCDateTime, nullable=False),
    Index(None, "received_at"),
)

# --- 0006: replies kept while a chat platform is unreachable (SPEC §5.2) ------------------

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # delivery order
    Column("adapter", String(64), nullable=False),
    Column("room", any_length(300), nullable=False),
    Column("thread_id", any_length(300), nullable=True),
    Column("job_id", Integer, nullable=True),  # no foreign key: a reply outlives a pruned job
    # A live view of a job (its status message, or its latest progress) replaces the
    # older undelivered views of that job in the same room.
    Column("live", Boolean, nullable=False, default=False),
    Column("reply", Text, nullable=False),  # JSON, opsroom.model.wire
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "adapter", "id"),
    Index(None, "adapter", "room", "job_id"),
    sqlite_autoincrement=True,
)

# --- 0007: schedules (SPEC §5.7) -----------------------------------------------------------

schedules = Table(
    "schedules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cron", any_length(200), nullable=False),
    Column("tz", String(64), nullable=False),
    Column("command", Text, nullable=False),  # as typed, without the prefix
    Column("room", any_length(300), nullable=False),
    Column("creator", any_length(300), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("paused", Boolean, nullable=False, default=False),
    # Due times up to the cursor were dealt with; a claim moves it forward only if
    # `version` is still the one the claiming process read (compare-and-set).
    Column("cursor", UTCDateTime, nullable=False),
    Column("version", Integer, nullable=False, default=0),
    Column("last_due", UTCDateTime, nullable=True),
    Column("last_job_id", Integer, nullable=True),  # no foreign key: jobs may be pruned
    Column("last_result", String(500), nullable=False, default=""),
    Index(None, "room"),
    Index(None, "creator"),
    sqlite_autoincrement=True,  # an old `schedule rm 3` never hits a newer schedule
)

# --- 0009: workers on other hosts (SPEC §8) ------------------------------------------------

workers = Table(
    "workers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", any_length(200), nullable=False),
    Column("queue", any_length(200), nullable=False),
    Column("host", any_length(300), nullable=False),
    Column("os", any_length(200), nullable=False),
    Column("version", String(64), nullable=False),
    Column("catalog_commit", String(64), nullable=True),
    # The worker process as `jobs.owner` names it: its running jobs are those it owns.
    Column("owner", any_length(300), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    # Written with the database's clock, so hosts whose clocks differ compare fairly.
    Column("last_heartbeat", UTCDateTime, nullable=False),
    Column("lost_at", UTCDateTime, nullable=True),  # stopped beating: its jobs interrupted
    Column("stopped_at", UTCDateTime, nullable=True),  # stopped cleanly
    Index(None, "queue"),
    Index(None, "owner"),
    sqlite_autoincrement=True,
)

remote_jobs = Table(
    "remote_jobs",
    metadata,
    # A job handed to the workers of a queue, and its task in the workers' job queue.
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("queue", any_length(200), nullable=False),
    Column("task_id", BigInteger, nullable=True),
    Column("deferred_at", UTCDateTime, nullable=False),
)

job_replies = Table(
    "job_replies",
    metadata,
    # What a worker said in the job's room, in order, for the bot to pass on.
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("reply", Text, nullable=True),  # JSON (opsroom.model.wire); NULL: the worker is done
)

# --- 0010: several bots on one store (SPEC §8) ----------------------------------------------

bots = Table(
    "bots",
    metadata,
    # One `opsroom serve` process, so the others can tell when it is gone: its local jobs
    # are then interrupted and the jobs it followed on workers are followed by another.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner", any_length(300), nullable=False),  # as `jobs.owner` names the process
    Column("host", any_length(300), nullable=False),
    Column("version", String(64), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    # Written with the database's clock, as workers' heartbeats are.
    Column("last_heartbeat", UTCDateTime, nullable=False),
    Column("lost_at", UTCDateTime, nullable=True),  # stopped beating
    Column("stopped_at", UTCDateTime, nullable=True),  # stopped cleanly
    Index(None, "owner"),
    sqlite_autoincrement=True,
)

followers = Table(
    "followers",
    metadata,
    # Which process passes on a worker's replies for a job (a bot, or `opsroom run`), and
    # the last reply it passed on: another bot takes over from there when that one is gone.
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("follower", any_length(300), nullable=False),
    Column("passed", Integer, nullable=False, default=0),
    Index(None, "follower"),
)
