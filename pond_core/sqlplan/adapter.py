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
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from pond_core.dataframe import DataFrame
    from pond_core.plan.logical import Node, SourceSpec
    from pond_core.plan.sqlcompile.tables import InputLayout
    from pond_core.session import Session


@dataclasses.dataclass(frozen=True)
class ReadInfo:
    """A DataFrame that is a plain read of Parquet files (what read_parquet returns)."""

    files: tuple[str, ...]
    columns: tuple[str, ...] | None
    hive_sql_options: str  # what pond's tasks pass to read_parquet for hive layouts


def plan_of(df: DataFrame) -> Node:
    """A DataFrame's logical plan (what the compiler reads and extends)."""
    return df._node


def frame_layout(df: DataFrame) -> InputLayout:
    from pond_core.plan.logical import Repartition
    from pond_core.plan.sqlcompile.tables import InputLayout

    node = df._node
    if isinstance(node, Repartition) and node.method == "hash" and node.n > 1:
        return InputLayout(node.n, tuple(node.keys))
    return InputLayout(node.npartitions, None)


def read_info(df: DataFrame) -> ReadInfo | None:
    """The files a plain Parquet read covers (globs expanded now), or None for any other frame."""
    from pond_core.io import hive_read_options, resolve_paths
    from pond_core.plan.logical import Read

    node = df._node
    if not isinstance(node, Read) or node.source.format != "parquet" or node.source.limit is not None:
        return None
    src = node.source
    files = tuple(resolve_paths(list(src.paths), src.recursive, df.session.storage))
    return ReadInfo(files, src.columns, hive_read_options(list(files), None, src.hive_partitioning))


def session_of(df: DataFrame) -> Session:
    """The session a DataFrame was built from (DataFrame types it as the protocol it uses)."""
    session = df.session
    # Checked by what it can do, not its class: importing pond_core.session here would make an
    # import cycle (Session.sql imports this package).
    assert hasattr(session, "read_parquet"), f"a DataFrame of {type(session).__name__}, not of a pond Session"
    return cast("Session", session)


def _source(df: DataFrame) -> SourceSpec:
    from pond_core.plan.logical import Read

    node = df._node
    assert isinstance(node, Read), f"{node.label()} is not a read"
    return node.source


def file_groups(files: list[str], n: int) -> list[list[str]]:
    """The files each partition of `read.repartition(n)` reads: pond's own split, so key ranges
    derived from it are exactly what the tasks read."""
    from pond_core.execute.inputs import even_groups

    return even_groups(list(files), n)


def read_sql(df: DataFrame, info: ReadInfo) -> str:
    """The SQL a pond task runs to read this frame whole (for schemas and statistics)."""
    from pond_core.execute.inputs import Part, source_sql

    return source_sql(_source(df), Part(tuple(info.files)), info.hive_sql_options)


def source_files(df: DataFrame) -> list[tuple[str, ...]]:
    """Path patterns of every read under a frame's plan (for a rough size of computed frames)."""
    from pond_core.plan.logical import Read, walk

    return [n.source.paths for n in walk(df._node) if isinstance(n, Read)]


def frame_schema_sql(df: DataFrame, describe: Any) -> list[tuple[str, str]] | None:
    """The (name, DuckDB type) columns of a computed frame, inferred from its logical plan
    without running it; None when a step's output cannot be known (a Python step without
    schema=, a UDF).

    `describe(sql)` returns the columns of SQL over empty relations the planner created; views
    for each node are created through it."""
    from pond_core.plan.logical import Limit, PyMap, Read, Repartition, Sql, walk
    from pond_core.plan.sql import bind
    from pond_core.sql_quote import quote_ident

    names: dict[str, str] = {}
    for node in walk(df._node):
        view = f"__pond_frame_{node.id}"
        if isinstance(node, Read):
            sub = session_of(df)._frame(node)
            if node.source.format == "parquet":
                info = read_info(sub)
                if info is None:
                    return None
                sql = read_sql(sub, info) + " LIMIT 0"
            else:
                from pond_core.execute.inputs import empty_sql

                sql = empty_sql(tuple(node.source.schema or ()))
        elif isinstance(node, (Repartition, Limit)):
            sql = f"SELECT * FROM {quote_ident(names[node.inputs[0].id])}"
        elif isinstance(node, Sql) and not node.udfs:
            sql = bind(node.query, [quote_ident(names[i.id]) for i in node.inputs])
        elif isinstance(node, PyMap) and node.schema:
            from pond_core.execute.inputs import empty_sql

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
