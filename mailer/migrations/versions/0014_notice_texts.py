"""staff's wording of transactional messages, with revisions

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import mailer.models

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notice_text_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("texts", sa.JSON(), nullable=True),
        sa.Column("author", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("created_at", mailer.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "number", name="uq_notice_text_revision"),
    )
    with op.batch_alter_table("notice_text_revision", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notice_text_revision_kind"), ["kind"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("notice_text_revision", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notice_text_revision_kind"))
    op.drop_table("notice_text_revision")
