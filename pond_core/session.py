"""`init()` and `Session`: configuration, storage, executor, and the sources of DataFrames."""

from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import io as _io
import json
import logging
import os
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any, Sequence

from pond_core.config import SessionConfig, resolve_config
from pond_core.errors import PondConfigError, PondError
from pond_core.execute.executors import Executor, LocalExecutor, RayExecutor
from pond_core.execute.scheduler import run_dag
from pond_core.execute.stage import StageContext, run_stage
from pond_core.io import StorageOptions, get_filesystem, join_path
from pond_core.plan.logical import Node, Read, SourceSpec, Sql, UdfSpec, walk
from pond_core.plan.physical import PhysicalPlan, StageOutput
from pond_core.plan.pyfunc import PyFunc
from pond_core.udfs import as_udfs

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("pond")

JOB_DIRS = ("queue", "staging", "temp", "output", "log")


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
    speculation: bool | None = None,
) -> "Session":
    """Start a pond session; every argument is optional and unknown ones are an error.

    smallpond's arguments keep their meaning. pond adds: `executor` ("auto": Ray only when a
    `ray_address` is given; "local"; "ray"), per-task `memory_limit` and `task_threads`,
    `max_retries` for transient task failures, `spill_dir`, `catalog_url`, `storage_options`
    (S3 settings; default: the standard AWS environment), `keep_intermediates`,
    `max_task_memory` (the most memory a task retried after running out of memory may get;
    default: the largest node's) and `speculation` (copies of straggling tasks; default: on
    with Ray, which can stop the losing copy).
    """
    config = resolve_config(
        job_id, job_time, job_name, data_root, num_executors, ray_address, bind_numa_node, platform,
        executor, memory_limit, task_threads, max_retries, spill_dir, catalog_url, keep_intermediates,
        max_task_memory=max_task_memory, speculation=speculation,
    )
    return Session(config, _storage_options(storage_options))


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

    def __init__(self, config: SessionConfig, storage: StorageOptions) -> None:
        self.config = config
        self.storage = storage
        self._fs = get_filesystem(config.data_root, storage)
        self._executor: Executor | None = None
        self._lock = threading.Lock()
        self._failed = False
        self._closed = False
        self._recompute: set[str] = set()
        self._started = time.time()
        self._laid_out = False

    def _ensure_layout(self) -> None:
        """Create the job's folders on first use, so building a plan touches no storage."""
        if self._laid_out:
            return
        for name in JOB_DIRS:
            if name != "temp":
                self._fs.makedirs(join_path(self.job_root, name))
        os.makedirs(self.temp_dir, exist_ok=True)
        self._laid_out = True
        atexit.register(self.shutdown)  # only sessions that touched storage need a final status

    # -- layout ------------------------------------------------------------------------------

    @property
    def job_id(self) -> str:
        return self.config.job_id

    @property
    def job_root(self) -> str:
        return join_path(self.config.data_root, "jobs", self.config.job_id)

    @property
    def temp_dir(self) -> str:
        """Local scratch (spill files); under the job when data_root is local."""
        if self.config.spill_dir:
            return os.path.join(self.config.spill_dir, self.config.job_id)
        if "://" in self.config.data_root:
            return os.path.join(tempfile.gettempdir(), "pond", self.config.job_id)
        return os.path.join(self.job_root, "temp")

    # -- sources -----------------------------------------------------------------------------

    def read_parquet(
        self,
        paths: str | Sequence[str],
        recursive: bool = False,
        columns: Sequence[str] | None = None,
        union_by_name: bool = False,
        hive_partitioning: bool | None = None,
    ) -> "DataFrame":
        spec = SourceSpec(
            format="parquet",
            paths=_paths(paths),
            recursive=recursive,
            columns=tuple(columns) if columns else None,
            union_by_name=union_by_name,
            hive_partitioning=hive_partitioning,
        )
        return self._frame(Read(inputs=(), source=spec))

    def read_csv(self, paths: str | Sequence[str], schema: dict[str, str], delim: str = ",", header: bool = False) -> "DataFrame":
        return self._frame(Read(inputs=(), source=SourceSpec(format="csv", paths=_paths(paths), schema=_schema(schema, "read_csv"), delim=delim, header=header)))

    def read_json(self, paths: str | Sequence[str], schema: dict[str, str]) -> "DataFrame":
        return self._frame(Read(inputs=(), source=SourceSpec(format="json", paths=_paths(paths), schema=_schema(schema, "read_json"))))

    def from_items(self, items: Sequence[Any]) -> "DataFrame":
        import pyarrow as pa

        items = list(items)
        if items and all(isinstance(i, dict) for i in items):
            table = pa.Table.from_pylist(items)
        elif any(isinstance(i, dict) for i in items):
            raise PondConfigError("from_items takes a list of dicts or a list of scalars, not a mix")
        else:
            table = pa.table({"item": items})
        return self.from_arrow(table)

    def from_pandas(self, df: Any) -> "DataFrame":
        import pyarrow as pa

        return self.from_arrow(pa.Table.from_pandas(df, preserve_index=False))

    def from_arrow(self, table: "pa.Table") -> "DataFrame":
        """Store the table as Parquet under data_root (by content), so every task can read it."""
        import pyarrow as pa

        if not isinstance(table, pa.Table):
            raise PondConfigError(f"from_arrow takes a pyarrow.Table, got {type(table).__name__}")
        import pyarrow.parquet as pq

        buffer = _io.BytesIO()
        pq.write_table(table, buffer)
        data = buffer.getvalue()
        path = join_path(self.config.data_root, "inputs", hashlib.sha256(data).hexdigest()[:24] + ".parquet")
        if not self._fs.exists(path):
            self._fs.write_bytes(path, data)
        return self.read_parquet(path)

    def partial_sql(self, query: str, *inputs: "DataFrame", udfs: Sequence[Any] | None = None) -> "DataFrame":
        """Run `query` on each partition; `{0}`, `{1}` … name the inputs."""
        for i, df in enumerate(inputs):
            if not isinstance(df, DataFrame):
                raise PondConfigError(f"partial_sql input {i} is a {type(df).__name__}, not a DataFrame")
        node = Sql(inputs=tuple(df._node for df in inputs), query=query, udfs=udf_specs(udfs))
        return self._frame(node)

    # -- running -----------------------------------------------------------------------------

    def executor(self) -> Executor:
        with self._lock:
            if self._executor is None:
                if self.config.use_ray:
                    self._executor = RayExecutor(self.config.ray_address, self.config.num_executors)
                else:
                    self._executor = LocalExecutor(self.config.num_executors)
                atexit.register(self.shutdown)
            return self._executor

    def stage_context(
        self, run_id: str | None = None, progress: Any = None, recorder: Any = None, stop: threading.Event | None = None
    ) -> StageContext:
        run_id = run_id or self.config.job_id
        return StageContext(
            run_id=run_id,
            run_root=join_path(self.config.data_root, "jobs", run_id),
            executor=self.executor(),
            storage=self.storage,
            spill_root=self.temp_dir,
            max_retries=self.config.max_retries,
            memory_limit=self.config.memory_limit,
            max_task_memory=self.config.max_task_memory,
            speculation=self.config.speculation,
            task_threads=self.config.task_threads,
            progress=progress,
            recorder=recorder,
            stop=stop,
        )

    def execute(self, root: Node, output: StageOutput) -> tuple[PhysicalPlan, dict[str, Any]]:
        """Compile and run a logical plan; return the plan and the final stage's manifest."""
        from pond_core.plan.compile import compile_plan

        plan = compile_plan(root, output)
        self._ensure_layout()
        force_all = any(n.id in self._recompute for n in walk(root))
        ctx = self.stage_context()
        try:
            run_dag(plan, lambda stage: run_stage(plan, stage.id, ctx, force=force_all or stage.output.kind == "sink"))
        except PondError:
            self._failed = True
            raise
        self._recompute -= {n.id for n in walk(root)}
        from pond_core.execute.store import StageStore

        store = StageStore(get_filesystem(ctx.staging_root, self.storage), ctx.staging_root)
        return plan, store.manifest(plan.final.id)

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
            self._fs.write_bytes(join_path(self.job_root, "status.json"), json.dumps(status).encode())
            if not self._failed and not self.config.keep_intermediates:
                self._fs.delete(join_path(self.job_root, "staging"), recursive=True)
                self._fs.delete(self.temp_dir, recursive=True) if "://" not in self.temp_dir else None
                import shutil

                shutil.rmtree(self.temp_dir, ignore_errors=True)
        except Exception as exc:  # at interpreter exit, storage may be gone; never raise there
            log.warning("pond session %s: cleanup failed: %s", self.config.job_id, exc)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def _frame(self, node: Node) -> "DataFrame":
        return DataFrame(self, node)


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


def udf_specs(udfs: Sequence[Any] | None) -> tuple[UdfSpec, ...]:
    return tuple(
        UdfSpec(u.name, u.params, u.return_type, PyFunc.wrap(u.func, "udf")) for u in as_udfs(udfs)
    )


from pond_core.dataframe import DataFrame  # noqa: E402  (DataFrame needs Session defined first)
