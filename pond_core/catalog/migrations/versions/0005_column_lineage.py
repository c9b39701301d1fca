"""Column lineage: an output edge of a lineage record holds, for each column the stage wrote,
the source dataset columns it is computed from (pond_core/column_lineage.py).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pond_lineage_edges", sa.Column("column_lineage", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pond_lineage_edges") as batch:
        batch.drop_column("column_lineage")
