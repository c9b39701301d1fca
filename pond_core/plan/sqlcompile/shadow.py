"""A planning-time DuckDB over empty tables: the types of every relation the planner makes.

Every input becomes an empty table with the input's schema, and every SQL step the planner
generates becomes a view over the views of its inputs. DuckDB then binds each step exactly as a
task will, so the planner knows each column's type (to cast hash keys to one type, to give the
result DuckDB's own types) and a generated step that does not bind is caught before anything
runs. Binding touches no data.

The connection reads the inputs' Parquet footers while the inputs are set up; then it is sealed
(`seal`): no file, network or extension access, configuration locked. Every user statement and
every generated step is bound only after that, so even a planner bug cannot make planning write
a file, attach a database or read anything but the inputs.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import duckdb

from pond_core.sql_quote import quote_ident

# Parquet has no 128-bit integer; pond stores HUGEINT as DECIMAL(38,0) between stages. The
# planner casts explicitly wherever a step yields one, so types never depend on where pond cuts
# stages.
STORED_AS = {"HUGEINT": "DECIMAL(38,0)", "UHUGEINT": "DECIMAL(38,0)"}


class ShadowError(Exception):
    """A generated (or user) statement DuckDB would not bind."""


class Shadow:
    def __init__(self) -> None:
        self.con = duckdb.connect(config={"threads": 1})
        self._ids = itertools.count(1)

    def close(self) -> None:
        self.con.close()

    def seal(self) -> None:
        """From now on the connection touches nothing outside itself (see the module doc)."""
        for setting in ("autoinstall_known_extensions", "autoload_known_extensions", "enable_external_access"):
            self.con.execute(f"SET {setting} = false")
        self.con.execute("SET lock_configuration = true")

    def new_name(self, prefix: str = "r") -> str:
        return f"__pond_{prefix}{next(self._ids)}"

    def create_table(self, name: str, schema: Sequence[tuple[str, str]]) -> None:
        cols = ", ".join(f"{quote_ident(n)} {t}" for n, t in schema) or "__pond_empty INTEGER"
        self.con.execute(f"CREATE OR REPLACE TABLE {quote_ident(name)} ({cols})")

    def create_view(self, name: str, sql: str) -> list[tuple[str, str]]:
        try:
            self.con.execute(f"CREATE OR REPLACE VIEW {quote_ident(name)} AS {sql}")
        except duckdb.Error as exc:
            raise ShadowError(f"{exc}\nSQL: {sql}") from exc
        return self.describe(f"SELECT * FROM {quote_ident(name)}")

    def describe(self, sql: str) -> list[tuple[str, str]]:
        try:
            rows = self.con.execute(f"DESCRIBE {sql}").fetchall()
        except duckdb.Error as exc:
            raise ShadowError(f"{exc}\nSQL: {sql}") from exc
        return [(r[0], r[1]) for r in rows]

    def common_type(self, a: str, b: str) -> str:
        """The type DuckDB compares `a` and `b` in (what a join on them casts both sides to)."""
        if a == b:
            return a
        rows = self.describe(f"SELECT CAST(NULL AS {a}) AS v UNION ALL SELECT CAST(NULL AS {b})")
        return rows[0][1]

    def is_aggregate(self, name: str) -> bool:
        rows = self.con.execute(
            "SELECT count(*) FROM duckdb_functions() WHERE function_type = 'aggregate' AND lower(function_name) = ?",
            [name.lower()],
        ).fetchone()
        return bool(rows and rows[0])
