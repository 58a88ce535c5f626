"""domain slots: SMTP transactions under way per recipient domain, counted by every worker

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 00:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import mailer.models

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "domain_slot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("domain", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("worker", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("until", mailer.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("domain_slot", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_domain_slot_domain"), ["domain"], unique=False)
        batch_op.create_index(batch_op.f("ix_domain_slot_worker"), ["worker"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("domain_slot", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_domain_slot_worker"))
        batch_op.drop_index(batch_op.f("ix_domain_slot_domain"))
    op.drop_table("domain_slot")
