"""Run one stage of a physical plan: resolve inputs, run every partition task, commit.

`run_stage` is idempotent. A committed stage returns its recorded result at once; otherwise
partitions already committed by an earlier attempt are kept, the rest run (transient failures
retried, data and SQL errors failing at once), and the stage is published with one manifest.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import uuid
from typing import Any, Callable

from pond_core.errors import PondConfigError
from pond_core.execute.attempts import AttemptPolicy, Speculation, StageAttempts
from pond_core.execute import inputs as inputs_mod
from pond_core.execute.executors import Executor
from pond_core.execute.store import StageStore
from pond_core.execute.task import EXCHANGE_COMPRESSION, TaskSpec
from pond_core.io import StorageOptions, get_filesystem, join_path, resolve_paths
from pond_core.plan.logical import SourceSpec
from pond_core.plan.physical import PhysicalPlan, Stage

log = logging.getLogger("pond.stage")

Progress = Callable[[Stage, int, int], None]


@dataclasses.dataclass
class StageContext:
    """Everything a stage run needs besides the plan: where, on what, with which limits."""

    run_id: str
    run_root: str  # <data_root>/jobs/<run_id>
    executor: Executor
    storage: StorageOptions
    spill_root: str  # local disk, always
    max_retries: int = 2
    memory_limit: int | None = None  # bytes per task; default: a share of the executor's memory
    max_task_memory: int | None = None  # bound for retries with more memory; default: the largest node's
    speculation: bool | None = None  # copies of stragglers; default: on where running tasks can be stopped (Ray)
    task_threads: int | None = None
    parallelism: int | None = None  # producers for source splits; default: executor cores
    progress: Progress | None = None
    recorder: Any = None  # catalog hooks: stage_started(...), stage_finished(...), stage_failed(...)
    stop: threading.Event | None = None  # set when the run is interrupted: the stage stops its tasks

    @property
    def staging_root(self) -> str:
        return join_path(self.run_root, "staging")


def run_stage(plan: PhysicalPlan, stage_ref: str, ctx: StageContext, force: bool = False) -> dict[str, Any]:
    stage = plan.stage(stage_ref)
    store = StageStore(get_filesystem(ctx.staging_root, ctx.storage), ctx.staging_root)
    if force:
        store.forget(stage.id)
    else:
        committed = store.manifest(stage.id)
        if committed is not None:
            return committed["result"]
    started = time.time()
    try:
        upstream = {sid: _upstream_manifest(store, stage, sid, ctx.run_id) for sid in stage.depends_on}
        n, resolved = inputs_mod.resolve(
            stage, upstream, lambda src: _list_source(src, ctx), lambda files: _row_counts(files, ctx), ctx.parallelism or ctx.executor.cores()
        )
    except Exception as exc:
        if ctx.recorder:
            ctx.recorder.stage_started(stage, stage.npartitions)
            ctx.recorder.stage_failed(stage, exc, time.time() - started)
        raise
    if ctx.recorder:
        ctx.recorder.stage_started(stage, n)
    counters: dict[str, int] = {}  # retries made before a failure, for the catalog's stage row
    try:
        result = _run_partitions(plan, stage, ctx, store, n, resolved, started, force, counters)
    except BaseException as exc:  # also Ctrl-C or an orchestrator's timeout: the stage no longer runs
        if ctx.recorder:
            ctx.recorder.stage_failed(stage, exc, time.time() - started, counters)
        raise
    if ctx.recorder:
        ctx.recorder.stage_finished(stage, result, store.manifest(stage.id))
    return result


def _upstream_manifest(store: StageStore, stage: Stage, upstream_id: str, run_id: str) -> dict[str, Any]:
    manifest = store.manifest(upstream_id)
    if manifest is None:
        raise PondConfigError(
            f"stage {stage.name} reads the output of stage {upstream_id}, which is not committed for run {run_id}; run that stage first"
        )
    return manifest


def _run_partitions(plan, stage, ctx, store, n, resolved, started, force, counters) -> dict[str, Any]:
    sink = _sink_writer(stage, ctx, force)
    store.prepare(stage.id)
    done: dict[int, dict[str, Any]] = {}
    for k in range(n):
        record = store.task_record(stage.id, k)
        if record is not None:
            done[k] = record
    todo = [k for k in range(n) if k not in done]
    if _moves_files_only(stage, resolved):
        if sink is not None:
            _link_into_sink(stage, ctx, store, sink, resolved, todo, done, n)
        else:
            _reference_upstream(stage, ctx, store, resolved, todo, done, n)
        todo = []
    threads, policy = _task_resources(ctx, len(todo)) if todo else (1, None)
    make = lambda k, attempt, memory: _task_spec(stage, ctx, store, sink, resolved, k, attempt, threads, memory)  # noqa: E731

    def commit(k: int, result: dict[str, Any]) -> None:
        store.commit_task(stage.id, k, result)
        done[k] = result
        if ctx.progress:
            ctx.progress(stage, len(done), n)

    try:
        if todo:
            where = lambda k, attempt: store.running_node(stage.id, k, attempt)  # noqa: E731
            attempts = StageAttempts(stage.name, ctx.executor, policy, make, commit, where, ctx.stop)
            try:
                attempts.run(todo)
            finally:
                counters.update(attempts.counters())
    except BaseException:
        if sink is not None:
            sink.abort()  # the dataset keeps its previous contents and gains no debris
        raise
    sink_result = sink.commit([{"partition": k, "files": done[k]["files"]} for k in range(n)]) if sink else None
    manifest = _manifest(stage, ctx, n, done, resolved, sink_result, started)
    store.write_manifest(stage.id, manifest)
    store.sweep(stage.id, {f["path"] for k in range(n) for f in done[k]["files"]})
    return manifest["result"]


def _moves_files_only(stage: Stage, resolved: list) -> bool:
    """A stage that computes nothing over whole upstream files (repartition → write_parquet,
    repartition → to_arrow) needs no task: the upstream Parquet files already hold exactly its
    rows. Its partitions reference them (files output) or link them into the sink."""
    if stage.steps or len(resolved) != 1 or resolved[0].spec.stage is None:
        return False
    if any(part.ranges is not None for part in resolved[0].parts):
        return False
    if stage.output.kind == "files":
        return True
    sink = stage.output.sink or {}
    return (
        stage.output.kind == "sink"
        and not sink.get("partition_by")
        and not sink.get("target_file_size")
        and not sink.get("row_group_size")
        and not sink.get("compression_level")
        and sink.get("compression", "snappy") == EXCHANGE_COMPRESSION
    )


def _link_into_sink(stage, ctx, store, sink, resolved, todo, done, n) -> None:
    import uuid

    def link(k: int, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
        task_dir = join_path(sink.staging, "tasks", f"p{k:05d}-link-{uuid.uuid4().hex[:8]}")
        out = []
        for i, f in enumerate(files):
            dst = join_path(task_dir, f"{sink.base_name(k)}-{i}.parquet")
            sink.fs.link_or_copy(f["path"], dst)
            out.append({**f, "path": dst})
        return out

    _commit_without_tasks(stage, ctx, store, resolved, todo, done, n, link)


def _reference_upstream(stage, ctx, store, resolved, todo, done, n) -> None:
    _commit_without_tasks(stage, ctx, store, resolved, todo, done, n, lambda k, files: files)


def _commit_without_tasks(stage, ctx, store, resolved, todo, done, n, place) -> None:
    by_path = {f["path"]: f for f in resolved[0].upstream_files}
    for k in todo:
        upstream = [{"path": p, "rows": by_path[p]["rows"], "bytes": by_path[p]["bytes"]} for p in resolved[0].parts[k].files]
        files = place(k, upstream)
        result = {
            "partition": k, "attempt": 1, "files": files, "rows": sum(f["rows"] for f in files),
            "bytes": sum(f["bytes"] for f in files), "schema": resolved[0].schema, "seconds": 0.0, "retries": 0,
        }
        store.commit_task(stage.id, k, result)
        done[k] = result
        if ctx.progress:
            ctx.progress(stage, len(done), n)


def _task_resources(ctx: StageContext, ntasks: int) -> tuple[int, AttemptPolicy]:
    """Threads per task, and the memory of first attempts, retries and speculation."""
    executor = ctx.executor
    cores = executor.cores()
    concurrent = max(1, min(ntasks, cores))
    # Few tasks get more threads each, but never more than one node has: a task runs on one node.
    threads = min(ctx.task_threads or max(1, cores // concurrent), executor.max_task_cores())
    max_memory = ctx.max_task_memory or executor.max_task_memory()
    # 80% of the memory, shared by the tasks that can run at once; a retry can double it.
    at_once = max(1, min(ntasks, cores // threads))
    first = min(ctx.memory_limit or int(executor.memory_bytes() * 0.8 / at_once), max_memory)
    speculation = executor.stops_running_tasks if ctx.speculation is None else ctx.speculation
    policy = AttemptPolicy(
        max_retries=ctx.max_retries,
        first_memory=max(first, 64 << 20),
        max_memory=max(max_memory, 64 << 20),
        speculation=Speculation() if speculation else None,
    )
    return threads, policy


def _task_spec(stage, ctx, store, sink, resolved, k, attempt, threads, memory: int) -> TaskSpec:
    relations = []
    paths = []
    for r in resolved:
        part = r.parts[k]
        relations.append((r.spec.name, r.read(part)))
        paths.extend(part.files[:1])
    output = _task_output(stage, store, sink, k, attempt)
    paths.append(output.get("path") or output.get("dir") or (stage.output.sink or {}).get("path", ""))
    return TaskSpec(
        run_id=ctx.run_id,
        stage_id=stage.id,
        stage_name=stage.name,
        partition=k,
        attempt=attempt,
        relations=relations,
        steps=[s.to_dict() for s in stage.steps],
        result=stage.result,
        output=output,
        threads=threads,
        memory_limit=f"{memory >> 20}MiB",
        memory_bytes=memory,
        spill_dir=os.path.join(ctx.spill_root, ctx.run_id, f"{stage.id}-p{k}-a{attempt}"),
        storage=ctx.storage.to_dict(),
        paths=[p for p in paths if p],
        running_record=store.running_path(stage.id, k, attempt),
    )


def _task_output(stage: Stage, store: StageStore, sink, k: int, attempt: int) -> dict[str, Any]:
    out = stage.output
    if out.kind == "files":
        return {"kind": "files", "path": store.attempt_path(stage.id, k, attempt, ".parquet")}
    if out.kind == "exchange":
        return {
            "kind": "exchange",
            "dir": store.attempt_path(stage.id, k, attempt),
            "method": out.method,
            "keys": list(out.keys),
            "expr": out.expr,
            "npartitions": out.npartitions,
            "columns": list(out.columns) if out.columns is not None else None,
        }
    from pond_core.execute.task import SELECT_TOKEN

    return {"kind": "sink", "copy": sink.copy_statement(f"SELECT * FROM {SELECT_TOKEN}", k, f"a{attempt}"), "sink": stage.output.sink}


def _sink_writer(stage: Stage, ctx: StageContext, force: bool = False) -> Any:
    if stage.output.kind != "sink":
        return None
    from pond_core.io import SinkSpec, SinkWriter

    # The sink treats a write it already committed under this id as done (idempotence), so the
    # id names one write: this run's stage (a rerun resumes it), or a new one when forced.
    write_id = f"{ctx.run_id}-{stage.id}" + (f"-{uuid.uuid4().hex[:8]}" if force else "")
    writer = SinkWriter(SinkSpec(**stage.output.sink), write_id, ctx.storage)
    writer.prepare()
    return writer


def _manifest(stage, ctx, n, done, resolved, sink_result, started) -> dict[str, Any]:
    partitions = [{"partition": k, "files": done[k]["files"], "rows": done[k]["rows"], "bytes": done[k]["bytes"]} for k in range(n)]
    schema = next((done[k]["schema"] for k in range(n) if done[k].get("schema")), [])
    finished = time.time()
    location = sink_result["path"] if sink_result else join_path(ctx.staging_root, stage.id)
    result = {
        "run_id": ctx.run_id,
        "stage_id": stage.id,
        "stage": stage.name,
        "output_kind": stage.output.kind,
        "location": location,
        "npartitions": n,
        "files": sum(len(p["files"]) for p in partitions) if not sink_result else len(sink_result.get("files", [])),
        "rows": sum(p["rows"] for p in partitions),
        "bytes": sum(p["bytes"] for p in partitions),
        "schema": schema,
        "started_at": started,
        "finished_at": finished,
        "seconds": round(finished - started, 3),
        "task_retries": sum(done[k].get("retries", 0) for k in range(n)),
        "node_failures": sum(done[k].get("node_failures", 0) for k in range(n)),
        "memory_retries": sum(done[k].get("memory_retries", 0) for k in range(n)),
        "speculative_attempts": sum(done[k].get("speculative_attempts", 0) for k in range(n)),
        "inputs": [_describe_input(r.spec) for r in resolved],
        "executor": ctx.executor.name,
    }
    if sink_result:
        result["sink"] = {k: v for k, v in sink_result.items() if k != "files"}
        result["sink"]["partition_stats"] = _sink_partition_stats(stage, done, sink_result)
    return {"version": 1, "stage_id": stage.id, "run_id": ctx.run_id, "partitions": partitions, "schema": schema, "result": result}


def _sink_partition_stats(stage: Stage, done: dict[int, dict[str, Any]], sink_result: dict[str, Any]) -> list[dict[str, Any]]:
    """Files, rows and bytes per written dataset partition (`dt=2026-11-20`), for the catalog."""
    columns = (stage.output.sink or {}).get("partition_by") or []
    stats: dict[str, dict[str, Any]] = {}
    for result in done.values():
        for f in result["files"]:
            values = {c: str((f.get("partition_keys") or {}).get(c, "")) for c in columns}
            key = "/".join(f"{c}={v}" for c, v in values.items())
            entry = stats.setdefault(key, {"key": key, "values": values, "files": 0, "rows": 0, "bytes": 0})
            entry["files"] += 1
            entry["rows"] += f["rows"]
            entry["bytes"] += f["bytes"]
    written = set(sink_result.get("partitions") or []) or {""}
    return [stats[k] for k in sorted(stats) if k in written]


def _describe_input(spec) -> dict[str, Any]:
    if spec.source is not None:
        return {"name": spec.name, "format": spec.source.format, "paths": list(spec.source.paths), "split": spec.split}
    return {"name": spec.name, "stage": spec.stage, "split": spec.split}


def _list_source(src: SourceSpec, ctx: StageContext) -> list[str]:
    return resolve_paths(list(src.paths), src.recursive, ctx.storage)


def _row_counts(files: list[str], ctx: StageContext) -> dict[str, int]:
    import duckdb

    from pond_core.io import configure_duckdb
    from pond_core.plan.sql import sql_list

    con = duckdb.connect()
    try:
        configure_duckdb(con, ctx.storage, files)
        rows = con.execute(f"SELECT file_name, sum(num_rows) FROM parquet_file_metadata({sql_list(files)}) GROUP BY file_name").fetchall()
    finally:
        con.close()
    return {name: int(count) for name, count in rows}
