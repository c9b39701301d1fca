"""Initial catalog schema: runs, stage runs, datasets, partitions, lineage.

Stage runs carry task_retries, node_failures and speculative_attempts from the start so the
scale-out work can report them without a migration.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool) -> sa.Column:
    # Frozen here on purpose: migrations must not import the (evolving) models.
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _json(name: str) -> sa.Column:
    return sa.Column(name, sa.JSON(none_as_null=True), nullable=True)


def upgrade() -> None:
    op.create_table(
        "pond_runs",
        sa.Column("run_id", sa.String(255), nullable=False),
        sa.Column("pipeline", sa.String(255), nullable=False),
        _json("params"),
        sa.Column("plan_fingerprint", sa.String(128), nullable=True),
        sa.Column("executor", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("created_at", False),
        _ts("started_at", False),
        _ts("finished_at", True),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_pond_runs")),
    )
    op.create_index(op.f("ix_pond_runs_pipeline"), "pond_runs", ["pipeline"])
    op.create_index(op.f("ix_pond_runs_started_at"), "pond_runs", ["started_at"])
    op.create_index(op.f("ix_pond_runs_status"), "pond_runs", ["status"])

    op.create_table(
        "pond_stage_runs",
        sa.Column("run_id", sa.String(255), nullable=False),
        sa.Column("stage_id", sa.String(128), nullable=False),
        sa.Column("stage_name", sa.String(255), nullable=False),
        sa.Column("npartitions", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("task_retries", sa.Integer(), nullable=False),
        sa.Column("node_failures", sa.Integer(), nullable=False),
        sa.Column("speculative_attempts", sa.Integer(), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=True),
        sa.Column("byte_count", sa.BigInteger(), nullable=True),
        sa.Column("file_count", sa.Integer(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        _json("result"),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("started_at", False),
        _ts("finished_at", True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["pond_runs.run_id"],
            name=op.f("fk_pond_stage_runs_run_id_pond_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "stage_id", name=op.f("pk_pond_stage_runs")),
    )

    op.create_table(
        "pond_datasets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        _json("schema_fields"),
        _ts("created_at", False),
        _ts("updated_at", False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pond_datasets")),
        sa.UniqueConstraint("uri", name=op.f("uq_pond_datasets_uri")),
    )

    op.create_table(
        "pond_partitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("partition_key", sa.String(1024), nullable=False),
        _json("partition_values"),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=True),
        sa.Column("byte_count", sa.BigInteger(), nullable=True),
        sa.Column("run_id", sa.String(255), nullable=False),
        sa.Column("stage_id", sa.String(128), nullable=False),
        _ts("committed_at", False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["pond_datasets.id"],
            name=op.f("fk_pond_partitions_dataset_id_pond_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pond_partitions")),
        sa.UniqueConstraint(
            "dataset_id",
            "partition_key",
            "run_id",
            "stage_id",
            name=op.f("uq_pond_partitions_dataset_id_partition_key_run_id_stage_id"),
        ),
    )

    op.create_table(
        "pond_lineage_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(255), nullable=False),
        sa.Column("stage_id", sa.String(128), nullable=False),
        sa.Column("sql_text", sa.Text(), nullable=True),
        _ts("started_at", True),
        _ts("finished_at", True),
        _ts("recorded_at", False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["pond_runs.run_id"],
            name=op.f("fk_pond_lineage_records_run_id_pond_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pond_lineage_records")),
        sa.UniqueConstraint(
            "run_id", "stage_id", name=op.f("uq_pond_lineage_records_run_id_stage_id")
        ),
    )

    op.create_table(
        "pond_lineage_edges",
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        _json("schema_fields"),
        sa.Column("row_count", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["pond_datasets.id"],
            name=op.f("fk_pond_lineage_edges_dataset_id_pond_datasets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["pond_lineage_records.id"],
            name=op.f("fk_pond_lineage_edges_record_id_pond_lineage_records"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "record_id", "dataset_id", "direction", name=op.f("pk_pond_lineage_edges")
        ),
    )
    op.create_index(
        op.f("ix_pond_lineage_edges_dataset_id_direction"),
        "pond_lineage_edges",
        ["dataset_id", "direction"],
    )


def downgrade() -> None:
    op.drop_table("pond_lineage_edges")
    op.drop_table("pond_lineage_records")
    op.drop_table("pond_partitions")
    op.drop_table("pond_datasets")
    op.drop_table("pond_stage_runs")
    op.drop_table("pond_runs")
