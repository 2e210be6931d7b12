"""zalo_leases: which gateway process handles a Zalo user (bot/catalog/models.py ZaloLease)

Revision ID: b11c7e0f8c66
Revises: 3c6f1d2a9b0e
Create Date: 2026-11-27 23:16:22.406831

Runs on SQLite and PostgreSQL (tests/test_migrations.py runs it on both). Never touch Rasa's
`events` table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "b11c7e0f8c66"
down_revision: str | Sequence[str] | None = "3c6f1d2a9b0e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "zalo_leases",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=96), nullable=False),
        sa.Column("lease_until", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id"),
    )


def downgrade() -> None:
    op.drop_table("zalo_leases")
