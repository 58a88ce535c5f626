"""who recorded a library's membership (the directory import or staff)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 03:00:00.000000
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("library", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "membership_source", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True
            )
        )
    # Until now only staff recorded JOINED events (the console, `sdruk libraries join`, an
    # approved application); a member without one was made a member by an import.
    conn = op.get_bind()
    by_staff: set[int] = set()
    for (detail,) in conn.execute(sa.text("SELECT detail FROM event WHERE kind = 'joined'")):
        data = json.loads(detail) if isinstance(detail, str) else detail
        if isinstance(data, dict) and isinstance(data.get("library_id"), int):
            by_staff.add(data["library_id"])
    members = conn.execute(sa.text("SELECT id FROM library WHERE is_member")).scalars().all()
    for library_id in members:
        conn.execute(
            sa.text("UPDATE library SET membership_source = :source WHERE id = :id"),
            {"source": "staff" if library_id in by_staff else "import", "id": library_id},
        )


def downgrade() -> None:
    with op.batch_alter_table("library", schema=None) as batch_op:
        batch_op.drop_column("membership_source")
