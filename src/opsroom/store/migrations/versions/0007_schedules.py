"""Schedules: commands run on a cron in a time zone, posting to a room (SPEC §5.7).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the schedules table."""
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cron", sa.String(200), nullable=False),
        sa.Column("tz", sa.String(64), nullable=False),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("room", sa.String(300), nullable=False),
        sa.Column("creator", sa.String(300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("cursor", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("last_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_job_id", sa.Integer(), nullable=True),
        sa.Column("last_result", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_schedules"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_schedules_room", "schedules", ["room"])
    op.create_index("ix_schedules_creator", "schedules", ["creator"])


def downgrade() -> None:
    """Remove the schedules table."""
    op.drop_index("ix_schedules_creator", table_name="schedules")
    op.drop_index("ix_schedules_room", table_name="schedules")
    op.drop_table("schedules")
