"""Neutral lineage: what each stage read and wrote, recorded in the catalog.

Both providers translate these records (OpenLineage facets and Asset events in Airflow, assets
and artifacts in Prefect); pond_core knows neither. Dataset names:

- sources and sinks: their path or s3:// URL as the user wrote it;
- intermediate stage outputs: `pond://<pipeline>/<stage name>`, stable across runs.
"""

from __future__ import annotations

from typing import Any

from pond_core.heartbeat import Heartbeat
from pond_core.plan.physical import PhysicalPlan, Stage


def stage_dataset(plan: PhysicalPlan, stage: Stage) -> str:
    if stage.output.kind == "sink":
        return stage.output.sink["path"]
    return f"pond://{(plan.pipeline or 'session').replace(':', '.')}/{stage.name}"


def stage_lineage(plan: PhysicalPlan, stage: Stage, result: dict[str, Any], upstream_results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The neutral record of one committed stage."""
    inputs = []
    for inp in stage.inputs:
        if inp.source is not None:
            for path in inp.source.paths:
                inputs.append({"uri": path, "schema": None, "rows": None, "format": inp.source.format})
        else:
            up = plan.stage(inp.stage)
            rec = upstream_results.get(up.id) or {}
            inputs.append({"uri": stage_dataset(plan, up), "schema": _fields(rec.get("schema")), "rows": rec.get("rows")})
    output = {"uri": stage_dataset(plan, stage), "schema": _fields(result.get("schema")), "rows": result.get("rows")}
    return {
        "run_id": result.get("run_id"),
        "stage_id": stage.id,
        "stage": stage.name,
        "inputs": inputs,
        "outputs": [output],
        "sql": "\n;\n".join(stage.sql) or None,
        "started_at": result.get("started_at"),
        "finished_at": result.get("finished_at"),
    }


def _fields(schema: list[list[str]] | None) -> list[dict[str, str]] | None:
    if not schema:
        return None
    return [{"name": name, "type": typ} for name, typ in schema]


class LineageRecorder:
    """Stage-run hooks that write runs, stages, partitions and lineage to the catalog."""

    def __init__(self, catalog: Any, plan: PhysicalPlan, run_id: str) -> None:
        self.catalog = catalog
        self.plan = plan
        self.run_id = run_id
        self._heartbeats: dict[str, Heartbeat] = {}

    def stage_started(self, stage: Stage, npartitions: int) -> None:
        self.catalog.start_stage(self.run_id, stage.id, stage.name, npartitions)
        beat = lambda: self.catalog.heartbeat(self.run_id, stage.id)  # noqa: E731
        self._heartbeats[stage.id] = Heartbeat(beat, stage.name).start()

    def stage_failed(self, stage: Stage, error: BaseException, seconds: float, counters: dict[str, int] | None = None) -> None:
        """`counters`: task_retries, node_failures, speculative_attempts made before it failed."""
        self._stop_heartbeat(stage)
        counters = counters or {}
        self.catalog.finish_stage(
            self.run_id, stage.id, "failed", rows=None, bytes=None, files=None, duration_s=seconds, result=None,
            error=str(error) if isinstance(error, Exception) else f"interrupted ({type(error).__name__})",
            **counters,
        )

    def stage_finished(self, stage: Stage, result: dict[str, Any], manifest: dict[str, Any] | None) -> None:
        self._stop_heartbeat(stage)
        self.catalog.finish_stage(
            self.run_id,
            stage.id,
            "success",
            rows=result["rows"],
            bytes=result["bytes"],
            files=result["files"],
            duration_s=result["seconds"],
            result=result,
            error=None,
            task_retries=result.get("task_retries", 0),
            node_failures=result.get("node_failures", 0),
            speculative_attempts=result.get("speculative_attempts", 0),
        )
        upstream = {sid: self.catalog.stage_result(self.run_id, sid) or {} for sid in stage.depends_on}
        record = stage_lineage(self.plan, stage, result, upstream)
        self.catalog.record_lineage(
            self.run_id, stage.id, record["inputs"], record["outputs"], record["sql"], record["started_at"], record["finished_at"]
        )
        if stage.output.kind == "sink" and result.get("sink"):
            self.catalog.record_partitions(
                stage.output.sink["path"],
                _partitions(result["sink"]),
                self.run_id,
                stage.id,
                mode=stage.output.sink.get("mode", "error"),
            )


    def _stop_heartbeat(self, stage: Stage) -> None:
        heartbeat = self._heartbeats.pop(stage.id, None)
        if heartbeat is not None:
            heartbeat.stop()


def _partitions(sink_result: dict[str, Any]) -> list[dict[str, Any]]:
    """The written partitions with their counts; an unpartitioned dataset is one partition ''."""
    return sink_result.get("partition_stats") or [
        {"key": "", "values": {}, "files": None, "rows": sink_result.get("rows"), "bytes": sink_result.get("bytes")}
    ]
