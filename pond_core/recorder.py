"""CatalogRecorder: a stage run's events written to the catalog — stage status and counters,
the heartbeat while it runs, lineage and, for a sink, the dataset partitions it committed."""

from __future__ import annotations

import logging
import os
import re
import socket
import uuid
from typing import TYPE_CHECKING, Any

from pond_core.execute.results import AttemptCounters, SinkSummary, StageManifest
from pond_core.heartbeat import Heartbeat
from pond_core.io.options import StorageOptions
from pond_core.lineage import stage_lineage
from pond_core.plan.physical import PhysicalPlan, SinkOutput, Stage

if TYPE_CHECKING:
    from pond_core.catalog import Catalog

log = logging.getLogger("pond")


def driver_name() -> str:
    """This driver as a lease holder: host, process (with its start time, so a reused pid is
    not mistaken for it) and a token (two drivers never share a name)."""
    pid = os.getpid()
    return f"{socket.gethostname()} pid {pid} start {_process_start(pid)} ({uuid.uuid4().hex[:8]})"


_HOLDER = re.compile(r"^(?P<host>\S+) pid (?P<pid>\d+) start (?P<start>\S+) \(")


def holder_gone(holder: str) -> bool:
    """True when `holder` was a process on this machine that no longer runs: its lease can be
    taken over at once instead of after three missed heartbeats (a resume right after a kill)."""
    match = _HOLDER.match(holder)
    if not match or match["host"] != socket.gethostname():
        return False  # another machine: only its heartbeat can tell
    return _process_start(int(match["pid"])) != match["start"]


def _process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or
    "-" where /proc is not available (then "gone" is only whether the pid exists)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except FileNotFoundError:
        return "gone"
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return "gone"
        except PermissionError:
            pass
        return "-"


class CatalogRecorder:
    """The StageEvents of one run's stages, recorded in the catalog."""

    def __init__(
        self, catalog: Catalog, plan: PhysicalPlan, run_id: str, lineage_scope: str | None = None, storage: StorageOptions | None = None
    ) -> None:
        self.catalog = catalog
        self.lineage_scope = lineage_scope
        self.storage = storage  # reads the sources' schemas for column lineage
        self.plan = plan
        self.run_id = run_id
        self._heartbeats: dict[str, Heartbeat] = {}
        self.holder = driver_name()

    def stage_started(self, stage: Stage, npartitions: int) -> None:
        """Take the stage's lease first (PondRunBusyError while another driver runs it), then
        record the start; the heartbeat stamps the stage and renews the lease."""
        if stage.id not in self._heartbeats:
            stale = self.catalog.acquire_stage_lease(self.run_id, stage.id, self.holder, stage.name, holder_gone)
            if stale:
                log.warning("stage %s of run %s: taking over from %s, whose lease went stale", stage.name, self.run_id, stale)
        position = next((i for i, s in enumerate(self.plan.stages) if s.id == stage.id), None)
        self.catalog.start_stage(self.run_id, stage.id, stage.name, npartitions, position)

        def beat() -> None:
            self.catalog.heartbeat(self.run_id, stage.id)
            if not self.catalog.renew_stage_lease(self.run_id, stage.id, self.holder):
                log.error("stage %s of run %s: another driver took over this stage's lease", stage.name, self.run_id)

        self._stop_heartbeat(stage)
        self._heartbeats[stage.id] = Heartbeat(beat, stage.name).start()

    def stage_failed(self, stage: Stage, error: BaseException, seconds: float, counters: AttemptCounters) -> None:
        self._stop_heartbeat(stage)
        self.catalog.finish_stage(
            self.run_id, stage.id, "failed", rows=None, bytes=None, files=None, duration_s=seconds, result=None,
            error=str(error) if isinstance(error, Exception) else f"interrupted ({type(error).__name__})",
            task_retries=counters.task_retries, node_failures=counters.node_failures,
            speculative_attempts=counters.speculative_attempts,
        )
        self._release(stage)

    def stage_finished(self, stage: Stage, manifest: StageManifest) -> None:
        self._stop_heartbeat(stage)
        result = manifest.result
        self.catalog.finish_stage(
            self.run_id, stage.id, "success", rows=result.rows, bytes=result.bytes, files=result.files,
            duration_s=result.seconds, result=result.to_dict(), error=None, task_retries=result.task_retries,
            node_failures=result.node_failures, speculative_attempts=result.speculative_attempts,
        )
        upstream = {sid: self.catalog.stage_result(self.run_id, sid) or {} for sid in stage.depends_on}
        record = stage_lineage(self.plan, stage, result, upstream, self.lineage_scope, self.storage).to_dict()
        self.catalog.record_lineage(
            self.run_id, stage.id, record["inputs"], record["outputs"], record["sql"], record["started_at"], record["finished_at"]
        )
        if isinstance(stage.output, SinkOutput) and result.sink is not None:
            sink = stage.output.sink
            self.catalog.record_partitions(sink.path, _partitions(result.sink), self.run_id, stage.id, mode=sink.mode)
        self._release(stage)

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

    def _release(self, stage: Stage) -> None:
        try:
            self.catalog.release_stage_lease(self.run_id, stage.id, self.holder)
        except Exception as exc:  # it goes stale on its own; never hide the stage's outcome
            log.warning("stage %s of run %s: cannot release its lease: %s", stage.name, self.run_id, exc)


def _partitions(sink: SinkSummary) -> list[dict[str, Any]]:
    """The written partitions with their counts; an unpartitioned dataset is one partition ''."""
    if sink.partition_stats:
        return [p.to_dict() for p in sink.partition_stats]
    return [{"key": "", "values": {}, "files": None, "rows": sink.rows, "bytes": sink.bytes}]
