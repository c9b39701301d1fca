"""CatalogRecorder: a stage run's events written to the catalog — stage status and counters,
the heartbeat while it runs, lineage and, for a sink, the dataset partitions it committed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pond_core.execute.results import AttemptCounters, SinkSummary, StageManifest
from pond_core.heartbeat import Heartbeat
from pond_core.lineage import stage_lineage
from pond_core.plan.physical import PhysicalPlan, SinkOutput, Stage

if TYPE_CHECKING:
    from pond_core.catalog import Catalog


class CatalogRecorder:
    """The StageEvents of one run's stages, recorded in the catalog."""

    def __init__(self, catalog: Catalog, plan: PhysicalPlan, run_id: str, lineage_scope: str | None = None) -> None:
        self.catalog = catalog
        self.lineage_scope = lineage_scope
        self.plan = plan
        self.run_id = run_id
        self._heartbeats: dict[str, Heartbeat] = {}

    def stage_started(self, stage: Stage, npartitions: int) -> None:
        position = next((i for i, s in enumerate(self.plan.stages) if s.id == stage.id), None)
        self.catalog.start_stage(self.run_id, stage.id, stage.name, npartitions, position)
        beat = lambda: self.catalog.heartbeat(self.run_id, stage.id)  # noqa: E731
        self._heartbeats[stage.id] = Heartbeat(beat, stage.name).start()

    def stage_failed(self, stage: Stage, error: BaseException, seconds: float, counters: AttemptCounters) -> None:
        self._stop_heartbeat(stage)
        self.catalog.finish_stage(
            self.run_id, stage.id, "failed", rows=None, bytes=None, files=None, duration_s=seconds, result=None,
            error=str(error) if isinstance(error, Exception) else f"interrupted ({type(error).__name__})",
            task_retries=counters.task_retries, node_failures=counters.node_failures,
            speculative_attempts=counters.speculative_attempts,
        )

    def stage_finished(self, stage: Stage, manifest: StageManifest) -> None:
        self._stop_heartbeat(stage)
        result = manifest.result
        self.catalog.finish_stage(
            self.run_id, stage.id, "success", rows=result.rows, bytes=result.bytes, files=result.files,
            duration_s=result.seconds, result=result.to_dict(), error=None, task_retries=result.task_retries,
            node_failures=result.node_failures, speculative_attempts=result.speculative_attempts,
        )
        upstream = {sid: self.catalog.stage_result(self.run_id, sid) or {} for sid in stage.depends_on}
        record = stage_lineage(self.plan, stage, result, upstream, self.lineage_scope).to_dict()
        self.catalog.record_lineage(
            self.run_id, stage.id, record["inputs"], record["outputs"], record["sql"], record["started_at"], record["finished_at"]
        )
        if isinstance(stage.output, SinkOutput) and result.sink is not None:
            sink = stage.output.sink
            self.catalog.record_partitions(sink.path, _partitions(result.sink), self.run_id, stage.id, mode=sink.mode)

    def finish_run(self, status: str, error: str | None = None) -> None:
        """Close the run; recording a failure never hides the failure itself."""
        try:
            self.catalog.finish_run(self.run_id, status, error=error)
        except Exception:
            if status == "success":
                raise

    def _stop_heartbeat(self, stage: Stage) -> None:
        heartbeat = self._heartbeats.pop(stage.id, None)
        if heartbeat is not None:
            heartbeat.stop()


def _partitions(sink: SinkSummary) -> list[dict[str, Any]]:
    """The written partitions with their counts; an unpartitioned dataset is one partition ''."""
    if sink.partition_stats:
        return [p.to_dict() for p in sink.partition_stats]
    return [{"key": "", "values": {}, "files": None, "rows": sink.rows, "bytes": sink.bytes}]
