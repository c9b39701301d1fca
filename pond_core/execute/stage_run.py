"""StageRun: one stage of a physical plan for one run — resolve inputs, run every partition
task, commit, and hand the whole result back.

A stage run is idempotent. A committed stage returns its manifest at once; otherwise
partitions already committed by an earlier attempt are kept, the rest run (transient failures
retried, data and SQL errors failing at once), and the stage is published with one manifest,
which is also what `run()` returns, so no caller reads back what was just written.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import replace

from pond_core import phases
from pond_core.checks import CheckResult
from pond_core.errors import PondConfigError, PondError, PondStorageError
from pond_core.execute import batches
from pond_core.execute import inputs as stage_inputs
from pond_core.execute.attempts import StageAttempts
from pond_core.execute.context import RunContext, size_tasks
from pond_core.execute.disk_full import disk_full_error, is_disk_full
from pond_core.execute.input_key import InputKey, source_digest, table_digest, upstream_digest
from pond_core.execute.inputs import Part, ResolvedInput, ResolvedStage
from pond_core.execute.results import (
    AttemptCounters,
    CommittedPartition,
    InputSummary,
    PartitionOutput,
    PartitionStats,
    SinkSummary,
    StageManifest,
    StageResult,
)
from pond_core.execute.stage_checks import check_staged
from pond_core.execute.store import StageStore
from pond_core.execute.task import EXCHANGE_COMPRESSION, SELECT_TOKEN
from pond_core.execute.task_spec import BucketedTarget, ExchangeTarget, FilesTarget, Relation, SinkTarget, TaskSpec, TaskTarget
from pond_core.io import crashpoints, join_path
from pond_core.io.fs import FileInfo
from pond_core.io.iceberg import DatasetWriter, open_writer
from pond_core.io.paths import resolve_files
from pond_core.io.table_read import TableFiles, resolve_table
from pond_core.io.written import PartitionFiles, SinkCommit, WrittenFile
from pond_core.phases import Phase
from pond_core.plan.logical import SourceSpec
from pond_core.plan.physical import (
    BucketedFilesOutput,
    ExchangeOutput,
    FilesOutput,
    PhysicalPlan,
    SinkOutput,
    SourceInput,
    Stage,
    UpstreamInput,
)

log = logging.getLogger("pond")


class StageRun:
    """Runs `stage` of `plan` for the run `ctx` describes; `run()` returns its manifest."""

    def __init__(self, plan: PhysicalPlan, stage: Stage, ctx: RunContext, *, force: bool = False) -> None:
        self.plan = plan
        self.stage = stage
        self.ctx = ctx
        self.force = force
        self.store = StageStore.of(ctx.layout, ctx.storage)
        self.counters = AttemptCounters()
        self._redo = False  # a committed manifest is there but may not be reused
        self._reuse: tuple[StageManifest | None] | None = None
        self._listed: dict[int, list[FileInfo] | TableFiles] = {}  # by id() of the stage's SourceSpec
        self._row_counted: dict[str, int] = {}  # rows of source files whose footers were read (row splits)
        self._key: InputKey | None = None
        self._published = False  # the sink committed: the dataset shows this stage's output

    def run(self) -> StageManifest:
        committed = self.reusable()
        if committed is not None:
            return committed
        if self.force:
            self.store.forget(self.stage.id)
        started = time.time()
        resolved = self._resolve(started)
        self.ctx.events.stage_started(self.stage, resolved.npartitions)
        try:
            manifest = self._run_partitions(resolved, started)
        except BaseException as exc:  # also Ctrl-C or an orchestrator's timeout: the stage no longer runs
            error = self._disk_full(exc)
            self.ctx.events.stage_failed(self.stage, error or exc, time.time() - started, self.counters)
            if error is not None:
                raise error from exc
            raise
        self.ctx.events.stage_finished(self.stage, manifest)
        return manifest

    def reusable(self) -> StageManifest | None:
        """The stage's committed manifest if it may be reused: not forced, its files intact,
        and what it read unchanged (execute/input_key.py). Checked once per StageRun."""
        if self._reuse is None:
            self._reuse = (None if self.force else self._committed(),)
        return self._reuse[0]

    def _committed(self) -> StageManifest | None:
        committed = self.store.manifest(self.stage.id)
        if committed is None:
            return None
        broken = self.store.broken_files(committed)
        if broken:
            log.warning(
                "stage %s of run %s: its committed manifest lists %d missing or changed file(s) (e.g. %s); running it again",
                self.stage.name, self.ctx.run_id, len(broken), broken[0],
            )
            self._redo = True
            return None
        changed = self._changed_inputs(committed)
        if changed:
            log.info(
                "stage %s of run %s: its input %s changed since it was committed; running it again",
                self.stage.name, self.ctx.run_id, ", ".join(changed),
            )
            self._redo = True
            return None
        return committed

    def _changed_inputs(self, committed: StageManifest) -> list[str]:
        """The inputs read now that differ from those the committed stage read. An upstream stage
        whose output is gone (dropped, cleaned) is not compared: nothing says it changed."""
        if committed.inputs is None:
            return ["(not recorded by the pond that committed it)"]
        upstream = {sid: m for sid in self.stage.depends_on if (m := self.store.manifest(sid)) is not None}
        try:
            current = self._input_key(upstream)
        except PondError:
            # A source that is gone or unreadable: not reused. Running the stage lists it again
            # and fails there, recorded as this stage's failure with its own message.
            self._listed.clear()
            return ["(its sources could not be listed)"]
        compared = dict(current.digests)
        return [name for name in committed.inputs.changed(current) if name in compared]

    def _input_key(self, upstream: dict[str, StageManifest]) -> InputKey:
        digests = []
        for inp in self.stage.inputs:
            if isinstance(inp, SourceInput):
                listed = self._listing(inp.source)
                digests.append((inp.name, table_digest(listed) if isinstance(listed, TableFiles) else source_digest(listed)))
            elif inp.stage in upstream:
                digests.append((inp.name, upstream_digest(upstream[inp.stage].files)))
        return InputKey(tuple(digests))

    def _disk_full(self, exc: BaseException) -> PondStorageError | None:
        """A full disk, said as such (not as a bug), naming the disk and what was published."""
        if not isinstance(exc, Exception) or not is_disk_full(exc):
            return None
        output = self.stage.output
        where = output.sink.path if isinstance(output, SinkOutput) else self.ctx.layout.run_root
        return disk_full_error(self.stage.name, where, exc, self._published)

    # -- inputs ------------------------------------------------------------------------------

    def _resolve(self, started: float) -> ResolvedStage:
        try:
            with phases.timed(Phase.LIST):
                upstream = {sid: self._upstream_manifest(sid) for sid in self.stage.depends_on}
                parallelism = self.ctx.limits.parallelism or self.ctx.executor.cores()
                resolved = stage_inputs.resolve(self.stage, upstream, self._list_source, self._row_counts, parallelism)
                self._key = self._input_key(upstream)  # from the listings just made: nothing is listed twice
                return resolved
        except Exception as exc:
            self.ctx.events.stage_started(self.stage, self.stage.npartitions)
            self.ctx.events.stage_failed(self.stage, exc, time.time() - started, self.counters)
            raise

    def _upstream_manifest(self, upstream_id: str) -> StageManifest:
        manifest = self.store.manifest(upstream_id)
        if manifest is None:
            name = self.plan.stage(upstream_id).name
            raise PondConfigError(
                f"stage {self.stage.name} reads the output of stage {name}, which is not committed for run "
                f"{self.ctx.run_id} (never run, or dropped when the run finished or by `pond clean`); run stage "
                f"{name} first: in Airflow clear {self.stage.name} with its upstream tasks, or run it with "
                "recompute_upstream=True"
            )
        return manifest

    def _list_source(self, source: SourceSpec) -> list[str] | TableFiles:
        listed = self._listing(source)
        return listed if isinstance(listed, TableFiles) else [f.path for f in listed]

    def _listing(self, source: SourceSpec) -> list[FileInfo] | TableFiles:
        """The source's files with their identity, listed once per stage run."""
        if id(source) not in self._listed:
            if source.table is not None:
                self._listed[id(source)] = resolve_table(source.table, self.ctx.storage)
            else:
                self._listed[id(source)] = resolve_files(list(source.paths), source.recursive, self.ctx.storage)
        return self._listed[id(source)]

    @property
    def write_id(self) -> str:
        """The id of this stage's write to its sink. The sink treats a write it already committed
        under this id as done (idempotence), so the id names one write: this run's stage over
        exactly these inputs (a rerun resumes it), or a new one when forced."""
        assert self._key is not None, "inputs are resolved before the sink opens"
        suffix = uuid.uuid4().hex[:8] if self.force else self._key.token
        return f"{self.ctx.run_id}-{self.stage.id}-{suffix}"

    def _row_counts(self, files: list[str]) -> dict[str, int]:
        import duckdb

        from pond_core.io import configure_duckdb
        from pond_core.sql_quote import path_list

        con = duckdb.connect()
        try:
            configure_duckdb(con, self.ctx.storage, files)
            query = f"SELECT file_name, sum(num_rows) FROM parquet_file_metadata({path_list(files)}) GROUP BY file_name"
            rows = con.execute(query).fetchall()
        finally:
            con.close()
        counts = {name: int(count) for name, count in rows}
        self._row_counted.update(counts)
        return counts

    def _input_sizes(self, resolved: ResolvedStage) -> dict[str, tuple[int, int | None]]:
        """(bytes, rows if known) of every file the stage reads, from its listings and upstream
        manifests (nothing read again): what says whether its tasks are small."""
        sizes: dict[str, tuple[int, int | None]] = {}
        for listed in self._listed.values():
            if not isinstance(listed, TableFiles):
                sizes.update((f.path, (f.size, self._row_counted.get(f.path))) for f in listed)
        for inp in resolved.inputs:
            sizes.update((f.path, (f.bytes, f.rows)) for f in inp.upstream_files)
        return sizes

    # -- partitions --------------------------------------------------------------------------

    def _run_partitions(self, resolved: ResolvedStage, started: float) -> StageManifest:
        assert self._key is not None
        if self._redo:  # only now, holding the stage's lease
            self.store.forget(self.stage.id)
        sink = self._open_sink()
        # Partitions committed by an earlier attempt over other inputs are not this stage's work.
        self.store.prepare(self.stage.id, self._key)
        n = resolved.npartitions
        done = self.store.task_records(self.stage.id, n)
        todo = [k for k in range(n) if k not in done]
        try:
            if _moves_files_only(self.stage, resolved):
                self._commit_without_tasks(resolved, sink, todo, done)
            elif todo:
                with phases.timed(Phase.TASKS):
                    self._run_tasks(resolved, sink, todo, done)
            checks = self._check(sink, done, n)
        except BaseException:
            if sink is not None:
                sink.abort()  # the dataset keeps its previous contents and gains no debris
            raise
        with phases.timed(Phase.COMMIT):
            commit = sink.commit([PartitionFiles(k, done[k].files) for k in range(n)]) if sink else None
            self._published = sink is not None
            crashpoints.reached("sink committed, stage manifest not written")
            manifest = self._manifest(resolved, done, commit, started, checks)
            self.store.write_manifest(manifest)
            crashpoints.reached("stage manifest written")
            self.store.sweep(self.stage.id, {f.path for k in range(n) for f in done[k].files})
        return manifest

    def _run_tasks(
        self, resolved: ResolvedStage, sink: DatasetWriter | None, todo: list[int], done: dict[int, CommittedPartition]
    ) -> None:
        sizing = size_tasks(self.ctx.limits.for_stage(self.stage), self.ctx.executor, len(todo))
        factory = _PartitionTasks(self.stage, self.ctx, self.store, sink, resolved.inputs, sizing.threads, self._input_sizes(resolved))

        with self.store.task_committer(self.stage.id) as write_record:

            def committed(record: CommittedPartition) -> None:
                self._commit_partition(record, done, resolved.npartitions, write_record)

            attempts = StageAttempts(self.stage.name, self.ctx.executor, sizing.policy, factory, committed, self.ctx.stop)
            try:
                attempts.run(todo)
            finally:
                self.counters = attempts.counters()

    def _commit_partition(
        self, record: CommittedPartition, done: dict[int, CommittedPartition], n: int,
        write_record: Callable[[CommittedPartition], None] | None = None,
    ) -> None:
        (write_record or (lambda r: self.store.commit_task(self.stage.id, r)))(record)
        done[record.partition] = record
        if self.ctx.progress:
            self.ctx.progress(self.stage, len(done), n)

    def _commit_without_tasks(
        self, resolved: ResolvedStage, sink: DatasetWriter | None, todo: list[int], done: dict[int, CommittedPartition]
    ) -> None:
        """Reference the upstream files (files output) or link them into the sink."""
        (upstream,) = resolved.inputs
        by_path = {f.path: f for f in upstream.upstream_files}
        for k in todo:
            files = tuple(by_path[p] for p in upstream.parts[k].files)
            if sink is not None:
                files = _link_into(sink, k, files)
            record = CommittedPartition(partition=k, attempt=1, files=files, schema=upstream.schema, seconds=0.0)
            self._commit_partition(record, done, resolved.npartitions)

    def _check(self, sink: DatasetWriter | None, done: dict[int, CommittedPartition], n: int) -> tuple[CheckResult, ...]:
        """The sink's checks on the staged files (raises PondCheckError when one fails)."""
        output = self.stage.output
        if sink is None or not isinstance(output, SinkOutput) or not output.sink.checks or sink.already_committed:
            return ()
        files = [f.path for k in range(n) for f in done[k].files]
        schema = next((done[k].schema for k in range(n) if done[k].schema), ())
        spec = replace(sink.spec, checks=output.sink.checks, path=output.sink.path)  # named as the user named it
        return check_staged(self.stage.name, spec, files, schema, self.ctx.storage)

    def _open_sink(self) -> DatasetWriter | None:
        output = self.stage.output
        if not isinstance(output, SinkOutput):
            return None
        writer = open_writer(output.sink, self.write_id, self.ctx.storage)
        writer.prepare()
        return writer

    # -- result ------------------------------------------------------------------------------

    def _manifest(
        self, resolved: ResolvedStage, done: dict[int, CommittedPartition], commit: SinkCommit | None, started: float,
        checks: tuple[CheckResult, ...] = (),
    ) -> StageManifest:
        n = resolved.npartitions
        schema = next((done[k].schema for k in range(n) if done[k].schema), ())
        partitions = _partitions(self.stage, [done[k] for k in range(n)])
        finished = time.time()
        records = [done[k] for k in range(n)]
        result = StageResult(
            run_id=self.ctx.run_id,
            stage_id=self.stage.id,
            stage=self.stage.name,
            output_kind=self.stage.output.kind,
            location=commit.path if commit else self.ctx.layout.stage_dir(self.stage.id),
            npartitions=len(partitions),
            files=len(commit.files) if commit else sum(len(p.files) for p in partitions),
            rows=sum(p.rows for p in partitions),
            bytes=sum(p.bytes for p in partitions),
            schema=schema,
            started_at=started,
            finished_at=finished,
            seconds=round(finished - started, 3),
            inputs=tuple(_summary(r) for r in resolved.inputs),
            executor=self.ctx.executor.name,
            task_retries=sum(r.retries for r in records),
            node_failures=sum(r.node_failures for r in records),
            memory_retries=sum(r.memory_retries for r in records),
            speculative_attempts=sum(r.speculative_attempts for r in records),
            sink=_sink_summary(self.stage, records, commit) if commit else None,
            checks=checks,
        )
        return StageManifest(self.stage.id, self.ctx.run_id, partitions, schema, result, self._key)


class _PartitionTasks:
    """The TaskFactory of one stage run: the spec of each attempt of each partition."""

    def __init__(
        self, stage: Stage, ctx: RunContext, store: StageStore, sink: DatasetWriter | None,
        inputs: tuple[ResolvedInput, ...], threads: int, sizes: dict[str, tuple[int, int | None]] | None = None,
    ) -> None:
        self.stage, self.ctx, self.store, self.sink, self.inputs, self.threads = stage, ctx, store, sink, inputs, threads
        self.sizes = sizes or {}

    def task(self, partition: int, attempt: int, memory: int) -> TaskSpec:
        relations = tuple(Relation(r.spec.name, r.read(r.parts[partition])) for r in self.inputs)
        target = self._target(partition, attempt)
        paths = [p for r in self.inputs for p in r.parts[partition].files[:1]] + [_target_path(target)]
        return TaskSpec(
            run_id=self.ctx.run_id,
            stage_id=self.stage.id,
            stage_name=self.stage.name,
            partition=partition,
            attempt=attempt,
            relations=relations,
            steps=self.stage.steps,
            result=self.stage.result,
            target=target,
            threads=self.threads,
            memory_bytes=memory,
            spill_dir=self.ctx.layout.task_spill_dir(self.stage.id, partition, attempt),
            storage=self.ctx.storage,
            paths=tuple(p for p in paths if p),
            running_record=self.store.running_path(self.stage.id, partition, attempt),
        )

    def running_node(self, partition: int, attempt: int) -> str | None:
        return self.store.running_node(self.stage.id, partition, attempt)

    def small(self, partition: int) -> bool:
        nbytes = estimated_bytes([r.parts[partition] for r in self.inputs], self.sizes)
        return nbytes is not None and nbytes <= batches.SMALL_TASK_BYTES

    def _target(self, partition: int, attempt: int) -> TaskTarget:
        output = self.stage.output
        if isinstance(output, FilesOutput):
            return FilesTarget(self.store.attempt_path(self.stage.id, partition, attempt, ".parquet"))
        if isinstance(output, ExchangeOutput):
            return ExchangeTarget(self.store.attempt_path(self.stage.id, partition, attempt), output)
        if isinstance(output, BucketedFilesOutput):
            return BucketedTarget(self.store.attempt_path(self.stage.id, partition, attempt))
        assert self.sink is not None
        copy_sql = self.sink.copy_statement(f"SELECT * FROM {SELECT_TOKEN}", partition, f"a{attempt}")
        return SinkTarget(copy_sql, self.sink.spec, self.sink.job_id)


def estimated_bytes(parts: list[Part], sizes: dict[str, tuple[int, int | None]]) -> int | None:
    """The stored bytes a partition reads (a row range: its share of its file), or None when a
    file's size is unknown (a table's files: not listed with sizes)."""
    total = 0
    for part in parts:
        if part.ranges is None:
            for path in part.files:
                if path not in sizes:
                    return None
                total += sizes[path][0]
            continue
        for path, first, last in part.ranges:
            nbytes, rows = sizes.get(path, (0, None))
            if not rows:
                return None
            total += nbytes * (last - first + 1) // rows
    return total


def _partitions(stage: Stage, records: list[CommittedPartition]) -> tuple[PartitionOutput, ...]:
    """The stage's partitions: one per task, or for a fused stage, its one task's files by partition."""
    if isinstance(stage.output, BucketedFilesOutput):
        files = [f for r in records for f in r.files]
        return tuple(PartitionOutput(k, tuple(f for f in files if f.bucket == k)) for k in range(stage.output.npartitions))
    return tuple(PartitionOutput(r.partition, r.files) for r in records)


def _target_path(target: TaskTarget) -> str:
    if isinstance(target, FilesTarget):
        return target.path
    if isinstance(target, (ExchangeTarget, BucketedTarget)):
        return target.dir
    return target.sink.path


def _moves_files_only(stage: Stage, resolved: ResolvedStage) -> bool:
    """A stage that computes nothing over whole upstream files (repartition → write_parquet,
    repartition → to_arrow) needs no task: the upstream Parquet files already hold exactly its
    rows. Its partitions reference them (files output) or link them into the sink."""
    if stage.steps or len(resolved.inputs) != 1 or not isinstance(resolved.inputs[0].spec, UpstreamInput):
        return False
    if any(part.ranges is not None for part in resolved.inputs[0].parts):
        return False
    output = stage.output
    if isinstance(output, FilesOutput):
        return True
    if not isinstance(output, SinkOutput):
        return False
    sink = output.sink
    return (
        not sink.partition_by and not sink.target_file_size and not sink.row_group_size
        and sink.compression_level is None and sink.compression == EXCHANGE_COMPRESSION
    )


def _link_into(sink: DatasetWriter, partition: int, files: tuple[WrittenFile, ...]) -> tuple[WrittenFile, ...]:
    task_dir = join_path(sink.staging, "tasks", f"p{partition:05d}-link-{uuid.uuid4().hex[:8]}")
    out = []
    for i, f in enumerate(files):
        dst = join_path(task_dir, f"{sink.base_name(partition)}-{i}.parquet")
        sink.fs.link_or_copy(f.path, dst)
        out.append(WrittenFile(dst, f.rows, f.bytes))
    return tuple(out)


def _summary(resolved: ResolvedInput) -> InputSummary:
    spec = resolved.spec
    if isinstance(spec, SourceInput):
        return InputSummary(spec.name, spec.split.value, spec.source.format.value, spec.source.paths)
    return InputSummary(spec.name, spec.split.value, stage=spec.stage)


def _sink_summary(stage: Stage, records: list[CommittedPartition], commit: SinkCommit) -> SinkSummary:
    return SinkSummary(
        path=commit.path, mode=commit.mode, job_id=commit.job_id, rows=commit.rows, bytes=commit.bytes,
        partitions=commit.partitions, manifest=commit.manifest, partition_stats=_partition_stats(stage, records, commit),
    )


def _partition_stats(stage: Stage, records: list[CommittedPartition], commit: SinkCommit) -> tuple[PartitionStats, ...]:
    """Files, rows and bytes per written dataset partition (`dt=2026-11-20`), for the catalog."""
    assert isinstance(stage.output, SinkOutput)
    columns = stage.output.sink.partition_by or []
    stats: dict[str, dict[str, int]] = {}
    values_of: dict[str, dict[str, str]] = {}
    for record in records:
        for f in record.files:
            values = {c: str((f.partition_keys or {}).get(c, "")) for c in columns}
            key = "/".join(f"{c}={v}" for c, v in values.items())
            values_of[key] = values
            entry = stats.setdefault(key, {"files": 0, "rows": 0, "bytes": 0})
            entry["files"] += 1
            entry["rows"] += f.rows
            entry["bytes"] += f.bytes
    written = set(commit.partitions) or {""}
    return tuple(PartitionStats(k, values_of[k], **stats[k]) for k in sorted(stats) if k in written)
