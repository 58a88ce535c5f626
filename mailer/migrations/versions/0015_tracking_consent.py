"""tracking consent per contact, its evidence, and whether each message was tracked

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 02:40:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import mailer.models


revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('tracking_consent_record',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('value', sa.String(length=16), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('wording', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('ip', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('recorded_by', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
    sa.Column('recorded_at', mailer.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('tracking_consent_record', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tracking_consent_record_contact_id'), ['contact_id'], unique=False)

    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tracking_consent', sa.String(length=16), server_default='unknown', nullable=False))

    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('individually_tracked', sa.Boolean(), nullable=True))

    with op.batch_alter_table('subscription_request', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tracking_consent', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('tracking_wording', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('subscription_request', schema=None) as batch_op:
        batch_op.drop_column('tracking_wording')
        batch_op.drop_column('tracking_consent')

    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.drop_column('individually_tracked')

    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.drop_column('tracking_consent')

    with op.batch_alter_table('tracking_consent_record', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tracking_consent_record_contact_id'))

    op.drop_table('tracking_consent_record')
