"""zalo_tokens.configured: which configured pair a stored token grew from

Revision ID: 634c38ba07ec
Revises: b11c7e0f8c66
Create Date: 2026-11-27 23:31:53.776820

Runs on SQLite and PostgreSQL (tests/test_migrations.py runs it on both). Never touch Rasa's
`events` table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '634c38ba07ec'
down_revision: str | Sequence[str] | None = 'b11c7e0f8c66'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('zalo_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('configured', sa.String(length=64), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('zalo_tokens', schema=None) as batch_op:
        batch_op.drop_column('configured')

