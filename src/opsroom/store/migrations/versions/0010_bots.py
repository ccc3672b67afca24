"""Several bots on one store (SPEC §8): the `serve` processes and their heartbeats, and which
process passes on each worker job's replies.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _name(length: int) -> sa.types.TypeEngine[str]:
    # As store.engine.any_length: unbounded on PostgreSQL, VARCHAR (never enforced) on SQLite.
    return sa.String(length).with_variant(sa.Text(), "postgresql")


def upgrade() -> None:
    """Create the bots and followers tables."""
    op.create_table(
        "bots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("owner", _name(300), nullable=False),
        sa.Column("host", _name(300), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_heartbeat", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lost_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_bots"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_bots_owner", "bots", ["owner"])
    op.create_table(
        "followers",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("follower", _name(300), nullable=False),
        sa.Column("passed", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_followers_job_id_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", name="pk_followers"),
    )
    op.create_index("ix_followers_follower", "followers", ["follower"])


def downgrade() -> None:
    """Remove the two tables."""
    op.drop_index("ix_followers_follower", table_name="followers")
    op.drop_table("followers")
    op.drop_index("ix_bots_owner", table_name="bots")
    op.drop_table("bots")
