"""The SQL catalog: runs, stage runs, datasets and their committed partitions, lineage.

The catalog is how a rerun knows what is done, how a backfill knows which partitions exist,
and where lineage comes from. SQLite (the embedded default, under the storage root) and
PostgreSQL (what a multi-machine deployment sets) behave the same. See docs/catalog.md.

    catalog = Catalog(Catalog.default_url("/data/pond"))   # creates/upgrades the schema
    catalog.ping()
    catalog.start_run(run_id, pipeline, params, plan_fingerprint, executor)
    catalog.finish_run(run_id, "success" | "failed", error=None)
    catalog.start_stage(run_id, stage_id, stage_name, npartitions) -> attempt number
    catalog.finish_stage(run_id, stage_id, status, rows=, bytes=, files=, duration_s=,
                         result=, error=, task_retries=, node_failures=, speculative_attempts=)
    catalog.heartbeat(run_id, stage_id)           # a running stage's driver is alive
    catalog.stage_result(run_id, stage_id) -> dict | None
    catalog.get_run(run_id) -> dict | None        catalog.list_runs(limit, pipeline, status)
    catalog.record_partitions(dataset_uri, partitions, run_id, stage_id, mode=...)
    catalog.list_partitions(dataset_uri)          catalog.has_partition(dataset_uri, key)
    catalog.list_datasets()
    catalog.record_lineage(run_id, stage_id, inputs, outputs, sql, started_at, finished_at)
    catalog.lineage(dataset_uri) -> {"upstream": [...], "downstream": [...]}
    catalog.run_lineage(run_id) -> [record, ...]
    catalog.delete_run(run_id)                    catalog.runs_older_than(timestamp)

Every method takes and returns plain, JSON-able data; no ORM object leaves the package.
"""

from pond_core.catalog.api import Catalog
from pond_core.catalog.models import FAILED, RUNNING, SUCCESS

__all__ = ["Catalog", "RUNNING", "SUCCESS", "FAILED"]
