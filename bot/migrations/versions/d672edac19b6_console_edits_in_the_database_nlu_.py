"""console edits in the database: nlu_corrections, fee_overrides (bot/console/inbox_models.py
NluCorrection, bot/fees/models.py FeeOverride; issue 18 item 7)

Revision ID: d672edac19b6
Revises: 83ac7e2ad726
Create Date: 2026-12-07 21:12:09.336282

NLU corrections and fee overrides saved in the console were files inside one gateway
container; every replica and the training now read them here. Only adds tables: the
previous release keeps working on a database at this revision. Runs on SQLite and
PostgreSQL (tests/test_migrations.py runs it on both). Never touch Rasa's `events` table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "d672edac19b6"
down_revision: str | Sequence[str] | None = "83ac7e2ad726"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fee_overrides",
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("province", sa.String(length=8), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("province"),
    )
    op.create_table(
        "nlu_corrections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_sha256", sa.String(length=64), nullable=False),
        sa.Column("intent", sa.String(length=64), nullable=False),
        sa.Column("example", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_sha256"),
    )


def downgrade() -> None:
    op.drop_table("nlu_corrections")
    op.drop_table("fee_overrides")
