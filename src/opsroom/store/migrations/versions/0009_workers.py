"""Workers on other hosts (SPEC §8): who serves which queue, which jobs went to a queue, and
what a worker said in a job's room, for the bot to pass on.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _name(length: int) -> sa.types.TypeEngine[str]:
    # As store.engine.any_length: unbounded on PostgreSQL, VARCHAR (never enforced) on SQLite.
    return sa.String(length).with_variant(sa.Text(), "postgresql")


def upgrade() -> None:
    """Create the workers, remote_jobs and job_replies tables."""
    op.create_table(
        "workers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", _name(200), nullable=False),
        sa.Column("queue", _name(200), nullable=False),
        sa.Column("host", _name(300), nullable=False),
        sa.Column("os", _name(200), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("catalog_commit", sa.String(64), nullable=True),
        sa.Column("owner", _name(300), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_heartbeat", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lost_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_workers"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_workers_queue", "workers", ["queue"])
    op.create_index("ix_workers_owner", "workers", ["owner"])
    op.create_table(
        "remote_jobs",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("queue", _name(200), nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=True),
        sa.Column("deferred_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_remote_jobs_job_id_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", name="pk_remote_jobs"),
    )
    op.create_table(
        "job_replies",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_job_replies_job_id_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "seq", name="pk_job_replies"),
    )


def downgrade() -> None:
    """Remove the three tables."""
    op.drop_table("job_replies")
    op.drop_table("remote_jobs")
    op.drop_index("ix_workers_owner", table_name="workers")
    op.drop_index("ix_workers_queue", table_name="workers")
    op.drop_table("workers")
