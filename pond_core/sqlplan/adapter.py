"""What the SQL front end needs from DataFrames, the Session and the executor, in one place.

The compiler (pond_core.plan.sqlcompile) works on logical plan nodes only. Turning a user's
DataFrame into the compiler's input (its logical plan, layout, schema and files), the compiled
plan back into a DataFrame, and the questions only the session or the executor answer (how many
cores, how pond splits a read's files, the SQL a task reads an input with) are answered here.
When the core changes, this is the only module to fix.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pond_core.dataframe import DataFrame
    from pond_core.io import StorageOptions
    from pond_core.plan.logical import Node
    from pond_core.plan.sqlcompile.tables import InputLayout
    from pond_core.session import Session


@dataclasses.dataclass(frozen=True)
class ReadInfo:
    """A DataFrame that is a plain read of Parquet files (what read_parquet returns)."""

    files: tuple[str, ...]
    columns: tuple[str, ...] | None
    hive_sql_options: str  # what pond's tasks pass to read_parquet for hive layouts


def plan_of(df: DataFrame) -> Node:
    """A DataFrame's logical plan (what the compiler reads and extends): the one place the
    front end looks inside a DataFrame."""
    return df._node


def storage_of(df: DataFrame) -> StorageOptions:
    """The storage options a DataFrame's session reads with (object store credentials)."""
    return df.session.storage


def frame_layout(node: Node) -> InputLayout:
    from pond_core.plan.logical import Repartition
    from pond_core.plan.sqlcompile.tables import InputLayout

    if isinstance(node, Repartition) and node.method == "hash" and node.n > 1:
        return InputLayout(node.n, tuple(node.keys))
    return InputLayout(node.npartitions, None)


def read_info(node: Node, storage: StorageOptions) -> ReadInfo | None:
    """The files a plain Parquet read covers (globs expanded now), or None for any other plan."""
    from pond_core.io import hive_read_options, resolve_paths
    from pond_core.plan.logical import Read

    if not isinstance(node, Read) or node.source.format != "parquet" or node.source.limit is not None:
        return None
    src = node.source
    files = tuple(resolve_paths(list(src.paths), src.recursive, storage))
    label = ", ".join(src.paths)  # the path the user gave names the input in an error
    return ReadInfo(files, src.columns, hive_read_options(list(files), None, src.hive_partitioning, label))


def file_groups(files: list[str], n: int) -> list[list[str]]:
    """The files each partition of `read.repartition(n)` reads: pond's own split, so key ranges
    derived from it are exactly what the tasks read."""
    from pond_core.execute.inputs import even_groups

    return even_groups(list(files), n)


def read_sql(node: Node, info: ReadInfo) -> str:
    """The SQL a pond task runs to read this plain read whole (for schemas and statistics)."""
    from pond_core.execute.inputs import Part, source_sql
    from pond_core.plan.logical import Read

    assert isinstance(node, Read), f"{node.label()} is not a read"
    return source_sql(node.source, Part(tuple(info.files)), info.hive_sql_options)


def source_files(node: Node) -> list[tuple[str, ...]]:
    """Path patterns of every read under a plan (for a rough size of computed frames)."""
    from pond_core.plan.logical import Read, walk

    return [n.source.paths for n in walk(node) if isinstance(n, Read)]


def frame_schema_sql(plan: Node, storage: StorageOptions, describe: Any) -> list[tuple[str, str]] | None:
    """The (name, DuckDB type) columns of a computed plan, inferred without running it; None
    when a step's output cannot be known (a Python step without schema=, a UDF).

    `describe(sql)` returns the columns of SQL over empty relations the planner created; views
    for each node are created through it."""
    from pond_core.execute.inputs import empty_sql
    from pond_core.plan.logical import Limit, PyMap, Read, Repartition, Sql, walk
    from pond_core.plan.sql import bind
    from pond_core.sql_quote import quote_ident

    names: dict[str, str] = {}
    cols = None
    for node in walk(plan):
        view = f"__pond_frame_{node.id}"
        if isinstance(node, Read):
            if node.source.format == "parquet":
                info = read_info(node, storage)
                if info is None:
                    return None
                sql = read_sql(node, info) + " LIMIT 0"
            else:
                sql = empty_sql(tuple(node.source.schema or ()))
        elif isinstance(node, (Repartition, Limit)):
            sql = f"SELECT * FROM {quote_ident(names[node.inputs[0].id])}"
        elif isinstance(node, Sql) and not node.udfs:
            sql = bind(node.query, [quote_ident(names[i.id]) for i in node.inputs])
        elif isinstance(node, PyMap) and node.schema:
            sql = empty_sql(tuple(node.schema))
        else:
            return None
        names[node.id] = view
        cols = describe(sql, view)
        if cols is None:
            return None
    return cols


def cluster_cores(session: Session) -> int:
    """CPU cores the session's executor can use, without starting anything."""
    config = session.config
    if config.num_executors:
        return int(config.num_executors)
    if config.use_ray:
        try:
            import ray

            if ray.is_initialized():
                return max(1, int(ray.cluster_resources().get("CPU", 1)))
        except Exception:  # a cluster we cannot ask: count this machine
            pass
    return os.cpu_count() or 1


def sql_frame(session: Session, plan: Node, plan_text: Callable[[], str]) -> DataFrame:
    """The compiled statement as a DataFrame, whose explain() shows the distributed plan before
    pond's plans."""
    from pond_core.dataframe import DataFrame

    return DataFrame(session, plan, planned_by=plan_text)
