"""A user node's `process` as a pond Python step.

The planner compiles each Arrow, pandas or Python script node to a streaming `map_batches`
step; `UserStep` is the function that step runs. It receives the partition as a stream of Arrow
tables and hands user code what smallpond would have: one table, a RecordBatchReader, one table
or pandas frame per batch, or the partition's files (a Parquet file written for the task) and an
output folder. It is pickled into the plan, so it carries the node without its graph.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

from pond_core.compat.smallpond.execution.task import RuntimeContext, StreamOutput
from pond_core.compat.smallpond.logical.dataset import ParquetDataSet
from pond_core.errors import PondDataError
from pond_core.textenum import TextEnum


class StepKind(TextEnum):
    ARROW_COMPUTE = "arrow_compute"  # the whole partition as one table
    ARROW_STREAM = "arrow_stream"  # a RecordBatchReader; yields tables
    ARROW_BATCH = "arrow_batch"  # one table per batch
    PANDAS_COMPUTE = "pandas_compute"
    PANDAS_BATCH = "pandas_batch"
    PYTHON_SCRIPT = "python_script"  # files in, files out


@dataclasses.dataclass
class UserStep:
    """Run `node`'s process (or its process_func) over one partition."""

    kind: StepKind
    node: Any  # the user's node, slim_copy()'d: no graph, no context
    job_id: str
    files_dir: str | None = None  # where a script's non-Parquet output files are kept

    def __post_init__(self) -> None:
        self.__qualname__ = f"{type(self.node).__name__}.process"  # the step's label in plans and errors

    def __call__(self, chunks: Iterator[Any]) -> Iterator[Any]:
        runtime_ctx = RuntimeContext(job_id=self.job_id)
        node = self.node
        task = node.spawn(
            runtime_ctx, [], [], node.process_func or node.process,
            output_name=node.output_name, output_path=node.output_path, cpu_limit=node.cpu_limit,
            gpu_limit=node.gpu_limit, memory_limit=node.memory_limit,
        )
        runtime_ctx.task = task
        if self.kind is StepKind.PYTHON_SCRIPT:
            yield from self._script(task, runtime_ctx, chunks)
        elif self.kind in (StepKind.ARROW_COMPUTE, StepKind.PANDAS_COMPUTE):
            yield from self._compute(task, runtime_ctx, list(chunks))
        elif self.kind is StepKind.ARROW_STREAM:
            yield from self._stream(task, runtime_ctx, chunks)
        else:
            for table in chunks:
                yield _table(task.process(runtime_ctx, [_frame(table) if self.kind is StepKind.PANDAS_BATCH else table]))

    def _compute(self, task: Any, runtime_ctx: RuntimeContext, tables: list[Any]) -> Iterator[Any]:
        import pyarrow as pa

        if not tables:
            return  # an empty partition: smallpond's user code is not called on nothing either
        table = pa.concat_tables(tables)
        yield _table(task.process(runtime_ctx, [table.to_pandas() if self.kind is StepKind.PANDAS_COMPUTE else table]))

    def _stream(self, task: Any, runtime_ctx: RuntimeContext, chunks: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        first = next(chunks, None)
        if first is None:
            return
        batches = (b for t in _chain(first, chunks) for b in t.to_batches())
        reader = pa.RecordBatchReader.from_batches(first.schema, batches)
        for out in task.process(runtime_ctx, [reader]):
            yield _table(out)

    def _script(self, task: Any, runtime_ctx: RuntimeContext, chunks: Iterator[Any]) -> Iterator[Any]:
        import pyarrow.parquet as pq

        scratch = tempfile.mkdtemp(prefix="pond-smallpond-")
        try:
            inputs, output = os.path.join(scratch, "input"), os.path.join(scratch, "output")
            os.makedirs(inputs)
            os.makedirs(output)
            paths = _write_parquet(chunks, os.path.join(inputs, "part-0.parquet"))
            task.runtime_output_abspath = output
            if not task.process(runtime_ctx, [ParquetDataSet(paths)], output):
                raise PondDataError(f"{type(self.node).__name__}.process returned False (the task failed)")
            for name in sorted(os.listdir(output)):
                path = os.path.join(output, name)
                if name.endswith(".parquet"):
                    yield pq.read_table(path)
                elif self.files_dir is not None and os.path.isfile(path):
                    os.makedirs(self.files_dir, exist_ok=True)
                    shutil.move(path, os.path.join(self.files_dir, name))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _write_parquet(chunks: Iterator[Any], path: str) -> list[str]:
    import pyarrow.parquet as pq

    writer = None
    try:
        for table in chunks:
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    return [path] if writer is not None else []


def _frame(table: Any) -> Any:
    return table.to_pandas()


def _table(out: Any) -> Any:
    """What user code returned, as an Arrow table (smallpond's StreamOutput unwrapped)."""
    if isinstance(out, StreamOutput):
        out = out.output_table
    import pyarrow as pa

    if isinstance(out, pa.Table):
        return out
    if isinstance(out, pa.RecordBatch):
        return pa.Table.from_batches([out])
    try:
        import pandas as pd

        if isinstance(out, pd.DataFrame):
            return pa.Table.from_pandas(out, preserve_index=False)
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    raise PondDataError(f"a smallpond node's process returned {type(out).__name__}; it must return an Arrow table (or pandas DataFrame)")
