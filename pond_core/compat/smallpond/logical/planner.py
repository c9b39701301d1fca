"""Compile a smallpond `LogicalPlan` to pond's logical plan (pond_core/plan/logical.py).

Every smallpond node becomes pond nodes the DataFrame API also builds, so a low-level plan gets
pond's stages, exchanges, retries, resume, catalog and lineage unchanged:

- DataSourceNode -> Read (files) or a stored table (Arrow, pandas) or a Sql with no input;
- EvenlyDistributed / DataSetPartitionNode -> Repartition by files or rows (random_shuffle: a
  random exchange); ConsolidateNode -> one partition;
- HashPartitionNode -> a by-value exchange on smallpond's own partition key
  (`hash(concat_ws('##', cols)) % n`), with that key kept in `data_partition_column`;
  ShuffleNode and LoadPartitionedDataSetNode -> a by-value exchange on the column's value;
- UserDefined / UserPartitionedDataSource / RepeatPartitionNode -> each partition's rows tagged
  with its index, then a by-value exchange on the tag;
- SqlEngineNode, ProjectionNode, UnionNode -> Sql; LimitNode -> Limit;
- Arrow / pandas / Python script nodes -> a streaming map_batches step running the user's
  process (execution/user_steps.py).

A node's `output_name` names the pond stage that computes it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pond_core.compat.smallpond.execution.task import RuntimeContext
from pond_core.compat.smallpond.execution.user_steps import MARK_COLUMN, StepKind, UserStep
from pond_core.compat.smallpond.logical import dataset as ds
from pond_core.compat.smallpond.logical import node as sp
from pond_core.errors import PondConfigError
from pond_core.plan.logical import (
    Limit,
    Node,
    PyMap,
    PyMethod,
    Read,
    Repartition,
    RepartitionMethod,
    SourceFormat,
    SourceSpec,
    Sql,
    with_resources,
)
from pond_core.plan.physical import FILES, SinkOutput, StageOutput
from pond_core.plan.pyfunc import PyFunc
from pond_core.plan.sql import check_placeholders
from pond_core.specs.sink import SinkSpec
from pond_core.sql_quote import quote_ident, quote_str
from pond_core.udfs import udf_specs

if TYPE_CHECKING:
    from pond_core.session import Session

_TAG = "__pond_partition__"  # a temporary column: the partition a row is sent to


@dataclasses.dataclass(frozen=True)
class Target:
    """One result of a plan: the pond node computing it and where it is written."""

    node: Node
    output: StageOutput
    label: str


@dataclasses.dataclass(frozen=True)
class Compiled:
    """A smallpond node compiled: its pond node, and the column holding its partition index
    (a hash partition's `data_partition_column`), which SQL may name as `{column}`."""

    node: Node
    partition_column: str | None = None


class Planner:
    """Compiles plans against a session (a stored table needs its data root).

    `output_path`: where the root's result is written as a Parquet dataset (smallpond's
    `--output_path`); otherwise it stays in the run's staging area. `files_root`: where a
    PythonScriptNode's non-Parquet files are kept (`<files_root>/<output_name>/`; default: the
    job's `output/` folder, where smallpond keeps them too)."""

    def __init__(self, session: Session, output_path: str | None = None, files_root: str | None = None) -> None:
        self.session = session
        self.output_path = output_path
        self.files_root = files_root or f"{session.job_root}/output"
        self._memo: dict[int, Compiled] = {}

    def compile(self, plan: sp.LogicalPlan) -> list[Target]:
        if not isinstance(plan, sp.LogicalPlan):
            raise PondConfigError(f"expected a smallpond LogicalPlan, got {type(plan).__name__}")
        root = plan.root_node
        if isinstance(root, sp.RootNode):
            return [self._target(dep) for dep in root.input_deps]
        return [self._target(root)]

    def _target(self, root: sp.Node) -> Target:
        if isinstance(root, sp.DataSinkNode):
            node = self._union([self.node(d).node for d in root.input_deps])
            return Target(node, SinkOutput(SinkSpec(path=str(root.output_path), mode="overwrite")), repr(root))
        node = self.node(root).node
        if self.output_path:
            return Target(node, SinkOutput(SinkSpec(path=self.output_path, mode="overwrite")), repr(root))
        return Target(node, FILES, repr(root))

    # -- nodes ---------------------------------------------------------------------------------

    def node(self, n: sp.Node) -> Compiled:
        known = self._memo.get(n.id)
        if known is None:
            compiled = self._compile(n)
            passed_through = any(self._memo[d.id].node is compiled.node for d in n.input_deps if d.id in self._memo)
            if not passed_through:  # a node of its own: its name and resources are this node's
                compiled = dataclasses.replace(compiled, node=_named_with_resources(n, compiled.node))
            known = self._memo[n.id] = compiled
        return known

    def _compile(self, n: sp.Node) -> Compiled:
        for kind, compile_fn in self._rules():
            if isinstance(n, kind):
                return compile_fn(n)
        raise PondConfigError(f"{n!r}: pond cannot plan a {type(n).__name__}")

    def _rules(self) -> list[tuple[type, Callable[[Any], Compiled]]]:
        # Subclasses before their bases (LimitNode is a SqlEngineNode, ShuffleNode a HashPartitionNode).
        return [
            (sp.DataSourceNode, self._source),
            (sp.LimitNode, self._limit),
            (sp.SqlEngineNode, self._sql),
            (sp.HashPartitionNode, self._hash),
            (sp.EvenlyDistributedPartitionNode, self._even),
            (sp.LoadPartitionedDataSetNode, self._load_partitioned),
            (sp.UserDefinedPartitionNode, self._user_partition),
            (sp.RepeatPartitionNode, self._repeat),
            (sp.RangePartitionNode, self._range),
            (sp.ConsolidateNode, self._consolidate),
            (sp.ProjectionNode, self._projection),
            (sp.UnionNode, self._union_node),
            (sp.PythonScriptNode, lambda n: self._user(n, StepKind.PYTHON_SCRIPT)),
            (sp.PandasComputeNode, lambda n: self._user(n, StepKind.PANDAS_COMPUTE)),
            (sp.ArrowComputeNode, lambda n: self._user(n, StepKind.ARROW_COMPUTE)),
            (sp.PandasBatchNode, lambda n: self._user(n, StepKind.PANDAS_BATCH)),
            (sp.ArrowBatchNode, lambda n: self._user(n, StepKind.ARROW_BATCH)),
            (sp.ArrowStreamNode, lambda n: self._user(n, StepKind.ARROW_STREAM)),
            (sp.DataSinkNode, self._inner_sink),
        ]

    def _one_input(self, n: sp.Node) -> Compiled:
        if len(n.input_deps) != 1:
            raise PondConfigError(f"{n!r}: pond runs {type(n).__name__} over exactly one input, got {len(n.input_deps)}; union them first (UnionNode)")
        return self.node(n.input_deps[0])

    def _inputs(self, n: sp.Node) -> Node:
        """A partition node's inputs as one node (several are unioned by name)."""
        if not n.input_deps:
            raise PondConfigError(f"{n!r} has no input")
        return self._union([self.node(d).node for d in n.input_deps])

    @staticmethod
    def _union(nodes: Sequence[Node]) -> Node:
        if len(nodes) == 1:
            return nodes[0]
        query = " UNION ALL BY NAME ".join(f"SELECT * FROM {{{i}}}" for i in range(len(nodes)))
        return Sql(inputs=tuple(nodes), query=query)

    @staticmethod
    def _not_nested(n: sp.PartitionNode) -> None:
        if n.nested:
            raise PondConfigError(f"{n!r}: nested partitions (nested=True) are not supported on pond; partition once with the product of the counts")

    def _source(self, n: sp.DataSourceNode) -> Compiled:
        return Compiled(self._read(n.dataset))

    def _read(self, dataset: ds.DataSet) -> Node:
        if isinstance(dataset, ds.PartitionedDataSet):
            return self._union([self._read(d) for d in dataset.datasets])
        if isinstance(dataset, ds.ArrowTableDataSet):
            return self.session.from_arrow(dataset.table)._node
        if isinstance(dataset, ds.PandasDataSet):
            return self.session.from_pandas(dataset.df)._node
        if isinstance(dataset, ds.SqlQueryDataSet):
            return Sql(inputs=(), query=_escape(dataset.sql_query))
        if isinstance(dataset, ds.ParquetDataSet):
            if dataset.generated_columns:
                raise PondConfigError(f"{dataset}: generated_columns (filename, file_row_number) are not supported on pond")
            spec = SourceSpec(SourceFormat.PARQUET, _paths(dataset), recursive=dataset.recursive,
                              columns=tuple(dataset.columns) if dataset.columns else None,
                              union_by_name=dataset.union_by_name, hive_partitioning=False)
        elif isinstance(dataset, ds.CsvDataSet):
            spec = SourceSpec(SourceFormat.CSV, _paths(dataset), recursive=dataset.recursive,
                              schema=tuple(dataset.schema.items()), delim=dataset.delim, header=dataset.header)
        elif isinstance(dataset, ds.JsonDataSet):
            spec = SourceSpec(SourceFormat.JSON, _paths(dataset), recursive=dataset.recursive, schema=tuple(dataset.schema.items()))
        else:
            raise PondConfigError(f"{dataset}: pond cannot read a {type(dataset).__name__}")
        node: Node = Read(inputs=(), source=spec)
        if dataset.columns and spec.format is not SourceFormat.PARQUET:
            node = Sql(inputs=(node,), query=f"SELECT {', '.join(dataset.columns)} FROM {{0}}")
        return node

    def _even(self, n: sp.EvenlyDistributedPartitionNode) -> Compiled:
        self._not_nested(n)
        if n.random_shuffle:
            method = RepartitionMethod.RANDOM
        else:
            method = RepartitionMethod.ROWS if n.partition_by_rows else RepartitionMethod.FILES
        return Compiled(Repartition(inputs=(self._inputs(n),), n=n.npartitions, method=method, name=_exchange_name(n, None)))

    def _consolidate(self, n: sp.ConsolidateNode) -> Compiled:
        inner = self._one_input(n)
        if n.dimensions:  # pond has one partition dimension: grouping by it keeps the partitions
            return inner
        return Compiled(Repartition(inputs=(inner.node,), n=1, method=RepartitionMethod.FILES))

    def _hash(self, n: sp.HashPartitionNode) -> Compiled:
        self._not_nested(n)
        column, count = n.data_partition_column, n.npartitions
        source = self._inputs(n)
        others = f"COLUMNS(c -> c != {quote_str(column)})"
        if n.shuffle_only:
            name = _exchange_name(n, f"shuffle_{column}")
            out: Node = Repartition(inputs=(source,), n=count, method=RepartitionMethod.VALUE, expr=quote_ident(column), name=name)
        elif n.random_shuffle:
            tagged = Sql(inputs=(source,), query=f"SELECT {others}, CAST(floor(random() * {count}) AS BIGINT) AS {quote_ident(column)} FROM {{0}}")
            name = _exchange_name(n, "random_shuffle")
            out = Repartition(inputs=(tagged,), n=count, method=RepartitionMethod.VALUE, expr=quote_ident(column), name=name)
        else:
            key = f"CAST(CAST(hash(concat_ws('##', {', '.join(n.hash_columns or [])})) AS UBIGINT) % {count} AS BIGINT)"
            name = _exchange_name(n, "hash_" + "_".join(n.hash_columns or []))
            exchanged = Repartition(inputs=(source,), n=count, method=RepartitionMethod.VALUE, expr=key, name=name)
            out = Sql(inputs=(exchanged,), query=_escape(f"SELECT {others}, {key} AS {quote_ident(column)} FROM ") + "{0}")
        if n.drop_partition_column:
            return Compiled(Sql(inputs=(out,), query=f"SELECT * EXCLUDE ({quote_ident(column)}) FROM {{0}}"))
        return Compiled(out, partition_column=column)

    def _load_partitioned(self, n: sp.LoadPartitionedDataSetNode) -> Compiled:
        self._not_nested(n)
        column = str(n.data_partition_column)
        node = Repartition(inputs=(self._inputs(n),), n=n.npartitions, method=RepartitionMethod.VALUE, expr=quote_ident(column),
                           name=_exchange_name(n, f"partitions_by_{column}"))
        return Compiled(node, partition_column=column)

    def _tagged_exchange(self, parts: Sequence[Node], count: int) -> Node:
        """Partition i gets the rows of parts[i]: tag, exchange by tag, drop the tag."""
        query = " UNION ALL BY NAME ".join(f"SELECT *, {i} AS {_TAG} FROM {{{i}}}" for i in range(len(parts)))
        exchanged = Repartition(inputs=(Sql(inputs=tuple(parts), query=query),), n=count, method=RepartitionMethod.VALUE, expr=_TAG)
        return Sql(inputs=(exchanged,), query=f"SELECT * EXCLUDE ({_TAG}) FROM {{0}}")

    def _user_partition(self, n: sp.UserDefinedPartitionNode) -> Compiled:
        self._not_nested(n)
        if len(n.input_deps) != 1 or not isinstance(n.input_deps[0], sp.DataSourceNode):
            raise PondConfigError(f"{n!r}: pond calls partition() when planning, so its input must be a DataSourceNode")
        datasets = n.partition(RuntimeContext(), n.input_deps[0].dataset)
        if len(datasets) != n.npartitions:
            raise PondConfigError(f"{n!r}: partition() returned {len(datasets)} datasets for npartitions={n.npartitions}")
        return Compiled(self._tagged_exchange([self._read(d) for d in datasets], n.npartitions))

    def _repeat(self, n: sp.RepeatPartitionNode) -> Compiled:
        source = self._inputs(n)
        if source.npartitions != 1:
            raise PondConfigError(f"{n!r}: pond repeats an input of one partition only (got {source.npartitions}); consolidate it first")
        query = f"SELECT t.*, r.range AS {_TAG} FROM {{0}} AS t, range({n.npartitions}) AS r"
        exchanged = Repartition(inputs=(Sql(inputs=(source,), query=query),), n=n.npartitions, method=RepartitionMethod.VALUE, expr=_TAG)
        return Compiled(Sql(inputs=(exchanged,), query=f"SELECT * EXCLUDE ({_TAG}) FROM {{0}}"))

    def _range(self, n: sp.RangePartitionNode) -> Compiled:
        raise PondConfigError(f"{n!r}: RangePartitionNode names no column to range over and smallpond never implemented it; "
                              "use HashPartitionNode, or ShuffleNode on a column holding the partition index")

    def _sql(self, n: sp.SqlEngineNode) -> Compiled:
        """The last query is the result; earlier ones run first in each task (set-up)."""
        from pond_core.compat.setup_sql import check_setup

        inputs = [self.node(d) for d in n.input_deps]
        dimensions = {c.partition_column for c in inputs if c.partition_column}
        queries = [_format(n, q, i, len(inputs), dimensions) for i, q in enumerate(n.sql_queries)]
        check_setup(queries[:-1], len(inputs))
        udfs = udf_specs([n.ctx.udfs[name].to_pond_udf() for name in n.udfs])
        node = Sql(inputs=tuple(c.node for c in inputs), query=queries[-1], udfs=udfs, setup=tuple(queries[:-1]))
        return Compiled(node, inputs[0].partition_column if inputs else None)

    def _limit(self, n: sp.LimitNode) -> Compiled:
        return Compiled(Limit(inputs=(self._one_input(n).node,), n=n.limit))

    def _projection(self, n: sp.ProjectionNode) -> Compiled:
        inner = self._one_input(n)
        if n.generated_columns:
            raise PondConfigError(f"{n!r}: generated_columns (filename, file_row_number) are not supported on pond")
        if n.columns == ["*"]:
            return inner
        return Compiled(Sql(inputs=(inner.node,), query=_escape(f"SELECT {', '.join(n.columns)} FROM ") + "{0}"), inner.partition_column)

    def _union_node(self, n: sp.UnionNode) -> Compiled:
        return Compiled(self._inputs(n))

    def _user(self, n: Any, kind: StepKind) -> Compiled:
        inner = self._one_input(n)
        files_dir = f"{n.output_path or self.files_root}/{n.output_name or type(n).__name__}"
        step = UserStep(kind, n.slim_copy(), self.session.job_id, files_dir)
        batch_size = getattr(n, "streaming_batch_size", sp.DEFAULT_BATCH_SIZE)
        func = PyFunc.wrap(step, "process")
        # One marker row per partition: the step learns the schema even of an empty partition.
        marked = Sql(inputs=(inner.node,), query=f"SELECT *, false AS {MARK_COLUMN} FROM {{0}} UNION ALL BY NAME SELECT true AS {MARK_COLUMN}")
        return Compiled(PyMap(inputs=(marked,), method=PyMethod.MAP_BATCHES, func=func, batch_size=batch_size, streaming=True))

    def _inner_sink(self, n: sp.DataSinkNode) -> Compiled:
        raise PondConfigError(f"{n!r}: a DataSinkNode must be the plan's root (or under its RootNode) on pond")


def _paths(dataset: ds.DataSet) -> tuple[str, ...]:
    paths = tuple(dataset.absolute_paths)
    if not paths:
        raise PondConfigError(f"{dataset}: no paths to read")
    return paths


def _escape(text: str) -> str:
    """Literal SQL as a pond query: its braces are not placeholders."""
    return text.replace("{", "{{").replace("}", "}}")


def _named_with_resources(n: sp.Node, node: Node) -> Node:
    """The node named from output_name (partition nodes name their exchange instead), with the
    per-task threads (a cpu_limit above smallpond's default of 1) and memory it asks for; pond
    bounds both by what a machine has (execute/context.py)."""
    if n.output_name and not isinstance(n, sp.PartitionNode):
        node = dataclasses.replace(node, name=_stage_name(n.output_name))
    threads = n.cpu_limit if n.cpu_limit > 1 else None
    return with_resources(node, threads, n.memory_limit or None)


def _exchange_name(n: sp.PartitionNode, default: str | None) -> str | None:
    """The exchange stage's name: the node's output_name, else what it partitions by."""
    from pond_core.plan.naming import slug

    if n.output_name:
        return _stage_name(n.output_name)
    return _stage_name(slug(default)[:48]) if default and slug(default) else None


def _stage_name(output_name: str) -> str:
    return output_name if output_name[0].isalpha() or output_name[0] == "_" else f"_{output_name}"


def _format(n: sp.SqlEngineNode, query: str, index: int, ninputs: int, dimensions: set[str]) -> str:
    """smallpond's query as a pond query: `{i}` kept, its named placeholders filled
    (compat/sql_placeholders.py); a hash partition's column names its partition index too."""
    from pond_core.compat.sql_placeholders import DATA_PARTITION, fill

    for column in dimensions:
        query = query.replace("{" + column + "}", "{" + DATA_PARTITION + "}")
    filled = fill(query, index, n.cpu_limit, n.memory_limit)
    check_placeholders(filled, ninputs)
    return filled
