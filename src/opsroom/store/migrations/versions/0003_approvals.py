"""Approvals: a job's request for approval and the votes cast on it.

Revision ID: 0003
Revises: 0002
Create Date: 2024-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the approvals and approval_votes tables (existing rows are untouched)."""
    op.create_table(
        "approvals",
        sa.Column("job_id", sa.Integer, nullable=False),
        sa.Column("role", sa.String(200), nullable=False),
        sa.Column("required", sa.Integer, nullable=False),
        sa.Column("params_hash", sa.String(64), nullable=False),
        sa.Column("requested_by", sa.String(300), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("job_id", name="pk_approvals"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_approvals_job_id_jobs", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_approvals_state_expires_at", "approvals", ["state", "expires_at"])
    op.create_index("ix_approvals_role_state", "approvals", ["role", "state"])
    op.create_table(
        "approval_votes",
        sa.Column("job_id", sa.Integer, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("approver", sa.String(300), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "seq", name="pk_approval_votes"),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["approvals.job_id"],
            name="fk_approval_votes_job_id_approvals",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    """Remove the approval tables."""
    op.drop_table("approval_votes")
    op.drop_index("ix_approvals_role_state", table_name="approvals")
    op.drop_index("ix_approvals_state_expires_at", table_name="approvals")
    op.drop_table("approvals")
