"""What smallpond's user code sees while it runs: the RuntimeContext and the task.

On pond a user node (`ArrowComputeNode`, `PythonScriptNode`, ...) runs as a Python step of a
pond task; these classes give its `process` the attributes smallpond programs read
(`runtime_ctx.task.cpu_limit`, `perf_metrics`, `add_elapsed_time`, `runtime_output_abspath`,
...). A user may subclass a task and override `process`, returned from the node's `spawn`, as on
smallpond.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pond_core.compat.smallpond.logical.dataset import DataSet


@dataclasses.dataclass(frozen=True)
class PartitionInfo:
    """A task's partition in one dimension (smallpond's nested partitions have several)."""

    index: int = 0
    npartitions: int = 1
    dimension: str = "__data_partition__"


@dataclasses.dataclass
class RuntimeContext:
    """The job a task belongs to and the task itself (`runtime_ctx.task`)."""

    job_id: str = "pond"
    task: Any = None
    usable_cpu_count: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)

    @property
    def usable_memory_size(self) -> int:
        import psutil

        return int(psutil.virtual_memory().available)


@dataclasses.dataclass
class StreamOutput:
    """What an ArrowStreamNode may yield instead of a table: a table plus checkpoint hints
    (pond commits a task's whole output at once, so the hints are ignored)."""

    output_table: Any
    batch_indices: Sequence[int] = ()
    force_checkpoint: bool = False


class Task:
    """A task running a user node's code: resources, metrics, a scratch output folder."""

    def __init__(
        self,
        runtime_ctx: RuntimeContext,
        input_deps: Sequence[Any],
        partition_infos: Sequence[PartitionInfo],
        process_func: Callable[..., Any] | None = None,
        *args: Any,
        output_name: str | None = None,
        output_path: str | None = None,
        cpu_limit: int = 1,
        gpu_limit: float = 0,
        memory_limit: int | None = None,
        **options: Any,
    ) -> None:
        self.runtime_ctx = runtime_ctx
        self.input_deps = list(input_deps)
        self.partition_infos = list(partition_infos)
        self.process_func = process_func
        self.output_name = output_name or type(self).__name__
        self.output_path = output_path
        self.cpu_limit = cpu_limit
        self.gpu_limit = gpu_limit
        self.memory_limit = memory_limit
        self.options = options
        self.perf_metrics: defaultdict[str, float] = defaultdict(float)
        self.runtime_output_abspath = ""
        self.local_rank = 0
        self.random_seed_uint32 = random.getrandbits(32)
        self._last = time.monotonic()
        self.output_filename = f"{self.output_name}-{uuid.uuid4().hex[:16]}"  # unique: files of all partitions share a folder

    @property
    def python_random_gen(self) -> random.Random:
        return random.Random(self.random_seed_uint32)

    @property
    def numpy_random_gen(self) -> Any:
        import numpy as np

        return np.random.default_rng(self.random_seed_uint32)

    def add_elapsed_time(self, metric_name: str = "elapsed time (secs)") -> float:
        now = time.monotonic()
        elapsed, self._last = now - self._last, now
        self.perf_metrics[metric_name] += elapsed
        return elapsed

    def prepare_connection(self, conn: Any) -> None:
        """Bound a user's own DuckDB connection to this task's threads."""
        conn.execute(f"SET threads TO {max(1, int(self.cpu_limit))}")

    def create_input_views(self, conn: Any, input_datasets: Sequence[DataSet], filesystem: Any = None) -> list[str]:
        names = []
        for i, dataset in enumerate(input_datasets):
            name = f"__input{i}"
            conn.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {dataset._column_str} FROM {dataset.sql_query_fragment()}")
            names.append(name)
        return names

    def _call(self, *args: Any) -> Any:
        if self.process_func is None:
            raise NotImplementedError(f"{type(self).__name__}: no process function")
        return self.process_func(*args)


class PythonScriptTask(Task):
    def process(self, runtime_ctx: RuntimeContext, input_datasets: list[DataSet], output_path: str) -> bool:
        return bool(self._call(runtime_ctx, input_datasets, output_path))


class ArrowComputeTask(Task):
    def process(self, runtime_ctx: RuntimeContext, input_tables: list[Any]) -> Any:
        return self._call(runtime_ctx, input_tables)


class ArrowStreamTask(Task):
    def process(self, runtime_ctx: RuntimeContext, input_readers: list[Any]) -> Iterable[Any]:
        return self._call(runtime_ctx, input_readers)


class ArrowBatchTask(ArrowStreamTask):
    def process(self, runtime_ctx: RuntimeContext, input_tables: list[Any]) -> Any:
        return self._call(runtime_ctx, input_tables)


class PandasComputeTask(ArrowComputeTask):
    pass


class PandasBatchTask(ArrowBatchTask):
    pass
