"""Jobs, job output and events, and the hash-chained audit trail.

Revision ID: 0001
Revises:
Create Date: 2024-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the first tables."""
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("command", sa.String(200), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("requester", sa.String(300), nullable=False),
        sa.Column("room", sa.String(300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exit_code", sa.Integer, nullable=True),
        sa.Column("catalog_commit", sa.String(64), nullable=True),
        sa.Column("script_hash", sa.String(128), nullable=True),
        sa.Column("owner", sa.String(300), nullable=True),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_jobs_state", "jobs", ["state"])
    op.create_index("ix_jobs_requester", "jobs", ["requester"])

    op.create_table(
        "job_output",
        sa.Column("job_id", sa.Integer, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("stream", sa.String(16), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("job_id", "seq", name="pk_job_output"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_job_output_job_id_jobs", ondelete="CASCADE"
        ),
    )

    op.create_table(
        "job_events",
        sa.Column("job_id", sa.Integer, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("job_id", "seq", name="pk_job_events"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_job_events_job_id_jobs", ondelete="CASCADE"
        ),
    )

    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("principal", sa.String(300), nullable=False),
        sa.Column("room", sa.String(300), nullable=False),
        sa.Column("command", sa.String(200), nullable=False),
        sa.Column("params", sa.Text, nullable=True),
        sa.Column("job_id", sa.Integer, nullable=True),
        sa.Column("outcome", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("catalog_commit", sa.String(64), nullable=True),
        sa.Column("script_hash", sa.String(128), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit"),
    )
    op.create_index("ix_audit_job_id", "audit", ["job_id"])


def downgrade() -> None:
    """Drop everything the first revision created."""
    op.drop_table("audit")
    op.drop_table("job_events")
    op.drop_table("job_output")
    op.drop_table("jobs")
