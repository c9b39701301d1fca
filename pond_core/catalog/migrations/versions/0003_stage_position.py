"""Stage position: a stage's index in its plan, so a run lists its stages in plan order
(stages that run at once start in any order).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column: SQLite adds it in place, no table rebuild.
    op.add_column("pond_stage_runs", sa.Column("position", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pond_stage_runs") as batch:
        batch.drop_column("position")
