"""smallpond.dataframe: smallpond's `Session` and `DataFrame`, backed by pond's.

Programs written for smallpond run unchanged: every method keeps smallpond's signature
(`take(limit)`, `limit(limit)`, `**kwargs` node options on each operation, a list of statements
in `partial_sql`) and smallpond's behaviour where pond's own API chooses otherwise (a write
replaces its output, `filter` takes truthiness). pond's own `pond_core.DataFrame` is unchanged.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pond_core.compat.node_options import NodeOptions
from pond_core.compat.smallpond.session import SessionBase
from pond_core.compat.sql_placeholders import fill
from pond_core.compat.task_functions import check_task_function, unpicklable_message
from pond_core.dataframe import DataFrame as PondDataFrame
from pond_core.dataframe import Sink
from pond_core.errors import PondConfigError, PondSerializationError
from pond_core.plan.logical import Node, PyMethod, Sql, with_resources
from pond_core.plan.physical import SinkOutput

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["DataFrame", "Session"]


class Session(SessionBase):
    """smallpond's Session: the sources of DataFrames, `partial_sql`, `wait` and the graph."""

    def read_csv(self, paths: str | Sequence[str], schema: dict[str, str], delim: str = ",") -> DataFrame:  # type: ignore[override]
        self._check_open("read_csv")
        return self._compat(super().read_csv(paths, schema, delim))

    def read_parquet(  # type: ignore[override]  # smallpond's signature: no hive_partitioning
        self, paths: str | Sequence[str], recursive: bool = False, columns: Sequence[str] | None = None, union_by_name: bool = False,
    ) -> DataFrame:
        self._check_open("read_parquet")
        return self._compat(super().read_parquet(paths, recursive, columns, union_by_name))

    def read_json(self, paths: str | Sequence[str], schema: dict[str, str]) -> DataFrame:
        self._check_open("read_json")
        return self._compat(super().read_json(paths, schema))

    def from_items(self, items: Sequence[Any]) -> DataFrame:
        self._check_open("from_items")
        return self._compat(super().from_items(items))

    def from_pandas(self, df: Any) -> DataFrame:
        self._check_open("from_pandas")
        return self._compat(super().from_pandas(df))

    def from_arrow(self, table: pa.Table) -> DataFrame:
        self._check_open("from_arrow")
        return self._compat(super().from_arrow(table))

    def partial_sql(self, query: str | Sequence[str], *inputs: PondDataFrame, **kwargs: Any) -> DataFrame:
        """Run `query` on each partition of the inputs (`{0}`, `{1}` … name them).

        A list of statements: the earlier ones run first in each partition's DuckDB connection
        (set-up such as SET or CREATE MACRO; they may not write files or attach databases), the
        last one's rows are the result, as smallpond does."""
        self._check_open("partial_sql")
        options = NodeOptions.parse("partial_sql", kwargs)
        statements = [query] if isinstance(query, str) else list(query)
        if not statements or not all(isinstance(q, str) for q in statements):
            raise PondConfigError(f"partial_sql takes a SQL string or a non-empty list of SQL strings, got {query!r}")
        for i, df in enumerate(inputs):
            if not isinstance(df, PondDataFrame):
                raise PondConfigError(f"partial_sql input {i} is a {type(df).__name__}, not a DataFrame")
        filled = [fill(q, i, options.cpu_limit, options.memory_limit) for i, q in enumerate(statements)]
        if len(filled) > 1:
            from pond_core.compat.setup_sql import check_setup

            check_setup(filled[:-1], len(inputs))
        frame = super().partial_sql(filled[-1], *inputs, udfs=options.udfs)
        if len(filled) > 1:
            node = frame._node
            assert isinstance(node, Sql)
            frame = frame._derive(dataclasses.replace(node, setup=tuple(filled[:-1])))
        return self._compat(frame)._with_options(options)

    def wait(self, *dfs: DataFrame) -> None:
        """Compute every DataFrame given (typically `write_parquet_lazy` results)."""
        for df in dfs:
            df.compute()

    def _compat(self, frame: PondDataFrame) -> DataFrame:
        return DataFrame(self, frame._node)


class DataFrame(PondDataFrame):
    """smallpond's DataFrame: lazy transformations and the actions that run them."""

    session: Session

    def __init__(self, session: Session, node: Node, sink: Sink | None = None) -> None:
        super().__init__(session, node)
        self._sink = sink  # write_parquet_lazy: computing this frame writes the dataset
        self._written = False
        session._remember(node)

    def __str__(self) -> str:
        return repr(self)

    @property
    def plan(self) -> Node:
        """smallpond's name for the DataFrame's logical node."""
        return self._node

    def _derive(self, node: Node) -> DataFrame:
        return DataFrame(self.session, node)

    def _with_options(self, options: NodeOptions) -> DataFrame:
        """Apply the options pond honours: the stage's name, threads and memory."""
        frame = self._compat(self.alias(options.output_name)) if options.output_name else self
        if options.cpu_limit is None and options.memory_limit is None:
            return frame
        return DataFrame(self.session, with_resources(frame._node, options.cpu_limit, options.memory_limit))

    # -- transformations -----------------------------------------------------------------------

    def repartition(  # type: ignore[override]  # smallpond's signature: node options, no name=
        self, npartitions: int, hash_by: str | Sequence[str] | None = None, by: str | None = None, by_rows: bool = False, **kwargs: Any,
    ) -> DataFrame:
        options = NodeOptions.parse("repartition", kwargs)
        return self._compat(super().repartition(npartitions, hash_by, by, by_rows))._with_options(options)

    def random_shuffle(self, **kwargs: Any) -> DataFrame:
        options = NodeOptions.parse("random_shuffle", kwargs)
        return self._compat(super().random_shuffle())._with_options(options)

    def partial_sort(self, by: str | Sequence[str], **kwargs: Any) -> DataFrame:
        options = NodeOptions.parse("partial_sort", kwargs)
        return self._compat(super().partial_sort(by))._with_options(options)

    def filter(self, sql_or_func: str | Callable[[dict[str, Any]], Any], **kwargs: Any) -> DataFrame:
        """smallpond's filter: a SQL predicate, or a function whose result is taken for its truth."""
        options = NodeOptions.parse("filter", kwargs)
        if isinstance(sql_or_func, str):
            frame = super().filter(f"({self._fill(sql_or_func, options)})", udfs=options.udfs)
        elif callable(sql_or_func):
            frame = self._python(PyMethod.FILTER, Truthy(sql_or_func))
        else:
            raise PondConfigError("filter takes a SQL expression or a predicate function")
        return self._compat(frame)._with_options(options)

    def map(self, sql_or_func: str | Callable[..., Any], *, schema: Any = None, **kwargs: Any) -> DataFrame:
        options = NodeOptions.parse("map", kwargs)
        if isinstance(sql_or_func, str):
            sql_or_func = self._fill(sql_or_func, options)
        return self._compat(super().map(sql_or_func, schema=schema, udfs=options.udfs))._with_options(options)

    def flat_map(self, sql_or_func: str | Callable[..., Any], *, schema: Any = None, **kwargs: Any) -> DataFrame:
        options = NodeOptions.parse("flat_map", kwargs)
        if isinstance(sql_or_func, str):
            sql_or_func = self._fill(sql_or_func, options)
        return self._compat(super().flat_map(sql_or_func, schema=schema, udfs=options.udfs))._with_options(options)

    def map_batches(self, func: Callable[..., Any], *, batch_size: int = 122880, **kwargs: Any) -> DataFrame:
        options = NodeOptions.parse("map_batches", kwargs)
        return self._compat(super().map_batches(func, batch_size=batch_size))._with_options(options)

    def limit(self, limit: int) -> DataFrame:
        return self._compat(super().limit(limit))

    def recompute(self) -> DataFrame:
        super().recompute()
        return self

    # -- actions -------------------------------------------------------------------------------

    def compute(self) -> None:
        if self._sink is None:
            super().compute()
            return
        self.session.run(self._sink.node, SinkOutput(self._sink.spec))
        self._written = True

    def is_computed(self) -> bool:
        """Whether this DataFrame's data is ready (an action or write ran it in this session)."""
        if self._sink is not None:
            return self._written
        return self.session._is_computed(self._node)

    def take(self, limit: int) -> list[dict[str, Any]]:
        return super().take(limit)

    def write_parquet(self, path: str) -> None:  # type: ignore[override]  # smallpond's signature
        """Write the data as Parquet files under `path`, replacing what a previous run wrote
        there (smallpond's behaviour; pond's own write_parquet defaults to mode='error')."""
        self.write_parquet_lazy(path).compute()

    def write_parquet_lazy(self, path: str) -> DataFrame:
        """The write as a DataFrame: `compute()` or `Session.wait(...)` performs it."""
        sink = self.sink_parquet(os.path.abspath(path), mode="overwrite")
        return DataFrame(self.session, self._node, sink=sink)

    # -- helpers -------------------------------------------------------------------------------

    def _python(self, method: PyMethod, func: Callable[..., Any], **options: Any) -> DataFrame:
        """pond's Python step, with smallpond's rule and wording for functions that cannot be pickled."""
        user_func = func.func if isinstance(func, Truthy) else func
        check_task_function(user_func, method.value)
        try:
            return self._compat(super()._python(method, func, **options))
        except PondSerializationError as exc:
            raise PondSerializationError(unpicklable_message(user_func, method.value, str(exc))) from exc

    def _compat(self, frame: PondDataFrame) -> DataFrame:
        return self._derive(frame._node)

    @staticmethod
    def _fill(sql: str, options: NodeOptions) -> str:
        return fill(sql, 0, options.cpu_limit, options.memory_limit)


class Truthy:
    """A filter predicate whose result counts for its truth, as in smallpond (pond's own filter
    insists on booleans). A class, not a closure, so it pickles by reference to pond."""

    def __init__(self, func: Callable[[dict[str, Any]], Any]) -> None:
        self.func = func

    def __call__(self, row: dict[str, Any]) -> bool:
        return bool(self.func(row))
