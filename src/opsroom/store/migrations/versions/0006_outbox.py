"""Replies kept while a chat platform is unreachable, delivered after it is back.

Revision ID: 0006
Revises: 0005
Create Date: 2024-12-18
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the outbox table."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("adapter", sa.String(64), nullable=False),
        sa.Column("room", sa.String(300), nullable=False),
        sa.Column("thread_id", sa.String(300), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("live", sa.Boolean(), nullable=False),
        sa.Column("reply", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_outbox_adapter_id", "outbox", ["adapter", "id"])
    op.create_index("ix_outbox_adapter_room_job_id", "outbox", ["adapter", "room", "job_id"])


def downgrade() -> None:
    """Remove the outbox table."""
    op.drop_index("ix_outbox_adapter_room_job_id", table_name="outbox")
    op.drop_index("ix_outbox_adapter_id", table_name="outbox")
    op.drop_table("outbox")
