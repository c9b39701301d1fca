"""Stage leases: one live driver per stage of a run. A driver holds the lease of each stage
it runs and renews it with its heartbeat; a second driver of the same stage is refused while
the lease is live and takes it over once it is stale (see pond_core/catalog/leases.py).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pond_stage_leases",
        sa.Column("run_id", sa.String(255), sa.ForeignKey("pond_runs.run_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("stage_id", sa.String(128), primary_key=True),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pond_stage_leases")
