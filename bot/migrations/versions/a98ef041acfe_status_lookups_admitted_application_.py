"""status_lookups: admitted status look-ups, counted by the per-client and global limits
(bot/catalog/models.py StatusLookup; issue 18 item 5)

Revision ID: a98ef041acfe
Revises: 5d7c743b6f0a
Create Date: 2026-12-07 19:57:15.553545

Only adds a table: the previous release keeps working on a database at this revision. Runs
on SQLite and PostgreSQL (tests/test_migrations.py runs it on both). Never touch Rasa's
`events` table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "a98ef041acfe"
down_revision: str | Sequence[str] | None = "5d7c743b6f0a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "status_lookups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("looked_up_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("status_lookups", schema=None) as batch_op:
        batch_op.create_index("ix_status_lookups_client_at", ["client", "looked_up_at"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_status_lookups_looked_up_at"), ["looked_up_at"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("status_lookups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_status_lookups_looked_up_at"))
        batch_op.drop_index("ix_status_lookups_client_at")
    op.drop_table("status_lookups")
