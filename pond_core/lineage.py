"""Neutral lineage: what each stage read and wrote.

Both providers translate these records (OpenLineage facets and Asset events in Airflow, assets
and artifacts in Prefect); pond_core knows neither. Dataset names:

- sources and sinks: their path or s3:// URL as the user wrote it;
- intermediate stage outputs: `pond://<pipeline>/<stage name>`, stable across runs.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any

from pond_core import column_lineage
from pond_core.checks import CheckResult
from pond_core.column_lineage import ColumnLineage, PlanLineage
from pond_core.io.options import StorageOptions
from pond_core.plan.physical import PhysicalPlan, Schema, SinkOutput, SourceInput, Stage, UpstreamInput


@dataclasses.dataclass(frozen=True)
class LineageDataset:
    uri: str
    schema: Schema | None = None
    rows: int | None = None
    bytes: int | None = None
    format: str | None = None
    assertions: tuple[CheckResult, ...] = ()  # the checks run on this output before its commit
    columns: ColumnLineage | None = None  # an output's columns -> the source columns each comes from

    def to_dict(self) -> dict[str, Any]:
        """The catalog's and the providers' form: fields as {"name", "type"} dicts."""
        out: dict[str, Any] = {
            "uri": self.uri,
            "schema": None if not self.schema else [{"name": n, "type": t} for n, t in self.schema],
            "rows": self.rows,
        }
        if self.bytes is not None:
            out["bytes"] = self.bytes
        if self.format is not None:
            out["format"] = self.format
        if self.assertions:
            out["assertions"] = [assertion_dict(r) for r in self.assertions]
        if self.columns is not None:
            out["column_lineage"] = column_lineage.to_json(self.columns)
        return out


def assertion_dict(result: CheckResult) -> dict[str, Any]:
    """A check result in the shape of OpenLineage's DataQualityAssertions assertion."""
    return {
        "assertion": result.kind.value, "success": result.passed, "column": result.columns_checked or None,
        "severity": result.severity.value, "name": result.name, "actual": str(result.failing),
    }


def with_assertions(record: LineageRecord, results: tuple[CheckResult, ...]) -> LineageRecord:
    """`record` whose output carries these check results (a stage whose checks failed)."""
    outputs = tuple(dataclasses.replace(d, assertions=results) for d in record.outputs)
    return dataclasses.replace(record, outputs=outputs)


@dataclasses.dataclass(frozen=True)
class LineageRecord:
    """One stage's lineage: inputs, outputs, SQL and when it ran (None before it ran)."""

    stage_id: str
    stage: str
    inputs: tuple[LineageDataset, ...]
    outputs: tuple[LineageDataset, ...]
    sql: str | None
    run_id: str | None = None
    started_at: float | None = None
    finished_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "stage_id": self.stage_id, "stage": self.stage,
            "inputs": [d.to_dict() for d in self.inputs], "outputs": [d.to_dict() for d in self.outputs],
            "sql": self.sql, "started_at": self.started_at, "finished_at": self.finished_at,
        }


def stage_dataset(plan: PhysicalPlan, stage: Stage, scope: str | None = None) -> str:
    """A sink's path, or `pond://<scope>/<stage name>` for an intermediate output. `scope`
    (default: the pipeline) is where the intermediate lives: an orchestrator passes its own
    pipeline instance (an Airflow DAG and task group), so two DAGs of one pipeline never share
    an intermediate dataset."""
    if isinstance(stage.output, SinkOutput):
        return stage.output.sink.path
    return f"pond://{(scope or plan.pipeline or 'session').replace(':', '.')}/{stage.name}"


UpstreamStats = Mapping[str, Mapping[str, Any]]  # stage id -> its recorded result (schema, rows)


def stage_lineage(
    plan: PhysicalPlan,
    stage: Stage,
    result: Any = None,
    upstream: UpstreamStats | None = None,
    scope: str | None = None,
    storage: StorageOptions | None = None,
    columns: bool | None = None,
) -> LineageRecord:
    """The neutral record of a stage; with its StageResult once it committed (`scope`: see
    stage_dataset). Its output carries the column lineage when `columns` (default: for a
    sink, the dataset a user asks about; tracing costs a reading of each source's schema
    and a parse of each SQL step, once a run). Sources are read with `storage` (default: the
    AWS environment)."""
    inputs: list[LineageDataset] = []
    for inp in stage.inputs:
        if isinstance(inp, SourceInput):
            inputs += [LineageDataset(path, format=inp.source.format.value) for path in inp.source.paths]
        elif isinstance(inp, UpstreamInput):
            rec = (upstream or {}).get(inp.stage) or {}
            schema = tuple((n, t) for n, t in rec.get("schema") or ()) or None
            inputs.append(LineageDataset(stage_dataset(plan, plan.stage(inp.stage), scope), schema, rec.get("rows")))
    traced = None
    if columns or (columns is None and isinstance(stage.output, SinkOutput)):
        traced = plan_lineage(plan, None if result is None else result.run_id, storage).stage(stage.id)
    if result is None:
        output = LineageDataset(stage_dataset(plan, stage, scope), columns=traced)
    else:
        traced = None if traced is None else column_lineage.matching_case(traced, result.schema)
        output = LineageDataset(
            stage_dataset(plan, stage, scope), result.schema or None, result.rows, result.bytes, assertions=result.checks, columns=traced
        )
    return LineageRecord(
        stage_id=stage.id,
        stage=stage.name,
        inputs=tuple(inputs),
        outputs=(output,),
        sql="\n;\n".join(stage.sql) or None,
        run_id=None if result is None else result.run_id,
        started_at=None if result is None else result.started_at,
        finished_at=None if result is None else result.finished_at,
    )


_PLANS: dict[tuple[str, str | None], PlanLineage] = {}
_PLANS_KEPT = 8
_PLANS_LOCK = threading.Lock()


def plan_lineage(plan: PhysicalPlan, run_id: str | None, storage: StorageOptions | None = None) -> PlanLineage:
    """The plan's column lineage, kept for the run: its stages' records share one reading of
    each source's schema (a run's sources do not change under it)."""
    from pond_core.source_schemas import source_schema

    key = (plan.fingerprint, run_id)
    with _PLANS_LOCK:
        if key not in _PLANS:
            options = storage or StorageOptions.from_env()
            while len(_PLANS) >= _PLANS_KEPT:
                del _PLANS[next(iter(_PLANS))]
            _PLANS[key] = PlanLineage(plan, lambda inp: source_schema(inp, options))
        return _PLANS[key]
