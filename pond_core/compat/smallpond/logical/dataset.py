"""smallpond's datasets: files (Parquet, CSV, JSON), a SQL query, or a table in memory.

A dataset names what a `DataSourceNode` reads; the planner (logical/planner.py) turns it into
pond's `Read`. The methods user code calls on a dataset inside a task (`resolved_paths`,
`to_arrow_table`, `log`, ...) read with DuckDB, as smallpond does.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from pond_core.errors import PondConfigError, PondInputError
from pond_core.sql_quote import quote_str

log = logging.getLogger("pond.smallpond")

GENERATED_COLUMNS = ("filename", "file_row_number")


def _has_magic(path: str) -> bool:
    return any(c in path for c in "*?[")


class DataSet:
    """Files named by paths or globs (relative ones resolved under `root_dir`)."""

    def __init__(
        self,
        paths: str | Sequence[str],
        root_dir: str | None = "",
        recursive: bool = False,
        columns: Sequence[str] | None = None,
        union_by_name: bool = False,
    ) -> None:
        self.paths = [paths] if isinstance(paths, str) else list(paths)
        self.root_dir = os.path.abspath(root_dir) if root_dir is not None else None
        self.recursive = recursive
        self.columns = list(columns) if columns else None
        self._union_by_name = union_by_name
        self._resolved_paths: list[str] | None = None

    def __str__(self) -> str:
        return f"{type(self).__name__}: paths[{len(self.paths)}]={self.paths[:3]}..., root_dir={self.root_dir}, columns={self.columns}"

    __repr__ = __str__

    @property
    def union_by_name(self) -> bool:
        return self._union_by_name or self.columns is not None

    @property
    def absolute_paths(self) -> list[str]:
        """The paths (patterns kept) made absolute under root_dir; s3:// URLs as given."""
        return [p if "://" in p or self.root_dir is None else os.path.join(self.root_dir, p) for p in self.paths]

    @property
    def resolved_paths(self) -> list[str]:
        """Every file, patterns expanded, in sorted order per pattern."""
        if self._resolved_paths is None:
            out: list[str] = []
            for path in self.absolute_paths:
                if "://" in path or not _has_magic(path):
                    out.append(path)
                else:
                    out.extend(sorted(glob.glob(path, recursive=self.recursive)))
            self._resolved_paths = out
        return self._resolved_paths

    @property
    def num_files(self) -> int:
        return len(self.resolved_paths)

    @property
    def empty(self) -> bool:
        return not self.resolved_paths

    @property
    def num_rows(self) -> int:
        return int(_query(f"SELECT count(*) AS n FROM {self.sql_query_fragment()}", None).column("n")[0].as_py())

    @property
    def _column_str(self) -> str:
        return ", ".join(self.columns) if self.columns else "*"

    def sql_query_fragment(self, filesystem: Any = None, conn: Any = None) -> str:
        """The dataset as a DuckDB table expression."""
        raise NotImplementedError

    def to_arrow_table(self, max_workers: int = 16, filesystem: Any = None, conn: Any = None) -> Any:
        return _query(f"SELECT {self._column_str} FROM {self.sql_query_fragment()}", conn)

    def to_batch_reader(self, batch_size: int = 122880, filesystem: Any = None, conn: Any = None) -> Any:
        return _query(f"SELECT {self._column_str} FROM {self.sql_query_fragment()}", conn).to_reader(batch_size)

    def to_pandas(self) -> Any:
        return self.to_arrow_table().to_pandas()

    def log(self, num_rows: int = 200) -> None:
        """Log the dataset's first rows."""
        log.info("%s ->\n%s", self, self.to_pandas().head(num_rows).to_string())

    def _file_list(self) -> str:
        if not self.resolved_paths:
            raise PondInputError(f"{self}: no file matches {self.paths}")
        return "[" + ", ".join(quote_str(p) for p in self.resolved_paths) + "]"


def _query(query: str, conn: Any) -> Any:
    """A query's result as Arrow, on the caller's connection or a new one: DuckDB's default
    connection is shared by the process, and tasks run in threads."""
    import duckdb

    if conn is not None:
        return conn.sql(query).fetch_arrow_table()
    with duckdb.connect() as own:
        return own.sql(query).fetch_arrow_table()


class ParquetDataSet(DataSet):
    """Parquet files; `generated_columns` adds DuckDB's `filename` / `file_row_number`."""

    def __init__(
        self,
        paths: str | Sequence[str],
        root_dir: str | None = "",
        recursive: bool = False,
        columns: Sequence[str] | None = None,
        generated_columns: Sequence[str] | None = None,
        union_by_name: bool = False,
    ) -> None:
        super().__init__(paths, root_dir, recursive, columns, union_by_name)
        self.generated_columns = list(generated_columns or [])
        unknown = sorted(set(self.generated_columns) - set(GENERATED_COLUMNS))
        if unknown:
            raise PondConfigError(f"ParquetDataSet: generated_columns takes {', '.join(GENERATED_COLUMNS)}, got {', '.join(unknown)}")

    def sql_query_fragment(self, filesystem: Any = None, conn: Any = None) -> str:
        options = [f"union_by_name={str(self.union_by_name).lower()}", "hive_partitioning=false"]
        options += [f"{c}=true" for c in self.generated_columns]
        return f"read_parquet({self._file_list()}, {', '.join(options)})"

    @staticmethod
    def create_from(table: Any, output_dir: str, filename: str = "data") -> ParquetDataSet:
        import pyarrow.parquet as pq

        path = os.path.join(output_dir, f"{filename}.parquet")
        pq.write_table(table, path)
        return ParquetDataSet([path])


class CsvDataSet(DataSet):
    """CSV files read with the given schema (column name to DuckDB type, in order)."""

    def __init__(
        self,
        paths: str | Sequence[str],
        schema: dict[str, str],
        delim: str = ",",
        max_line_size: int | None = None,
        parallel: bool = True,
        header: bool = False,
        root_dir: str | None = "",
        recursive: bool = False,
        columns: Sequence[str] | None = None,
        union_by_name: bool = False,
    ) -> None:
        super().__init__(paths, root_dir, recursive, columns, union_by_name)
        if not isinstance(schema, dict) or not schema:
            raise PondConfigError("CsvDataSet needs schema= as an (ordered) dict of column name to DuckDB type")
        self.schema = dict(schema)
        self.delim = delim
        self.max_line_size = max_line_size
        self.parallel = parallel
        self.header = header

    def sql_query_fragment(self, filesystem: Any = None, conn: Any = None) -> str:
        columns = "{" + ", ".join(f"{quote_str(k)}: {quote_str(v)}" for k, v in self.schema.items()) + "}"
        return f"read_csv({self._file_list()}, delim={quote_str(self.delim)}, header={str(self.header).lower()}, columns={columns})"


class JsonDataSet(DataSet):
    """Newline-delimited JSON files read with the given schema."""

    def __init__(
        self,
        paths: str | Sequence[str],
        schema: dict[str, str],
        format: str = "newline_delimited",
        max_object_size: int = 1 << 30,
        root_dir: str | None = "",
        recursive: bool = False,
        columns: Sequence[str] | None = None,
        union_by_name: bool = False,
    ) -> None:
        super().__init__(paths, root_dir, recursive, columns, union_by_name)
        if format != "newline_delimited":
            raise PondConfigError(f"JsonDataSet: pond reads newline-delimited JSON only, got format={format!r}")
        self.schema = dict(schema)
        self.format = format
        self.max_object_size = max_object_size

    def sql_query_fragment(self, filesystem: Any = None, conn: Any = None) -> str:
        columns = "{" + ", ".join(f"{quote_str(k)}: {quote_str(v)}" for k, v in self.schema.items()) + "}"
        return f"read_json({self._file_list()}, format='newline_delimited', columns={columns})"


class SqlQueryDataSet(DataSet):
    """The rows of a SQL query that reads no input (e.g. `select * from range(10)`)."""

    def __init__(self, sql_query: str, query_builder: Callable[..., str] | None = None) -> None:
        super().__init__([])
        if query_builder is not None:
            raise PondConfigError("SqlQueryDataSet: query_builder is not supported on pond; pass the query text")
        self.sql_query = sql_query

    def sql_query_fragment(self, filesystem: Any = None, conn: Any = None) -> str:
        return f"( {self.sql_query} )"


class ArrowTableDataSet(DataSet):
    """A pyarrow Table in memory; pond stores it as Parquet under the job so tasks can read it."""

    def __init__(self, table: Any) -> None:
        super().__init__([])
        self.table = table

    def to_arrow_table(self, max_workers: int = 16, filesystem: Any = None, conn: Any = None) -> Any:
        return self.table

    def to_batch_reader(self, batch_size: int = 122880, filesystem: Any = None, conn: Any = None) -> Any:
        return self.table.to_reader(batch_size)


class PandasDataSet(DataSet):
    """A pandas DataFrame in memory; stored as Parquet under the job, like ArrowTableDataSet."""

    def __init__(self, df: Any) -> None:
        super().__init__([])
        self.df = df

    def to_pandas(self) -> Any:
        return self.df

    def to_arrow_table(self, max_workers: int = 16, filesystem: Any = None, conn: Any = None) -> Any:
        import pyarrow as pa

        return pa.Table.from_pandas(self.df, preserve_index=False)


class PartitionedDataSet(DataSet):
    """One dataset per partition (what `UserPartitionedDataSourceNode` is built from)."""

    def __init__(self, datasets: Sequence[DataSet]) -> None:
        if not datasets:
            raise PondConfigError("PartitionedDataSet needs at least one dataset")
        self.datasets = list(datasets)
        first = self.datasets[0]
        super().__init__([p for d in self.datasets for p in d.absolute_paths], None, first.recursive, first.columns, first.union_by_name)

    def __getitem__(self, key: int) -> DataSet:
        return self.datasets[key]

    def __len__(self) -> int:
        return len(self.datasets)


class FileSet(DataSet):
    """Files of any kind, as paths only (a `PythonScriptNode`'s non-Parquet output)."""
