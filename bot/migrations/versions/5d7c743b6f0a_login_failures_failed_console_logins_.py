"""login_failures: failed console logins the throttle counts (bot/console/models.py
LoginFailure; issue 18 item 6)

Revision ID: 5d7c743b6f0a
Revises: 634c38ba07ec
Create Date: 2026-12-07 19:56:25.549148

Only adds a table: the previous release keeps working on a database at this revision (its
`operators.failed_logins` / `locked_until` stay, unread by this release). Runs on SQLite and
PostgreSQL (tests/test_migrations.py runs it on both). Never touch Rasa's `events` table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "5d7c743b6f0a"
down_revision: str | Sequence[str] | None = "634c38ba07ec"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_login_failures_at"), "login_failures", ["at"], unique=False)
    op.create_index("ix_login_failures_address_at", "login_failures", ["address", "at"],
                    unique=False)
    op.create_index("ix_login_failures_username_at", "login_failures", ["username", "at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_login_failures_username_at", table_name="login_failures")
    op.drop_index("ix_login_failures_address_at", table_name="login_failures")
    op.drop_index(op.f("ix_login_failures_at"), table_name="login_failures")
    op.drop_table("login_failures")
