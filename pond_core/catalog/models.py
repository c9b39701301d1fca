"""The catalog's tables, as SQLAlchemy 2 declarative models.

Every table is prefixed `pond_` and the Alembic version table is `pond_alembic_version`, so the
catalog can live in a database that other applications (Airflow's metadata DB, say) also use.
Column names avoid SQL keywords (`row_count`, not `rows`) so hand-written SQL stays simple.
The API never hands these objects out: callers get plain dicts (see `convert.py`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Explicit names keep future migrations (and SQLite batch rebuilds) deterministic.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Run and stage-run states.
RUNNING = "running"
SUCCESS = "success"
FAILED = "failed"
FINAL_STATES = (SUCCESS, FAILED)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timestamps stored in UTC and always read back timezone-aware.

    SQLite has no timezone type; storing naive UTC everywhere keeps string comparison (used by
    retention queries) correct there and makes both backends return the same values.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Run(Base):
    """One pipeline run; rerunning a finished run_id bumps `attempts` instead of adding a row."""

    __tablename__ = "pond_runs"

    run_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(255), index=True)
    params: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    plan_fingerprint: Mapped[str | None] = mapped_column(String(128))
    executor: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class StageRun(Base):
    """One stage of one run. Counters accumulate over attempts; result is the last success's."""

    __tablename__ = "pond_stage_runs"

    run_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("pond_runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    stage_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    stage_name: Mapped[str] = mapped_column(String(255))
    npartitions: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    task_retries: Mapped[int] = mapped_column(Integer, default=0)
    node_failures: Mapped[int] = mapped_column(Integer, default=0)
    speculative_attempts: Mapped[int] = mapped_column(Integer, default=0)
    row_count: Mapped[int | None] = mapped_column(BigInteger)
    byte_count: Mapped[int | None] = mapped_column(BigInteger)
    file_count: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[float | None] = mapped_column(Float)
    result: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())  # see pond_core/heartbeat.py
    position: Mapped[int | None] = mapped_column(Integer)  # the stage's index in its plan


class StageLease(Base):
    """The driver that runs a stage of a run now; renewed by its heartbeat (see leases.py)."""

    __tablename__ = "pond_stage_leases"

    run_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("pond_runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    stage_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    renewed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Dataset(Base):
    """A dataset known by its URI (a storage path or URL, credentials stripped)."""

    __tablename__ = "pond_datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uri: Mapped[str] = mapped_column(Text, unique=True)
    schema_fields: Mapped[list | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Partition(Base):
    """What one (run, stage) committed to one partition key of a dataset.

    Overwrites leave a single row per key; appends add one row per writer, so a retried
    append from the same (run, stage) replaces its own row instead of counting twice.
    Partitions have no foreign key to runs: deleting an old run keeps the data it wrote listed.
    """

    __tablename__ = "pond_partitions"
    __table_args__ = (UniqueConstraint("dataset_id", "partition_key", "run_id", "stage_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("pond_datasets.id", ondelete="CASCADE")
    )
    partition_key: Mapped[str] = mapped_column(String(1024))
    partition_values: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    file_count: Mapped[int] = mapped_column(Integer)
    row_count: Mapped[int | None] = mapped_column(BigInteger)
    byte_count: Mapped[int | None] = mapped_column(BigInteger)
    run_id: Mapped[str] = mapped_column(String(255))
    stage_id: Mapped[str] = mapped_column(String(128))
    committed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class LineageRecord(Base):
    """The neutral lineage record of one stage run: its SQL and timings (one per run+stage)."""

    __tablename__ = "pond_lineage_records"
    __table_args__ = (UniqueConstraint("run_id", "stage_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("pond_runs.run_id", ondelete="CASCADE")
    )
    stage_id: Mapped[str] = mapped_column(String(128))
    sql_text: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class LineageEdge(Base):
    """A dataset read (`input`) or written (`output`) by a lineage record, as seen then."""

    __tablename__ = "pond_lineage_edges"
    __table_args__ = (Index(None, "dataset_id", "direction"),)

    record_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("pond_lineage_records.id", ondelete="CASCADE"), primary_key=True
    )
    dataset_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("pond_datasets.id", ondelete="CASCADE"), primary_key=True
    )
    direction: Mapped[str] = mapped_column(String(8), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    schema_fields: Mapped[list | None] = mapped_column(JSON(none_as_null=True))
    row_count: Mapped[int | None] = mapped_column(BigInteger)
    # An output's columns -> [{"dataset", "column"}] it is computed from (migration 0005).
    column_lineage: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))


def table_of(model: type[Base]) -> Table:
    """A model's Table (SQLAlchemy types `__table__` as a FromClause)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table
