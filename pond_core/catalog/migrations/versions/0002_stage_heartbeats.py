"""Stage heartbeats: the driver running a stage stamps `heartbeat_at` while it runs, so a stage
left `running` by a driver that died can be told from one that still runs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column: SQLite adds it in place, no table rebuild.
    op.add_column("pond_stage_runs", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pond_stage_runs") as batch:
        batch.drop_column("heartbeat_at")
