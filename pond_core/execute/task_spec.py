"""TaskSpec: everything one partition task needs, resolved by the driver into plain data.

A task is the same function in this process or on a Ray worker, so its spec holds exact file
lists (never a glob), the SQL that reads each input, the steps, where the output goes, the
resources, and the storage options (secrets included: a spec never reaches a log or a plan;
`repr` hides them).
"""

from __future__ import annotations

import dataclasses
from typing import Union

from pond_core.io.options import StorageOptions
from pond_core.plan.physical import ExchangeOutput, Step
from pond_core.specs.sink import SinkSpec


@dataclasses.dataclass(frozen=True)
class FilesTarget:
    """Write the result as one Parquet file at `path`."""

    path: str


@dataclasses.dataclass(frozen=True)
class ExchangeTarget:
    """Write the result bucketed (one directory per bucket) under `dir`."""

    dir: str
    exchange: ExchangeOutput


@dataclasses.dataclass(frozen=True)
class SinkTarget:
    """Run the sink's COPY statement (`select_token` stands for the task's rows)."""

    copy_sql: str
    sink: SinkSpec
    write_id: str


@dataclasses.dataclass(frozen=True)
class BucketedTarget:
    """Write the result split by its partition column (a fused stage) under `dir`."""

    dir: str


TaskTarget = Union[FilesTarget, ExchangeTarget, SinkTarget, BucketedTarget]


@dataclasses.dataclass(frozen=True)
class Relation:
    """A named input of the task and the SQL that reads its files for this partition."""

    name: str
    sql: str


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    run_id: str
    stage_id: str
    stage_name: str
    partition: int
    attempt: int
    relations: tuple[Relation, ...]
    steps: tuple[Step, ...]
    result: str  # the relation whose rows are written
    target: TaskTarget
    threads: int
    memory_bytes: int  # DuckDB's memory_limit; what the task reserves where a scheduler reserves memory (Ray)
    spill_dir: str
    storage: StorageOptions = dataclasses.field(repr=False, default_factory=StorageOptions)
    paths: tuple[str, ...] = ()  # every URL the task touches (decides whether S3 is set up)
    # Speculation on Ray: a task still running after `report_running_after` seconds writes the
    # node it runs on to `running_record`, so a copy of it can be placed on another node.
    running_record: str = ""
    report_running_after: float | None = None
    avoid_node: str | None = None  # a speculative copy: run anywhere but on this node

    @property
    def where(self) -> str:
        return f"stage {self.stage_name} partition {self.partition}"

    @property
    def reserved_bytes(self) -> int:
        """What the task reserves on Ray: its DuckDB limit plus the measured overhead (see
        execute/task_memory.py)."""
        from pond_core.execute.task_memory import reserved_bytes

        return reserved_bytes(self.memory_bytes)

    @property
    def memory_limit(self) -> str:
        """DuckDB's memory_limit setting."""
        return f"{self.memory_bytes >> 20}MiB"
