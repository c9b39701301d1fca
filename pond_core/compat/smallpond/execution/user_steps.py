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
from pond_core.compat.smallpond.logical.dataset import DataSet, FileSet, ParquetDataSet
from pond_core.errors import PondDataError
from pond_core.textenum import TextEnum

FILE_COLUMN = "__pond_file__"  # a script step's output when it writes files of another kind
MARK_COLUMN = "__pond_marker__"  # one extra row per partition, so an empty one still has a schema


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
        schema, tables = _unmark(chunks)
        if self.kind is StepKind.PYTHON_SCRIPT:
            yield from self._script(task, runtime_ctx, schema, tables)
        elif self.kind in (StepKind.ARROW_COMPUTE, StepKind.PANDAS_COMPUTE):
            table = pa_concat(schema, list(tables))
            yield _table(task.process(runtime_ctx, [table.to_pandas() if self.kind is StepKind.PANDAS_COMPUTE else table]))
        elif self.kind is StepKind.ARROW_STREAM:
            import pyarrow as pa

            reader = pa.RecordBatchReader.from_batches(schema, (b for t in tables for b in t.to_batches()))
            for out in task.process(runtime_ctx, [reader]):
                yield _table(out)
        else:
            for table in tables:
                yield _table(task.process(runtime_ctx, [_frame(table) if self.kind is StepKind.PANDAS_BATCH else table]))

    def _script(self, task: Any, runtime_ctx: RuntimeContext, schema: Any, tables: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        scratch = tempfile.mkdtemp(prefix="pond-smallpond-")
        try:
            output = os.path.join(scratch, "output")
            os.makedirs(output)
            task.runtime_output_abspath = output
            if not task.process(runtime_ctx, [_input_dataset(schema, tables, scratch)], output):
                raise PondDataError(f"{type(self.node).__name__}.process returned False (the task failed)")
            names = sorted(os.listdir(output))
            parquet = [n for n in names if n.endswith(".parquet")]
            for name in parquet:
                yield pq.read_table(os.path.join(output, name))
            if not parquet:  # files of another kind: kept, and listed as this step's rows
                yield pa.table({FILE_COLUMN: self._keep_files(output, names)}, schema=pa.schema([(FILE_COLUMN, pa.string())]))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _keep_files(self, output: str, names: list[str]) -> list[str]:
        if not names:
            return []
        if self.files_dir is None:
            raise PondDataError(f"{type(self.node).__name__} wrote files that are not Parquet and there is no folder to keep them in")
        os.makedirs(self.files_dir, exist_ok=True)
        kept = []
        for name in names:
            target = os.path.join(self.files_dir, name)
            shutil.move(os.path.join(output, name), target)
            kept.append(target)
        return kept


def _unmark(chunks: Iterator[Any]) -> tuple[Any, Iterator[Any]]:
    """The partition's schema and its tables, without the marker row the planner added so
    that even an empty partition arrives with its schema (logical/planner.py)."""
    import pyarrow.compute as pc

    first = next(chunks, None)
    if first is None or MARK_COLUMN not in first.schema.names:
        raise PondDataError("a smallpond node's step got no marker row; the plan was not built by the smallpond planner")
    schema = first.schema.remove(first.schema.get_field_index(MARK_COLUMN))

    def tables() -> Iterator[Any]:
        for table in _chain(first, chunks):
            kept = table.filter(pc.invert(table.column(MARK_COLUMN))).drop_columns([MARK_COLUMN])
            if kept.num_rows:
                yield kept

    return schema, tables()


def pa_concat(schema: Any, tables: list[Any]) -> Any:
    import pyarrow as pa

    return pa.concat_tables(tables) if tables else schema.empty_table()


def _input_dataset(schema: Any, tables: Iterator[Any], scratch: str) -> DataSet:
    """The partition as files: a file list from an earlier script step, else Parquet written here."""
    import pyarrow.parquet as pq

    if schema.names == [FILE_COLUMN]:
        return FileSet([p for t in tables for p in t.column(FILE_COLUMN).to_pylist()])
    path = os.path.join(scratch, "input.parquet")
    with pq.ParquetWriter(path, schema) as writer:
        for table in tables:
            writer.write_table(table)
    return ParquetDataSet([path])


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


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
