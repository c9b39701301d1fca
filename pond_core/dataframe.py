"""DataFrame: the lazy, smallpond-compatible user API.

Transformations return new DataFrames and touch no data; actions compile the logical plan,
run its stages and read back only what they return.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from pond_core.errors import PondConfigError, user_call
from pond_core.execute.results import StageManifest
from pond_core.io.options import StorageOptions
from pond_core.plan.compile import CompileOptions
from pond_core.plan.logical import Limit, Node, PyMap, PyMethod, Repartition, RepartitionMethod, Sql, render
from pond_core.plan.physical import FILES, SinkOutput, StageOutput
from pond_core.plan.pyfunc import PyFunc
from pond_core.settings import parse_bytes
from pond_core.specs.sink import MODES, SinkSpec
from pond_core.sql_quote import quote_ident
from pond_core.udfs import udf_specs

if TYPE_CHECKING:
    import pyarrow as pa

SqlOrFunc = str | Callable[..., Any]


class PlanRunner(Protocol):
    """What a DataFrame needs of its session (`pond_core.session.Session`)."""

    storage: StorageOptions

    def run(self, root: Node, output: StageOutput) -> StageManifest:
        """Compile and run the plan ending in `root`; return its final stage's manifest."""

    def mark_recompute(self, node: Node) -> None:
        """Ignore committed results of this node's plan the next time it runs."""

    def compile_options(self, started: bool = False) -> CompileOptions:
        """How plans compile where this session runs them."""


@dataclasses.dataclass(frozen=True)
class Sink:
    """A lazy dataset write: what a pipeline returns to end in a Parquet dataset."""

    node: Node
    spec: SinkSpec


class DataFrame:
    def __init__(self, session: PlanRunner, node: Node, *, planned_by: Callable[[], str] | None = None) -> None:
        self.session = session
        self._node = node
        self._planned_by = planned_by  # session.sql(): how the distributed planner chose the stages

    def __repr__(self) -> str:
        return f"DataFrame({self._node.label()}, partitions={self.num_partitions})"

    @property
    def num_partitions(self) -> int:
        return self._node.npartitions

    def _derive(self, node: Node) -> DataFrame:
        return DataFrame(self.session, node)

    # -- transformations -----------------------------------------------------------------------

    def alias(self, name: str) -> DataFrame:
        """Name this result: the stage that computes it shows as `name` in plans, orchestrators
        (Airflow task ids, Prefect task runs), the catalog and errors. A read so named names
        the stages derived from it (`orders` -> `orders_by_customer_id`)."""
        from pond_core.plan.naming import check_name

        return self._derive(dataclasses.replace(self._node, name=check_name(name)))

    def _named(self, name: str | None) -> DataFrame:
        return self if name is None else self.alias(name)

    def repartition(
        self,
        npartitions: int,
        hash_by: str | Sequence[str] | None = None,
        by: str | None = None,
        by_rows: bool = False,
        name: str | None = None,
    ) -> DataFrame:
        """`name`: the exchange stage's name (default: derived, e.g. `orders_by_customer_id`)."""
        return self._repartition(npartitions, hash_by, by, by_rows)._named(name)

    def _repartition(self, npartitions: int, hash_by: str | Sequence[str] | None, by: str | None, by_rows: bool) -> DataFrame:
        if hash_by is not None and by is not None:
            raise PondConfigError("repartition takes hash_by= or by=, not both")
        if hash_by is not None:
            keys = (hash_by,) if isinstance(hash_by, str) else tuple(hash_by)
            if not keys:
                raise PondConfigError("hash_by= needs at least one column")
            return self._derive(Repartition(inputs=(self._node,), n=npartitions, method=RepartitionMethod.HASH, keys=keys))
        if by is not None:
            return self._derive(Repartition(inputs=(self._node,), n=npartitions, method=RepartitionMethod.VALUE, expr=by))
        method = RepartitionMethod.ROWS if by_rows else RepartitionMethod.FILES
        return self._derive(Repartition(inputs=(self._node,), n=npartitions, method=method))

    def map(self, sql_or_func: SqlOrFunc, *, schema: Any = None, udfs: Sequence[Any] | None = None) -> DataFrame:
        """SQL: a select list run per partition. Callable: row dict -> row dict."""
        if isinstance(sql_or_func, str):
            return self._sql(f"SELECT {sql_or_func} FROM {{0}}", udfs)
        return self._python(PyMethod.MAP, sql_or_func, schema=schema)

    def flat_map(self, sql_or_func: SqlOrFunc, *, schema: Any = None, udfs: Sequence[Any] | None = None) -> DataFrame:
        """SQL: a select list that may unnest. Callable: row dict -> list of row dicts."""
        if isinstance(sql_or_func, str):
            return self._sql(f"SELECT {sql_or_func} FROM {{0}}", udfs)
        return self._python(PyMethod.FLAT_MAP, sql_or_func, schema=schema)

    def filter(self, sql_or_func: SqlOrFunc, *, udfs: Sequence[Any] | None = None) -> DataFrame:
        """SQL: a predicate. Callable: row dict -> bool."""
        if isinstance(sql_or_func, str):
            return self._sql(f"SELECT * FROM {{0}} WHERE {sql_or_func}", udfs)
        return self._python(PyMethod.FILTER, sql_or_func)

    def map_batches(
        self,
        func: Callable[..., Any],
        *,
        batch_size: int = 122880,
        streaming: bool = False,
        schema: Any = None,
    ) -> DataFrame:
        """`func` gets Arrow tables of exactly batch_size rows (the last smaller)."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise PondConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        return self._python(PyMethod.MAP_BATCHES, func, schema=schema, batch_size=batch_size, streaming=streaming)

    def random_shuffle(self) -> DataFrame:
        """A random permutation of all rows; the partition count is kept."""
        spread = Repartition(inputs=(self._node,), n=self.num_partitions, method=RepartitionMethod.RANDOM)
        return self._derive(Sql(inputs=(spread,), query="SELECT * FROM {0} ORDER BY random()"))

    def partial_sort(self, by: str | Sequence[str]) -> DataFrame:
        """Sort within each partition; entries may read 'col desc'."""
        keys = [by] if isinstance(by, str) else list(by)
        if not keys:
            raise PondConfigError("partial_sort needs at least one key")
        return self._sql(f"SELECT * FROM {{0}} ORDER BY {', '.join(_sort_key(k) for k in keys)}", None)

    def limit(self, n: int) -> DataFrame:
        """At most n rows in total; the result has one partition."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise PondConfigError(f"limit takes an integer >= 0, got {n!r}")
        return self._derive(Limit(inputs=(self._node,), n=n))

    def recompute(self) -> DataFrame:
        """Ignore cached results of this DataFrame's plan the next time it runs."""
        self.session.mark_recompute(self._node)
        return self

    # -- actions -------------------------------------------------------------------------------

    @user_call
    def compute(self) -> None:
        self.session.run(self._node, FILES)

    @user_call
    def count(self) -> int:
        counted = Sql(inputs=(self._node,), query="SELECT count(*) AS n FROM {0}")
        return int(sum(r["n"] for r in self._rows(counted)))

    @user_call
    def take(self, n: int) -> list[dict[str, Any]]:
        return self.limit(n).take_all()

    @user_call
    def take_all(self) -> list[dict[str, Any]]:
        return self._rows(self._node)

    @user_call
    def to_arrow(self) -> pa.Table:
        """The whole result in partition order; strings as large_string, as smallpond does."""
        return self._read(self._node, large_strings=True)

    @user_call
    def to_pandas(self) -> Any:
        return self._read(self._node).to_pandas().reset_index(drop=True)

    @user_call
    def write_parquet(
        self,
        path: str,
        partition_by: str | Sequence[str] | None = None,
        mode: str = "error",
        compression: str = "snappy",
        target_file_size: int | str | None = None,
        row_group_size: int | None = None,
        name: str | None = None,
        checks: Sequence[Any] = (),
    ) -> dict[str, Any]:
        """Write the result as a Parquet dataset at `path`; returns what was committed.

        mode: "error" (the path must not hold data), "overwrite", "overwrite_partitions"
        (replace exactly the partitions present in this data), or "append".
        name: the write stage's name (default: `write_<dataset folder>`).
        checks: run on the staged output before it is published (see docs/tables.md).
        """
        sink = self.sink_parquet(path, partition_by, mode, compression, target_file_size, row_group_size, name, checks)
        return self.session.run(sink.node, SinkOutput(sink.spec)).result.to_dict()

    def sink_parquet(
        self,
        path: str,
        partition_by: str | Sequence[str] | None = None,
        mode: str = "error",
        compression: str = "snappy",
        target_file_size: int | str | None = None,
        row_group_size: int | None = None,
        name: str | None = None,
        checks: Sequence[Any] = (),
    ) -> Sink:
        """The lazy form of write_parquet, for pipelines: the write happens when the plan runs."""
        if mode not in MODES:
            raise PondConfigError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        spec = SinkSpec(
            path=path,
            mode=mode,
            partition_by=_column_list(partition_by),
            compression=compression,
            target_file_size=parse_bytes(target_file_size),
            row_group_size=row_group_size,
            checks=tuple(checks),
        )
        return Sink(self._named(name)._node, spec)

    @user_call
    def write_iceberg(
        self,
        table: str,
        mode: str = "append",
        partition_by: str | Sequence[str] | None = None,
        catalog: str | Mapping[str, str] | None = None,
        catalog_name: str = "pond",
        compression: str = "zstd",
        checks: Sequence[Any] = (),
        name: str | None = None,
    ) -> dict[str, Any]:
        """Write the result to the Iceberg table `table` ('namespace.table') as one snapshot.

        mode: "append", "overwrite" (the whole table) or "overwrite_partitions" (exactly the
        partitions present in this data). `catalog`: the catalog's properties (a SQL catalog's
        `uri` and `warehouse`), or a `uri` alone; secrets belong in pyiceberg's environment.
        """
        sink = self.sink_iceberg(table, mode, partition_by, catalog, catalog_name, compression, checks, name)
        return self.session.run(sink.node, SinkOutput(sink.spec)).result.to_dict()

    def sink_iceberg(
        self,
        table: str,
        mode: str = "append",
        partition_by: str | Sequence[str] | None = None,
        catalog: str | Mapping[str, str] | None = None,
        catalog_name: str = "pond",
        compression: str = "zstd",
        checks: Sequence[Any] = (),
        name: str | None = None,
    ) -> Sink:
        """The lazy form of write_iceberg, for pipelines."""
        from pond_core.specs.iceberg_table import IcebergTable

        if mode not in ("append", "overwrite", "overwrite_partitions"):
            raise PondConfigError(f"write_iceberg mode must be 'append', 'overwrite' or 'overwrite_partitions', got {mode!r}")
        props = {"uri": catalog} if isinstance(catalog, str) else dict(catalog or {})
        target = IcebergTable(table, catalog_name, tuple(sorted(props.items())))
        spec = SinkSpec(
            path=target.uri,
            mode=mode,
            partition_by=_column_list(partition_by),
            compression=compression,
            table=target,
            checks=tuple(checks),
        )
        return Sink(self._named(name)._node, spec)

    @user_call
    def explain(self) -> str:
        """The logical plan and the physical stages it compiles to, as text (`print(df.explain())`)."""
        from pond_core.plan.compile import compile_plan

        plan = compile_plan(self._node, options=self.session.compile_options())
        text = "== logical plan ==\n" + render(self._node) + "\n\n== physical plan ==\n" + plan.render()
        if self._planned_by is not None:
            text = self._planned_by() + "\n\n" + text
        return text

    # -- helpers -------------------------------------------------------------------------------

    def _sql(self, query: str, udfs: Sequence[Any] | None) -> DataFrame:
        return self._derive(Sql(inputs=(self._node,), query=query, udfs=udf_specs(udfs)))

    def _python(self, method: PyMethod, func: Callable[..., Any], **options: Any) -> DataFrame:
        schema = _schema_pairs(options.pop("schema", None))
        node = PyMap(inputs=(self._node,), method=method, func=PyFunc.wrap(func, method.value), schema=schema, **options)
        return self._derive(node)

    def _read(self, node: Node, large_strings: bool = False) -> pa.Table:
        return read_result(self.session, self.session.run(node, FILES), large_strings)

    def _rows(self, node: Node) -> list[dict[str, Any]]:
        """Rows as dicts, read by DuckDB straight into Python (no Arrow on the way)."""
        return read_result(self.session, self.session.run(node, FILES), as_rows=True)


def read_result(session: PlanRunner, manifest: StageManifest, large_strings: bool = False, as_rows: bool = False) -> Any:
    """Read a stage's committed files back in partition order, as Arrow (or as row dicts)."""
    import duckdb

    from pond_core.execute.inputs import empty_sql
    from pond_core.io import configure_duckdb
    from pond_core.sql_quote import path_list

    files = [f.path for f in manifest.files]
    # arrow_large_buffer_size: DuckDB itself exports strings as large_string (no cast needed).
    con = duckdb.connect(config={"preserve_insertion_order": True, "arrow_large_buffer_size": large_strings})
    try:
        configure_duckdb(con, session.storage, files)
        query = empty_sql(manifest.schema) if not files else f"SELECT * FROM read_parquet({path_list(files)}, hive_partitioning=false)"
        cursor = con.execute(query)
        if as_rows:
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]
        return cursor.to_arrow_table()
    finally:
        con.close()


def _sort_key(key: str) -> str:
    parts = key.split()
    if len(parts) == 2 and parts[1].lower() in ("asc", "desc"):
        return f"{quote_ident(parts[0])} {parts[1].upper()}"
    if len(parts) == 1:
        return quote_ident(parts[0])
    return key  # an expression: pass through


def _schema_pairs(schema: Any) -> tuple[tuple[str, str], ...] | None:
    """schema= as a dict of DuckDB types or a pyarrow schema, stored as (name, DuckDB type)."""
    if schema is None:
        return None
    if isinstance(schema, dict):
        return tuple((str(k), str(v)) for k, v in schema.items())
    import pyarrow as pa

    if isinstance(schema, pa.Schema):
        import duckdb

        con = duckdb.connect()
        try:
            con.register("t", schema.empty_table())
            return tuple((r[0], r[1]) for r in con.execute("DESCRIBE t").fetchall())
        finally:
            con.close()
    raise PondConfigError(f"schema= takes a dict of column name to DuckDB type or a pyarrow.Schema, got {type(schema).__name__}")


def _column_list(columns: str | Sequence[str] | None) -> list[str] | None:
    """`partition_by` as a sink spec keeps it: one column or several, or None."""
    if isinstance(columns, str):
        return [columns]
    return list(columns) if columns else None
