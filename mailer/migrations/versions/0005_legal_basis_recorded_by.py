"""legal basis evidence names who recorded it

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 23:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('legal_basis_record', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('recorded_by', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table('legal_basis_record', schema=None) as batch_op:
        batch_op.drop_column('recorded_by')
