"""zalo dead letters: retries with backoff and a dead-letter state for the Zalo inbox and
outbox (bot/catalog/models.py ZaloInbox, ZaloOutbox; issue 18 item 10)

Revision ID: 83ac7e2ad726
Revises: a98ef041acfe
Create Date: 2026-12-07 20:05:30.050888

Only adds columns (the one NOT NULL column has a server default): the previous release keeps
working on a database at this revision. Runs on SQLite and PostgreSQL
(tests/test_migrations.py runs it on both). Never touch Rasa's `events` table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "83ac7e2ad726"
down_revision: str | Sequence[str] | None = "a98ef041acfe"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("zalo_inbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0",
                                      nullable=False))
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("dead_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("retried_at", sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f("ix_zalo_inbox_dead_at"), ["dead_at"], unique=False)

    with op.batch_alter_table("zalo_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dead_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("retried_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("zalo_outbox", schema=None) as batch_op:
        batch_op.drop_column("retried_at")
        batch_op.drop_column("dead_at")

    with op.batch_alter_table("zalo_inbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_zalo_inbox_dead_at"))
        batch_op.drop_column("retried_at")
        batch_op.drop_column("dead_at")
        batch_op.drop_column("last_error")
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("attempts")
