"""`init()` and `Session`: settings, storage, the executor, and the sources of DataFrames.

A session is a job (smallpond's word): its DataFrame actions run as the run named by its
job id, through `pond_core.runner.run_plan`, on the session's executor, and are recorded in the
catalog like every run (`pond runs`, `pond lineage`): the run is the job, running while the
session is, each action's stages its stage runs. The catalog opens at the first action, so
building plans never imports SQLAlchemy.
"""

from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import io as _io
import json
import logging
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pond_core.dataframe import DataFrame
from pond_core.errors import PondConfigError, PondError, PondInputError, user_call
from pond_core.execute.executor_for import make_executor
from pond_core.execute.executors import Executor
from pond_core.execute.results import StageManifest, StageResult
from pond_core.io import StorageOptions, get_filesystem, join_path
from pond_core.layout import RunLayout
from pond_core.plan.compile import CompileOptions
from pond_core.plan.logical import Node, Read, SourceFormat, SourceSpec, Sql, walk
from pond_core.plan.physical import SinkOutput, StageOutput
from pond_core.settings import Settings, Surface, surface, unknown_setting
from pond_core.udfs import udf_specs

if TYPE_CHECKING:
    import pyarrow as pa

    from pond_core.catalog import Catalog

log = logging.getLogger("pond")
_latest: Session | None = None  # what init() returned last: the session of pond_core.sql()


@user_call
def init(
    job_id: str | None = None,
    job_time: dt.datetime | None = None,
    job_name: str | None = None,
    data_root: str | None = None,
    num_executors: int | None = None,
    ray_address: str | None = None,
    bind_numa_node: bool | None = None,
    platform: str | None = None,
    *,
    executor: str | None = None,
    memory_limit: int | str | None = None,
    task_threads: int | None = None,
    max_retries: int | None = None,
    spill_dir: str | None = None,
    catalog_url: str | None = None,
    storage_options: StorageOptions | dict[str, Any] | None = None,
    keep_intermediates: bool | None = None,
    max_task_memory: int | str | None = None,
    warm_workers: bool | None = None,
    worker_idle_seconds: int | None = None,
    speculation: bool | None = None,
    progress: str | None = None,
    sql_strict: bool | None = None,
    **unknown: Any,
) -> Session:
    """Start a pond session; every argument is optional and unknown ones are an error.

    smallpond's arguments keep their meaning. pond adds the rest; each is documented once in
    `pond_core.settings.SETTINGS` (and docs/settings.md): `executor`, per-task `memory_limit`
    and `task_threads`, `max_retries`, `spill_dir`, `catalog_url`, `keep_intermediates`,
    `max_task_memory`, `speculation`, `progress` (bars per stage on stderr), `sql_strict` (no one-partition fallback in sql()); and
    `storage_options` (S3 settings; default: the standard AWS environment). A misspelt name is
    an error that names the setting meant.
    """
    if unknown:
        raise unknown_setting(sorted(unknown)[0], [s.name for s in surface(Surface.SESSION)], "init()")
    settings = Settings.resolve(
        job_id=job_id, job_time=job_time, job_name=job_name, data_root=data_root, num_executors=num_executors,
        ray_address=ray_address, bind_numa_node=bind_numa_node, platform=platform, executor=executor,
        memory_limit=memory_limit, task_threads=task_threads, max_retries=max_retries, spill_dir=spill_dir,
        catalog_url=catalog_url, keep_intermediates=keep_intermediates, max_task_memory=max_task_memory,
        warm_workers=warm_workers, worker_idle_seconds=worker_idle_seconds, speculation=speculation, progress=progress,
        sql_strict=sql_strict,
    )
    if settings.catalog_url:
        from pond_core.catalog.engine import check_catalog_url

        check_catalog_url(settings.catalog_url)
    global _latest
    _latest = Session(settings, _storage_options(storage_options), check_sources=True)
    return _latest


@user_call
def sql(query: str, /, **inputs: Any) -> DataFrame:
    """`pond_core.sql(query, **inputs)`: `Session.sql` on the session `init()` returned last
    (still open), so `import pond_core as sp; sp.init(...); sp.sql(...)` reads like DuckDB's
    module-level `duckdb.sql`. Without one it is an error: init() chooses where the work and
    the catalog live, and pond does not choose that silently."""
    if _latest is None or _latest._closed:
        raise PondConfigError(
            "pond_core.sql runs on the session init() started; call pond_core.init(data_root=...) first"
            + (" (the last one was shut down)" if _latest is not None else "")
        )
    return _latest.sql(query, **inputs)


def _storage_options(value: StorageOptions | dict[str, Any] | None) -> StorageOptions:
    if value is None:
        return StorageOptions.from_env()
    if isinstance(value, StorageOptions):
        return value
    if isinstance(value, dict):
        return StorageOptions.from_env(**value)
    raise PondConfigError(f"storage_options must be a StorageOptions or a dict, got {type(value).__name__}")


class Session:
    """A job: its storage under `data_root`, its executor, and the DataFrames built from it."""

    def __init__(self, config: Settings, storage: StorageOptions, *, check_sources: bool = False) -> None:
        """`check_sources`: a read's paths must exist when it is declared (init()'s sessions);
        a pipeline's planning session declares paths that exist only when its stages run."""
        self.config = config
        self.check_sources = check_sources
        self.storage = storage
        self.layout = RunLayout(config.data_root, config.job_id, config.spill_dir)
        self._fs = get_filesystem(config.data_root, storage)
        self._executor: Executor | None = None
        self._catalog: Catalog | None = None
        self._run_open = False  # the catalog's run of this job is running after a successful action
        self._lock = threading.Lock()
        self._failed = False
        self._closed = False
        self._recompute: set[str] = set()
        self._started = time.time()
        self._laid_out = False
        self.history: list[StageResult] = []  # every stage each action ran or reused, in order

    @property
    def job_id(self) -> str:
        return self.config.job_id

    @property
    def job_root(self) -> str:
        return self.layout.run_root

    @property
    def temp_dir(self) -> str:
        """Local scratch (spill files) of the job."""
        return self.layout.spill_root

    def _ensure_layout(self) -> None:
        """Create the job's folders on first use, so building a plan touches no storage."""
        if self._laid_out:
            return
        for folder in self.layout.job_dirs():
            self._fs.makedirs(folder)
        self._laid_out = True
        atexit.register(self.shutdown)  # only sessions that touched storage need a final status

    # -- sources -----------------------------------------------------------------------------

    @user_call
    def read_parquet(
        self,
        paths: str | Sequence[str],
        recursive: bool = False,
        columns: Sequence[str] | None = None,
        union_by_name: bool = False,
        hive_partitioning: bool | None = None,
    ) -> DataFrame:
        spec = SourceSpec(
            format=SourceFormat.PARQUET,
            paths=_paths(paths),
            recursive=recursive,
            columns=tuple(columns) if columns else None,
            union_by_name=union_by_name,
            hive_partitioning=hive_partitioning,
        )
        return self._read(spec, "read_parquet")

    def read_iceberg(
        self,
        table: str,
        catalog: str | Mapping[str, str] | None = None,
        *,
        snapshot_id: int | None = None,
        as_of: dt.datetime | float | None = None,
        columns: Sequence[str] | None = None,
        row_filter: str | None = None,
        catalog_name: str = "pond",
    ) -> DataFrame:
        """An Iceberg table's snapshot (current, `snapshot_id`, or the one current `as_of`),
        split by file like Parquet; `row_filter` prunes files and filters rows."""
        from pond_core.tables import iceberg_source

        spec = iceberg_source(table, catalog, catalog_name, snapshot_id, as_of, columns, row_filter)
        return self._frame(Read(inputs=(), source=spec))

    def read_delta(
        self,
        path: str,
        *,
        version: int | None = None,
        as_of: dt.datetime | float | None = None,
        columns: Sequence[str] | None = None,
        partition_filters: Sequence[tuple[str, str, Any]] | None = None,
    ) -> DataFrame:
        """A Delta table's version (latest, `version`, or the one current `as_of`), split by
        file like Parquet; `partition_filters` ([("dt", ">=", "2026-11-21")]) prune files."""
        from pond_core.tables import delta_source

        spec = delta_source(path, version, as_of, columns, partition_filters)
        return self._frame(Read(inputs=(), source=spec))

    @user_call
    def read_csv(self, paths: str | Sequence[str], schema: dict[str, str], delim: str = ",", header: bool = False) -> DataFrame:
        spec = SourceSpec(SourceFormat.CSV, _paths(paths), schema=_schema(schema, "read_csv"), delim=delim, header=header)
        return self._read(spec, "read_csv")

    @user_call
    def read_json(self, paths: str | Sequence[str], schema: dict[str, str]) -> DataFrame:
        spec = SourceSpec(SourceFormat.JSON, _paths(paths), schema=_schema(schema, "read_json"))
        return self._read(spec, "read_json")

    def from_items(self, items: Sequence[Any]) -> DataFrame:
        import pyarrow as pa

        items = list(items)
        if items and all(isinstance(i, dict) for i in items):
            table = pa.Table.from_pylist(items)
        elif any(isinstance(i, dict) for i in items):
            raise PondConfigError("from_items takes a list of dicts or a list of scalars, not a mix")
        else:
            table = pa.table({"item": items})
        return self.from_arrow(table).alias("items")

    def from_pandas(self, df: Any) -> DataFrame:
        import pyarrow as pa

        return self.from_arrow(pa.Table.from_pandas(df, preserve_index=False)).alias("pandas")

    def from_arrow(self, table: pa.Table) -> DataFrame:
        """Store the table as Parquet under data_root (by content), so every task can read it."""
        import pyarrow as pa

        if not isinstance(table, pa.Table):
            raise PondConfigError(f"from_arrow takes a pyarrow.Table, got {type(table).__name__}")
        import pyarrow.parquet as pq

        buffer = _io.BytesIO()
        pq.write_table(table, buffer)
        data = buffer.getvalue()
        path = join_path(self.layout.inputs_dir, hashlib.sha256(data).hexdigest()[:24] + ".parquet")
        if not self._fs.exists(path):
            self._fs.write_bytes(path, data)
        return self.read_parquet(path).alias("arrow")  # its file is named by a hash: no name

    @user_call
    def partial_sql(
        self, query: str, *inputs: DataFrame, udfs: Sequence[Any] | None = None, params: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> DataFrame:
        """Run `query` on each partition; `{0}`, `{1}` … name the inputs; `$name` takes the
        value `params[name]` as a literal (never concatenate values into SQL). `name` names the
        stage that computes the result (see DataFrame.alias)."""
        from pond_core.sql_quote import bind_params

        query = bind_params(query, params, format_braces=True)
        for i, df in enumerate(inputs):
            if not isinstance(df, DataFrame):
                raise PondConfigError(f"partial_sql input {i} is a {type(df).__name__}, not a DataFrame")
        node = Sql(inputs=tuple(df._node for df in inputs), query=query, udfs=udf_specs(udfs))
        return self._frame(node)._named(name)

    @user_call
    def sql(self, query: str, /, **inputs: Any) -> DataFrame:
        """`query` over whole datasets: pond plans the exchanges, two-phase aggregations and
        broadcasts (see docs/sql.md). Inputs name the query's tables: DataFrames, or paths,
        globs and s3:// URLs of Parquet. `partial_sql` keeps smallpond's per-partition meaning."""
        from pond_core.sqlplan import session_sql

        return session_sql(self, query, **inputs)

    # -- running -----------------------------------------------------------------------------

    def executor(self) -> Executor:
        with self._lock:
            if self._closed:
                raise PondConfigError(f"session {self.job_id} was shut down; start a new one with init()")
            if self._executor is None:
                self._executor = make_executor(self.config)
                atexit.register(self.shutdown)
            return self._executor

    def run(self, root: Node, output: StageOutput) -> StageManifest:
        """Compile and run a logical plan as this job; return the final stage's manifest.

        Writes always write anew (a sink stage is forced); other stages committed earlier in
        this job are reused unless `recompute()` asked otherwise."""
        from pond_core.plan.compile import compile_plan
        from pond_core.progress import StageBars
        from pond_core.runner import run_plan

        plan = compile_plan(root, output, options=self.compile_options(started=True))
        self._ensure_layout()
        recompute = any(n.id in self._recompute for n in walk(root))
        force = [s.id for s in plan.stages if recompute or isinstance(s.output, SinkOutput)]
        try:
            with StageBars.for_session(plan, self.config.progress) as bars:
                result = run_plan(
                    plan, self.job_id, settings=self.config, storage=self.storage, executor=self.executor(), catalog=self.catalog(),
                    force=force, lineage_scope=f"session.{self.job_id}", progress=bars.update, on_stage=bars.finished,
                    finish_run=False,
                )
        except PondError:
            self._failed = True
            self._run_open = False  # run_plan recorded the run failed, with its error
            raise
        self._run_open = True
        self._recompute -= {n.id for n in walk(root)}
        self.history.extend(m.result for m in result.manifests.values())
        return result.manifests[plan.final.name]

    def catalog(self) -> Catalog:
        """The catalog this session's runs are recorded in, opened at the first action."""
        with self._lock:
            if self._closed:
                raise PondConfigError(f"session {self.job_id} was shut down; start a new one with init()")
            if self._catalog is None:
                from pond_core.runner import open_catalog

                self._catalog = open_catalog(self.config)
            return self._catalog

    def compile_options(self, started: bool = False) -> CompileOptions:
        """How this session's plans compile: on one machine, co-partitioned stages are fused
        with their exchanges (see plan/fuse.py). `started`: ask the executor (a Ray cluster
        may have one node); otherwise judge from the settings alone, starting nothing."""
        if started:
            one_machine = self.executor().machines() == 1
        elif self._executor is not None:
            one_machine = self._executor.machines() == 1
        else:
            one_machine = not self.config.use_ray
        return CompileOptions(fuse_co_partitioned=one_machine)

    def mark_recompute(self, node: Node) -> None:
        self._recompute.add(node.id)

    def shutdown(self) -> None:
        """Stop the executor, write the status file and clean temporaries unless a run failed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._executor is not None:
            self._executor.shutdown()
        if self._catalog is not None:
            self._finish_run(self._catalog)
        if not self._laid_out:
            return
        status = {
            "job_id": self.config.job_id,
            "job_name": self.config.job_name,
            "status": "failed" if self._failed else "success",
            "started_at": self._started,
            "finished_at": time.time(),
        }
        try:
            self._fs.write_bytes(self.layout.status_file, json.dumps(status).encode())
            if not self._failed and not self.config.keep_intermediates:
                self._fs.delete(self.layout.staging, recursive=True)
                shutil.rmtree(self.layout.spill_root, ignore_errors=True)
        except Exception as exc:  # at interpreter exit, storage may be gone; never raise there
            log.warning("pond session %s: cleanup failed: %s", self.config.job_id, exc)

    def _finish_run(self, catalog: Catalog) -> None:
        """The job's run ends with the session: success when its last action succeeded."""
        try:
            if self._run_open:
                catalog.finish_run(self.job_id, "success")
        except Exception as exc:  # at interpreter exit the catalog may be gone; never raise there
            log.warning("pond session %s: cannot mark its run finished: %s", self.config.job_id, exc)
        finally:
            catalog.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def _frame(self, node: Node) -> DataFrame:
        return DataFrame(self, node)

    def _read(self, spec: SourceSpec, method: str) -> DataFrame:
        """A read of files; in a user's session its paths must name files now (one listing
        per path), so a wrong path fails at the call that has it, not at a later action."""
        if self.check_sources:
            from pond_core.io import resolve_paths

            try:
                resolve_paths(list(spec.paths), spec.recursive, self.storage)
            except PondInputError as exc:
                raise PondInputError(f"{method}: {exc}; check the path (and for s3:// the bucket and credentials)") from None
        return self._frame(Read(inputs=(), source=spec))


def _paths(paths: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(paths, str):
        paths = [paths]
    out = tuple(str(p) for p in paths)
    if not out:
        raise PondConfigError("no paths given to read")
    return out


def _schema(schema: dict[str, str], method: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(schema, dict) or not schema:
        raise PondConfigError(f"{method} needs schema= as a dict of column name to DuckDB type, e.g. {{'id': 'BIGINT'}}")
    return tuple((str(k), str(v)) for k, v in schema.items())
