"""A plan's stages as orchestrators present them, and a run's storage as they manage it.

`describe_stage` says what a stage does in words (name, SQL, inputs, output, partitions) for
task docs and artifacts; `source_files` lists the files a stage reads directly, with sizes and
modification times, for cache keys; `run_stored` and `drop_intermediates` look at and remove a
run's stage outputs (sink datasets are never touched).
"""

from __future__ import annotations

import dataclasses

from pond_core.io.filesystems import get_filesystem
from pond_core.io.options import StorageOptions
from pond_core.io.paths import resolve_files
from pond_core.layout import RunLayout
from pond_core.plan.physical import (
    ExchangeOutput,
    PhysicalPlan,
    PythonStep,
    SinkOutput,
    SourceInput,
    SqlStep,
    Stage,
    UpstreamInput,
)
from pond_core.settings import Settings


@dataclasses.dataclass(frozen=True)
class StageDescription:
    id: str
    name: str
    sql: tuple[str, ...]  # the SQL of each step, in order
    python: tuple[str, ...]  # Python steps, e.g. "map(clean_row)"
    inputs: tuple[str, ...]  # "orders/*.parquet (parquet)", "orders_by_customer_id (bucket)"
    output: str  # "hash exchange into 4 buckets by customer_id", "dataset /out (overwrite_partitions, by dt)"
    partitions: int | None  # None: decided at run time from the input files
    depends_on: tuple[str, ...]  # names of the upstream stages


def describe_stage(plan: PhysicalPlan, stage: Stage) -> StageDescription:
    inputs = []
    for inp in stage.inputs:
        if isinstance(inp, SourceInput):
            inputs += [f"{p} ({inp.source.format.value})" for p in inp.source.paths]
        elif isinstance(inp, UpstreamInput):
            inputs.append(f"{plan.stage(inp.stage).name} ({inp.split.value})")
    return StageDescription(
        id=stage.id,
        name=stage.name,
        sql=tuple(s.query for s in stage.steps if isinstance(s, SqlStep)),
        python=tuple(s.label for s in stage.steps if isinstance(s, PythonStep)),
        inputs=tuple(inputs),
        output=describe_output(stage),
        partitions=stage.npartitions or None,
        depends_on=tuple(plan.stage(sid).name for sid in stage.depends_on),
    )


def describe_output(stage: Stage) -> str:
    out = stage.output
    if isinstance(out, ExchangeOutput):
        how = f" by {', '.join(out.keys)}" if out.keys else (f" by {out.expr}" if out.expr else "")
        return f"{out.method.value} exchange into {out.npartitions} buckets{how}"
    if isinstance(out, SinkOutput):
        parts = f", partitioned by {', '.join(out.sink.partition_by)}" if out.sink.partition_by else ""
        return f"dataset {out.sink.path} ({out.sink.mode}{parts})"
    return "intermediate files"


@dataclasses.dataclass(frozen=True)
class SourceFile:
    path: str
    size: int
    mtime_ns: int | None  # local: st_mtime_ns; S3: the listed LastModified


def source_files(stage: Stage, storage: StorageOptions | None = None) -> list[SourceFile]:
    """Every file the stage reads from its sources, with size and modification time (from the
    listing that finds them: no file is looked at twice)."""
    return [
        SourceFile(f.path, f.size, f.mtime_ns)
        for inp in stage.sources
        for f in resolve_files(list(inp.source.paths), inp.source.recursive, storage)
    ]


def run_stored(run_id: str, settings: Settings, storage: StorageOptions | None = None) -> bool:
    """True if the run's folder (its staged stage outputs) exists in storage."""
    layout = RunLayout(settings.data_root, run_id)
    return get_filesystem(layout.run_root, storage).exists(layout.run_root)


def drop_intermediates(run_id: str, settings: Settings, storage: StorageOptions | None = None) -> None:
    """Delete the run's stage outputs (exchanges, intermediate files); sinks stay as committed."""
    layout = RunLayout(settings.data_root, run_id)
    get_filesystem(layout.staging, storage).delete(layout.staging, recursive=True)
