"""Job control across processes: pid, cancel requests, output counts, queue order, files.

Revision ID: 0002
Revises: 0001
Create Date: 2024-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_COUNTERS = ("output_lines", "output_bytes", "output_stored_bytes")
_FLAGS = ("output_truncated", "notified")


def upgrade() -> None:
    """Add the job-control columns, the attachments table and the lookup indexes."""
    # Plain ADD COLUMN (nullable or with a constant default) works in place on SQLite
    # and PostgreSQL alike, so existing jobs keep their rows and ids.
    op.add_column("jobs", sa.Column("pid", sa.Integer, nullable=True))
    op.add_column("jobs", sa.Column("process_token", sa.String(128), nullable=True))
    op.add_column(
        "jobs", sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("jobs", sa.Column("cancel_requested_by", sa.String(300), nullable=True))
    for name in _COUNTERS:
        op.add_column("jobs", sa.Column(name, sa.BigInteger, nullable=False, server_default="0"))
    for name in _FLAGS:
        op.add_column(
            "jobs", sa.Column(name, sa.Boolean, nullable=False, server_default=sa.false())
        )
    op.add_column("jobs", sa.Column("queue_seq", sa.BigInteger, nullable=True))

    # Existing jobs: queue in id order, count the output already kept, and do not
    # announce interruptions that happened before this version (they were never tracked).
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.Integer),
        sa.column("queue_seq", sa.BigInteger),
        sa.column("output_lines", sa.BigInteger),
        sa.column("output_bytes", sa.BigInteger),
        sa.column("output_stored_bytes", sa.BigInteger),
        sa.column("state", sa.String),
        sa.column("notified", sa.Boolean),
    )
    output = sa.table("job_output", sa.column("job_id", sa.Integer), sa.column("text", sa.Text))
    mine = output.c.job_id == jobs.c.id
    kept_lines = sa.select(sa.func.count()).where(mine).scalar_subquery()
    # Bytes as the store counts them: the text (characters; near enough for old rows) + "\n".
    kept_bytes = (
        sa.select(sa.func.coalesce(sa.func.sum(sa.func.length(output.c.text) + 1), 0))
        .where(mine)
        .scalar_subquery()
    )
    op.execute(
        jobs.update().values(
            queue_seq=jobs.c.id,
            output_lines=kept_lines,
            output_bytes=kept_bytes,
            output_stored_bytes=kept_bytes,
        )
    )
    op.execute(jobs.update().where(jobs.c.state == "interrupted").values(notified=sa.true()))

    op.drop_index("ix_jobs_requester", table_name="jobs")
    op.create_index("ix_jobs_command_state", "jobs", ["command", "state"])
    op.create_index("ix_jobs_requester_state", "jobs", ["requester", "state"])
    op.create_index("ix_jobs_queue_seq", "jobs", ["queue_seq"])

    op.create_table(
        "attachments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("content_type", sa.String(200), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_attachments"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_attachments_job_id_jobs", ondelete="CASCADE"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_attachments_job_id", "attachments", ["job_id"])


def downgrade() -> None:
    """Remove what this revision added."""
    op.drop_table("attachments")
    op.drop_index("ix_jobs_queue_seq", table_name="jobs")
    op.drop_index("ix_jobs_requester_state", table_name="jobs")
    op.drop_index("ix_jobs_command_state", table_name="jobs")
    op.create_index("ix_jobs_requester", "jobs", ["requester"])
    with op.batch_alter_table("jobs") as batch:
        for name in ("queue_seq", *_FLAGS, *reversed(_COUNTERS)):
            batch.drop_column(name)
        for name in ("cancel_requested_by", "cancel_requested_at", "process_token", "pid"):
            batch.drop_column(name)
