"""Names from outside (rooms, principals, commands, files) of any length on PostgreSQL.

SQLite never enforced the VARCHAR lengths, so a long room name or Teams conversation id
was kept there but refused by PostgreSQL, and with it the audit entry the command needed.
On PostgreSQL these columns become TEXT; SQLite is left as it is.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# table -> (column, its length until now)
WIDENED: dict[str, tuple[tuple[str, int], ...]] = {
    "jobs": (
        ("command", 200),
        ("requester", 300),
        ("room", 300),
        ("owner", 300),
        ("cancel_requested_by", 300),
    ),
    "attachments": (("name", 300), ("content_type", 200)),
    "audit": (("principal", 300), ("room", 300), ("command", 200)),
    "approvals": (("role", 200), ("requested_by", 300)),
    "approval_votes": (("approver", 300),),
    "messages": (("room", 300), ("author", 300)),
    "web_users": (("username", 100),),
    "web_sessions": (("username", 100),),
    "api_tokens": (("name", 200), ("username", 100)),
    "deliveries": (("key", 300),),
    "outbox": (("room", 300), ("thread_id", 300)),
    "schedules": (("cron", 200), ("room", 300), ("creator", 300)),
}


def upgrade() -> None:
    """On PostgreSQL, drop the length limits (SQLite never had any in effect)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in WIDENED.items():
        for column, length in columns:
            op.alter_column(table, column, type_=sa.Text(), existing_type=sa.String(length))


def downgrade() -> None:
    """Put the length limits back (fails while a longer value is kept)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in WIDENED.items():
        for column, length in columns:
            op.alter_column(table, column, type_=sa.String(length), existing_type=sa.Text())
