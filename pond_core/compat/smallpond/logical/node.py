"""smallpond's logical nodes, as plain descriptions that logical/planner.py compiles to pond.

Each class keeps smallpond's constructor (positional order, keyword names, defaults), so a
program written for smallpond builds the same graph here. A node holds only what it was given;
what each option means on pond (honoured, or accepted and ignored) is in
docs/smallpond-lowlevel.md. User subclasses override `process` (Arrow, pandas and Python script
nodes) or `partition` (user-defined partitions), as on smallpond.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pond_core.compat.smallpond.logical.dataset import GENERATED_COLUMNS, DataSet, ParquetDataSet
from pond_core.compat.smallpond.logical.udf import UserDefinedFunction
from pond_core.errors import PondConfigError

DATA_PARTITION_COLUMN_NAME = "__data_partition__"
DEFAULT_ROW_GROUP_SIZE = 122880
DEFAULT_BATCH_SIZE = 122880
GB = 1 << 30

# Output and engine tuning smallpond's nodes take that mean nothing on pond (pond writes
# Snappy Parquet through DuckDB, sizes tasks itself and always spills): accepted, ignored.
IGNORED_OPTIONS = frozenset({
    "parquet_row_group_size", "parquet_dictionary_encoding", "parquet_compression", "parquet_compression_level",
    "use_duckdb_reader", "background_io_thread", "secs_checkpoint_interval", "per_thread_output",
    "materialize_output", "materialize_in_memory", "relax_memory_if_oom", "batched_processing",
    "enable_temp_directory", "cpu_overcommit_ratio", "memory_overcommit_ratio", "use_parquet_writer",
    "hive_partitioning", "engine_type", "gpu_limit", "extension_paths", "udf_module_paths",
})


def _check_ignored(node: str, options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - IGNORED_OPTIONS)
    if unknown:
        raise PondConfigError(f"{node} takes no option {', '.join(unknown)} (smallpond's options are listed in docs/smallpond-lowlevel.md)")


class Context:
    """A plan's node ids and its UDFs registered by name (`create_function`)."""

    def __init__(self) -> None:
        self.next_node_id = 0
        self.udfs: dict[str, UserDefinedFunction] = {}

    def _new_node_id(self) -> int:
        self.next_node_id += 1
        return self.next_node_id

    def create_function(self, name: str, func: Callable[..., Any], params: Any, return_type: Any, use_arrow_type: bool = False) -> str:
        self.udfs[name] = UserDefinedFunction(name, func, params, return_type, use_arrow_type)
        return name

    def create_external_module(self, module_path: str, name: str | None = None) -> str:
        raise PondConfigError(f"external UDF modules ({module_path}) are not supported on pond; use @udf functions")

    def create_duckdb_extension(self, extension_path: str, name: str | None = None) -> str:
        raise PondConfigError(f"DuckDB extension files ({extension_path}) are not supported on pond; use @udf functions")


class Node:
    """A step of the plan: its inputs and how its output is named."""

    enable_resource_boost = False

    def __init__(
        self,
        ctx: Context,
        input_deps: Sequence[Node],
        output_name: str | None = None,
        output_path: str | None = None,
        cpu_limit: int = 1,
        gpu_limit: float = 0,
        memory_limit: int | None = None,
    ) -> None:
        if not isinstance(input_deps, Iterable) or not all(isinstance(n, Node) for n in input_deps):
            raise PondConfigError(f"{type(self).__name__}: input_deps must be a tuple of nodes, got {input_deps!r}")
        if output_name is not None and not re.fullmatch(r"[a-zA-Z0-9_]+", output_name):
            raise PondConfigError(f"{type(self).__name__}: output_name takes letters, digits and _, got {output_name!r}")
        if output_path is not None and "://" not in output_path and not os.path.isabs(output_path):
            raise PondConfigError(f"{type(self).__name__}: output_path must be an absolute path, got {output_path!r}")
        self.ctx = ctx
        self.id = ctx._new_node_id()
        self.input_deps = tuple(input_deps)
        self.output_name = output_name
        self.output_path = output_path
        self.cpu_limit = max(cpu_limit or 1, int(gpu_limit * 8))
        self.gpu_limit = gpu_limit
        self.memory_limit = memory_limit

    def __repr__(self) -> str:
        return f"{type(self).__name__}-{self.id}"

    def __str__(self) -> str:
        return f"{self!r}: input_deps={list(self.input_deps)}, output_name={self.output_name}"

    def slim_copy(self) -> Node:
        """The node without its graph, as a task carries it (what `process` may read)."""
        node = copy.copy(self)
        del node.input_deps, node.ctx
        return node

    @property
    def num_partitions(self) -> int:
        return max((d.num_partitions for d in self.input_deps), default=1)


class DataSourceNode(Node):
    """A dataset the plan reads: one partition over all its files."""

    def __init__(self, ctx: Context, dataset: DataSet | None) -> None:
        super().__init__(ctx, ())
        self.dataset = dataset if dataset is not None else ParquetDataSet([])

    @property
    def num_partitions(self) -> int:
        return 1


class DataSinkNode(Node):
    """Publish the inputs' output at `output_path` (pond: a Parquet dataset written there)."""

    def __init__(
        self, ctx: Context, input_deps: Sequence[Node], output_path: str, type: str = "link", manifest_only: bool = False,
        is_final_node: bool = False,
    ) -> None:
        if type not in ("link", "copy", "link_or_copy", "manifest"):
            raise PondConfigError(f"DataSinkNode: type must be link, copy, link_or_copy or manifest, got {type!r}")
        super().__init__(ctx, input_deps, None, output_path)
        self.type = "manifest" if manifest_only else type
        self.is_final_node = is_final_node


class PythonScriptNode(Node):
    """User code over the input datasets' files: `process(runtime_ctx, input_datasets, output_path)`."""

    def __init__(
        self,
        ctx: Context,
        input_deps: Sequence[Node],
        *,
        process_func: Callable[..., bool] | None = None,
        output_name: str | None = None,
        output_path: str | None = None,
        cpu_limit: int = 1,
        gpu_limit: float = 0,
        memory_limit: int | None = None,
    ) -> None:
        super().__init__(ctx, input_deps, output_name, output_path, cpu_limit, gpu_limit, memory_limit)
        self.process_func = process_func

    def spawn(self, *args: Any, **kwargs: Any) -> Any:
        from pond_core.compat.smallpond.execution.task import PythonScriptTask

        return PythonScriptTask(*args, **kwargs)

    def process(self, runtime_ctx: Any, input_datasets: list[DataSet], output_path: str) -> bool:
        raise NotImplementedError(f"{type(self).__name__}: override process() or pass process_func=")


class ArrowComputeNode(Node):
    """User code over each partition as one Arrow table: `process(runtime_ctx, [table]) -> table`."""

    default_row_group_size = DEFAULT_ROW_GROUP_SIZE

    def __init__(
        self,
        ctx: Context,
        input_deps: Sequence[Node],
        *,
        process_func: Callable[..., Any] | None = None,
        output_name: str | None = None,
        output_path: str | None = None,
        cpu_limit: int = 1,
        gpu_limit: float = 0,
        memory_limit: int | None = None,
        **ignored: Any,
    ) -> None:
        _check_ignored(type(self).__name__, ignored)
        super().__init__(ctx, input_deps, output_name, output_path, cpu_limit, gpu_limit, memory_limit)
        self.process_func = process_func

    def spawn(self, *args: Any, **kwargs: Any) -> Any:
        from pond_core.compat.smallpond.execution.task import ArrowComputeTask

        return ArrowComputeTask(*args, **kwargs)

    def process(self, runtime_ctx: Any, input_tables: list[Any]) -> Any:
        raise NotImplementedError(f"{type(self).__name__}: override process() or pass process_func=")


class ArrowStreamNode(Node):
    """User code over each partition as a stream of record batches of `streaming_batch_size` rows."""

    default_batch_size = DEFAULT_BATCH_SIZE
    default_row_group_size = DEFAULT_ROW_GROUP_SIZE

    def __init__(
        self,
        ctx: Context,
        input_deps: Sequence[Node],
        *,
        process_func: Callable[..., Any] | None = None,
        streaming_batch_size: int | None = None,
        output_name: str | None = None,
        output_path: str | None = None,
        cpu_limit: int = 1,
        gpu_limit: float = 0,
        memory_limit: int | None = None,
        **ignored: Any,
    ) -> None:
        _check_ignored(type(self).__name__, ignored)
        super().__init__(ctx, input_deps, output_name, output_path, cpu_limit, gpu_limit, memory_limit)
        self.process_func = process_func
        self.streaming_batch_size = streaming_batch_size or self.default_batch_size

    def spawn(self, *args: Any, **kwargs: Any) -> Any:
        from pond_core.compat.smallpond.execution.task import ArrowStreamTask

        return ArrowStreamTask(*args, **kwargs)

    def process(self, runtime_ctx: Any, input_readers: list[Any]) -> Iterable[Any]:
        raise NotImplementedError(f"{type(self).__name__}: override process() or pass process_func=")


class ArrowBatchNode(ArrowStreamNode):
    """User code over each batch as an Arrow table: `process(runtime_ctx, [table]) -> table`."""

    def spawn(self, *args: Any, **kwargs: Any) -> Any:
        from pond_core.compat.smallpond.execution.task import ArrowBatchTask

        return ArrowBatchTask(*args, **kwargs)


class PandasComputeNode(ArrowComputeNode):
    """User code over each partition as one pandas DataFrame."""

    def spawn(self, *args: Any, **kwargs: Any) -> Any:
        from pond_core.compat.smallpond.execution.task import PandasComputeTask

        return PandasComputeTask(*args, **kwargs)


class PandasBatchNode(ArrowStreamNode):
    """User code over each batch as a pandas DataFrame."""

    def spawn(self, *args: Any, **kwargs: Any) -> Any:
        from pond_core.compat.smallpond.execution.task import PandasBatchTask

        return PandasBatchTask(*args, **kwargs)


class SqlEngineNode(Node):
    """DuckDB SQL run on each partition; `{0}`, `{1}` ... name the inputs."""

    max_udf_cpu_limit = 3
    default_cpu_limit = 1
    default_memory_limit: int | None = None
    default_row_group_size = DEFAULT_ROW_GROUP_SIZE
    enable_resource_boost = True

    def __init__(
        self,
        ctx: Context,
        input_deps: Sequence[Node],
        sql_query: str | Iterable[str],
        *,
        udfs: Sequence[str | UserDefinedFunction] | None = None,
        output_name: str | None = None,
        output_path: str | None = None,
        cpu_limit: int | None = None,
        memory_limit: int | None = None,
        **ignored: Any,
    ) -> None:
        _check_ignored("SqlEngineNode", ignored)
        super().__init__(ctx, input_deps, output_name, output_path, cpu_limit or self.default_cpu_limit, 0,
                         memory_limit or self.default_memory_limit)
        self.sql_queries = [sql_query] if isinstance(sql_query, str) else list(sql_query)
        if not self.sql_queries or not all(isinstance(q, str) for q in self.sql_queries):
            raise PondConfigError(f"SqlEngineNode: sql_query must be a string or a list of strings, got {sql_query!r}")
        self.udfs: list[str] = []
        for item in udfs or []:
            if isinstance(item, UserDefinedFunction):
                self.udfs.append(ctx.create_function(item.name, item.func, item.params, item.return_type, item.use_arrow_type))
            elif isinstance(item, str) and item in ctx.udfs:
                self.udfs.append(item)
            else:
                raise PondConfigError(f"SqlEngineNode: udfs takes @udf functions or names from ctx.create_function, got {item!r}")

    @property
    def oneline_query(self) -> str:
        return "; ".join(" ".join(q.split()) for q in self.sql_queries)

    @property
    def num_partitions(self) -> int:
        return self.input_deps[0].num_partitions if self.input_deps else 1


class UnionNode(Node):
    """The inputs' rows together, partition by partition."""

    def __init__(self, ctx: Context, input_deps: Sequence[Node]) -> None:
        super().__init__(ctx, input_deps)


class RootNode(Node):
    """Several results of one plan; outputs nothing itself."""

    def __init__(self, ctx: Context, input_deps: Sequence[Node]) -> None:
        super().__init__(ctx, input_deps)


class ConsolidateNode(Node):
    """Merge partitions: with no dimensions, into one."""

    def __init__(self, ctx: Context, input_dep: Node, dimensions: Sequence[str]) -> None:
        super().__init__(ctx, (input_dep,))
        self.dimensions = list(dimensions)

    @property
    def num_partitions(self) -> int:
        return self.input_deps[0].num_partitions if self.dimensions else 1


class PartitionNode(Node):
    """Split the inputs into `npartitions` partitions."""

    max_num_producer_tasks = 100

    def __init__(
        self,
        ctx: Context,
        input_deps: Sequence[Node],
        npartitions: int,
        dimension: str | None = None,
        nested: bool = False,
        output_name: str | None = None,
        output_path: str | None = None,
        cpu_limit: int = 1,
        memory_limit: int | None = None,
    ) -> None:
        if not isinstance(npartitions, int) or isinstance(npartitions, bool):
            raise PondConfigError(f"{type(self).__name__}: npartitions must be an integer, got {npartitions!r}")
        super().__init__(ctx, input_deps, output_name, output_path, cpu_limit, 0, memory_limit)
        self.npartitions = npartitions
        self.dimension = dimension or DATA_PARTITION_COLUMN_NAME
        self.nested = nested

    @property
    def num_partitions(self) -> int:
        return self.npartitions


class RepeatPartitionNode(PartitionNode):
    """`npartitions` copies of the input, one per partition."""

    def __init__(self, ctx: Context, input_deps: Sequence[Node], npartitions: int, dimension: str,
                 cpu_limit: int = 1, memory_limit: int | None = None) -> None:
        super().__init__(ctx, input_deps, npartitions, dimension, nested=True, cpu_limit=cpu_limit, memory_limit=memory_limit)


class UserDefinedPartitionNode(PartitionNode):
    """Partitions chosen by user code: `partition(runtime_ctx, dataset) -> [dataset, ...]`."""

    def __init__(self, ctx: Context, input_deps: Sequence[Node], npartitions: int, dimension: str | None = None,
                 nested: bool = False, cpu_limit: int = 1, memory_limit: int | None = None) -> None:
        super().__init__(ctx, input_deps, npartitions, dimension, nested, cpu_limit=cpu_limit, memory_limit=memory_limit)

    def partition(self, runtime_ctx: Any, dataset: DataSet) -> list[DataSet]:
        raise NotImplementedError(f"{type(self).__name__}: override partition()")


class UserPartitionedDataSourceNode(UserDefinedPartitionNode):
    """A source already split: one dataset per partition."""

    def __init__(self, ctx: Context, partitioned_datasets: Sequence[DataSet], dimension: str | None = None) -> None:
        if not partitioned_datasets or not all(isinstance(d, DataSet) for d in partitioned_datasets):
            raise PondConfigError("UserPartitionedDataSourceNode needs a non-empty list of datasets")
        super().__init__(ctx, (DataSourceNode(ctx, None),), len(partitioned_datasets), dimension)
        self.partitioned_datasets = list(partitioned_datasets)

    def partition(self, runtime_ctx: Any, dataset: DataSet) -> list[DataSet]:
        return self.partitioned_datasets


class EvenlyDistributedPartitionNode(PartitionNode):
    """Split by files (or by rows with `partition_by_rows`) into contiguous, even groups."""

    max_num_producer_tasks = 1

    def __init__(
        self,
        ctx: Context,
        input_deps: Sequence[Node],
        npartitions: int,
        dimension: str | None = None,
        nested: bool = False,
        *,
        partition_by_rows: bool = False,
        random_shuffle: bool = False,
        output_name: str | None = None,
        output_path: str | None = None,
        cpu_limit: int = 1,
        memory_limit: int | None = None,
    ) -> None:
        super().__init__(ctx, input_deps, npartitions, dimension, nested, output_name, output_path, cpu_limit, memory_limit)
        self.partition_by_rows = partition_by_rows and npartitions > 1
        self.random_shuffle = random_shuffle


class LoadPartitionedDataSetNode(PartitionNode):
    """Partitions named by a column's value (data a hash partition wrote earlier)."""

    def __init__(
        self,
        ctx: Context,
        input_deps: Sequence[Node],
        npartitions: int,
        dimension: str | None = None,
        nested: bool = False,
        data_partition_column: str | None = None,
        hive_partitioning: bool = False,
        cpu_limit: int = 1,
        memory_limit: int | None = None,
    ) -> None:
        if not (dimension or data_partition_column):
            raise PondConfigError("LoadPartitionedDataSetNode needs dimension= or data_partition_column=")
        super().__init__(ctx, input_deps, npartitions, dimension or data_partition_column, nested, cpu_limit=cpu_limit, memory_limit=memory_limit)
        self.data_partition_column = data_partition_column or dimension
        self.hive_partitioning = hive_partitioning


def DataSetPartitionNode(  # smallpond's name: a function that returns a node
    ctx: Context,
    input_deps: Sequence[Node],
    npartitions: int,
    *,
    partition_by_rows: bool = False,
    random_shuffle: bool = False,
    data_partition_column: str | None = None,
) -> Node:
    """Split the inputs evenly into `npartitions` (by files, or rows), or by a partition column."""
    if partition_by_rows and data_partition_column:
        raise PondConfigError("DataSetPartitionNode: partition_by_rows and data_partition_column cannot both be set")
    if data_partition_column is not None:
        return LoadPartitionedDataSetNode(ctx, input_deps, npartitions, data_partition_column=data_partition_column)
    node = EvenlyDistributedPartitionNode(ctx, input_deps, npartitions, partition_by_rows=partition_by_rows, random_shuffle=random_shuffle)
    return ConsolidateNode(ctx, node, dimensions=[]) if npartitions == 1 else node


class HashPartitionNode(PartitionNode):
    """Rows with equal `hash_columns` land in one partition; the partition index is kept in
    `data_partition_column` (default `__data_partition__`)."""

    default_cpu_limit = 1
    default_memory_limit: int | None = None
    default_data_partition_column = DATA_PARTITION_COLUMN_NAME
    default_engine_type = "duckdb"
    default_row_group_size = DEFAULT_ROW_GROUP_SIZE
    max_num_producer_tasks = 1000
    enable_resource_boost = True

    def __init__(
        self,
        ctx: Context,
        input_deps: Sequence[Node],
        npartitions: int,
        hash_columns: Sequence[str] | None = None,
        data_partition_column: str | None = None,
        *,
        dimension: str | None = None,
        nested: bool = False,
        random_shuffle: bool = False,
        shuffle_only: bool = False,
        drop_partition_column: bool = False,
        output_name: str | None = None,
        output_path: str | None = None,
        cpu_limit: int | None = None,
        memory_limit: int | None = None,
        **ignored: Any,
    ) -> None:
        _check_ignored(type(self).__name__, ignored)
        if random_shuffle and shuffle_only:
            raise PondConfigError(f"{type(self).__name__}: random_shuffle and shuffle_only cannot both be set")
        if shuffle_only and data_partition_column is None:
            raise PondConfigError(f"{type(self).__name__}: shuffle_only needs data_partition_column=")
        if not random_shuffle and not shuffle_only and not hash_columns:
            raise PondConfigError(f"{type(self).__name__}: give hash_columns=, random_shuffle=True or shuffle_only=True")
        column = data_partition_column or self.default_data_partition_column
        if not re.fullmatch(r"[a-zA-Z0-9_]+", column):
            raise PondConfigError(f"{type(self).__name__}: data_partition_column takes letters, digits and _, got {column!r}")
        super().__init__(ctx, input_deps, npartitions, dimension or column, nested, output_name, output_path,
                         cpu_limit or self.default_cpu_limit, memory_limit or self.default_memory_limit)
        self.hash_columns = list(hash_columns) if hash_columns else None
        self.data_partition_column = column
        self.engine_type = ignored.get("engine_type") or self.default_engine_type
        self.random_shuffle = random_shuffle
        self.shuffle_only = shuffle_only
        self.drop_partition_column = drop_partition_column


class ShuffleNode(HashPartitionNode):
    """Rows go to the partition `data_partition_column` names (its value is the index)."""

    def __init__(
        self,
        ctx: Context,
        input_deps: Sequence[Node],
        npartitions: int,
        data_partition_column: str | None = None,
        *,
        dimension: str | None = None,
        nested: bool = False,
        output_name: str | None = None,
        output_path: str | None = None,
        cpu_limit: int | None = None,
        memory_limit: int | None = None,
        **ignored: Any,
    ) -> None:
        super().__init__(ctx, input_deps, npartitions, None, data_partition_column, dimension=dimension, nested=nested,
                         shuffle_only=True, output_name=output_name, output_path=output_path, cpu_limit=cpu_limit,
                         memory_limit=memory_limit, **ignored)


class RangePartitionNode(PartitionNode):
    """smallpond declares it but never implemented it; pond refuses it when planning."""

    def __init__(self, ctx: Context, input_deps: Sequence[Node], split_points: Sequence[Any], dimension: str | None = None,
                 nested: bool = False, output_name: str | None = None, output_path: str | None = None,
                 cpu_limit: int = 16, memory_limit: int = 128 * GB) -> None:
        super().__init__(ctx, input_deps, len(split_points) + 1, dimension, nested, output_name, output_path, cpu_limit, memory_limit)
        self.split_points = list(split_points)


class ProjectionNode(Node):
    """Only `columns` of the input (all by default)."""

    def __init__(self, ctx: Context, input_dep: Node, columns: Sequence[str] | None = None,
                 generated_columns: Sequence[str] | None = None, union_by_name: bool | None = None) -> None:
        columns = list(columns or ["*"])
        generated = list(generated_columns or [])
        bad = sorted(set(generated) - set(GENERATED_COLUMNS))
        if bad:
            raise PondConfigError(f"ProjectionNode: generated_columns takes {', '.join(GENERATED_COLUMNS)}, got {', '.join(bad)}")
        super().__init__(ctx, (input_dep,))
        self.columns = columns
        self.generated_columns = generated
        self.union_by_name = union_by_name


class LimitNode(SqlEngineNode):
    """At most `limit` rows of the input in total (one partition)."""

    def __init__(self, ctx: Context, input_dep: Node, limit: int) -> None:
        super().__init__(ctx, (input_dep,), f"select * from {{0}} limit {int(limit)}")
        self.limit = int(limit)

    @property
    def num_partitions(self) -> int:
        return 1


class LogicalPlan:
    """A plan: its context and the node whose output is the result."""

    def __init__(self, ctx: Context, root_node: Node) -> None:
        if not isinstance(root_node, Node):
            raise PondConfigError(f"LogicalPlan's root must be a node, got {type(root_node).__name__}")
        self.ctx = ctx
        self.root_node = root_node

    def __str__(self) -> str:
        return self.explain_str()

    def explain_str(self) -> str:
        """An indented tree of the plan's nodes (no Graphviz needed)."""
        lines: list[str] = []
        seen: set[int] = set()
        stack: list[tuple[Node, int]] = [(self.root_node, 0)]
        while stack:
            node, depth = stack.pop()
            lines.append("  " * depth + str(node) + (" (omitted ...)" if node.id in seen else ""))
            if node.id not in seen:
                seen.add(node.id)
                stack.extend((dep, depth + 1) for dep in reversed(node.input_deps))
        return os.linesep.join(lines)

    @property
    def nodes(self) -> dict[int, Node]:
        out: dict[int, Node] = {}
        stack = [self.root_node]
        while stack:
            node = stack.pop()
            if node.id not in out:
                out[node.id] = node
                stack.extend(node.input_deps)
        return out

    def graph(self) -> Any:
        """smallpond draws the plan with Graphviz; pond has no Graphviz dependency."""
        raise PondConfigError("LogicalPlan.graph() needs Graphviz, which pond does not use; print(plan) shows the plan as text")
