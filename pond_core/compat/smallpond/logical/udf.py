"""smallpond's UDF types and `@udf`, translated to pond's UDFs (pond_core.udfs).

smallpond describes a UDF's signature with its own type wrappers (`UDFType.INTEGER`,
`UDFListType(...)`); pond stores a signature as DuckDB type names, so each wrapper knows its
DuckDB spelling and `to_pond_udf` builds the pond UDF a SQL step registers in every task.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

from pond_core.errors import PondConfigError
from pond_core.udfs import UDF


class UDFType(Enum):
    """A DuckDB scalar type, by smallpond's names."""

    SQLNULL = 1
    BOOLEAN = 2
    TINYINT = 3
    UTINYINT = 4
    SMALLINT = 5
    USMALLINT = 6
    INTEGER = 7
    UINTEGER = 8
    BIGINT = 9
    UBIGINT = 10
    HUGEINT = 11
    UUID = 12
    FLOAT = 13
    DOUBLE = 14
    DATE = 15
    TIMESTAMP = 16
    TIMESTAMP_MS = 17
    TIMESTAMP_NS = 18
    TIMESTAMP_S = 19
    TIME = 20
    TIME_TZ = 21
    TIMESTAMP_TZ = 22
    VARCHAR = 23
    BLOB = 24
    BIT = 25
    INTERVAL = 26

    def sql_type(self) -> str:
        return {"SQLNULL": "NULL", "TIME_TZ": "TIME WITH TIME ZONE", "TIMESTAMP_TZ": "TIMESTAMP WITH TIME ZONE"}.get(self.name, self.name)

    def to_duckdb_type(self) -> Any:
        import duckdb

        return duckdb.sqltype(self.sql_type())


class UDFStructType:
    """A STRUCT of named fields: `UDFStructType({'host': 'VARCHAR', 'port': 'INTEGER'})`."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = fields

    def sql_type(self) -> str:
        return "STRUCT(" + ", ".join(f'"{k}" {v}' for k, v in self.fields.items()) + ")"

    def to_duckdb_type(self) -> Any:
        import duckdb

        return duckdb.sqltype(self.sql_type())


class UDFListType:
    """A LIST of one element type: `UDFListType(UDFType.INTEGER)`."""

    def __init__(self, child: Any) -> None:
        self.child = child

    def sql_type(self) -> str:
        return f"{sql_type(self.child)}[]"

    def to_duckdb_type(self) -> Any:
        import duckdb

        return duckdb.sqltype(self.sql_type())


class UDFMapType:
    """A MAP: `UDFMapType(UDFType.VARCHAR, UDFType.INTEGER)`."""

    def __init__(self, key: Any, value: Any) -> None:
        self.key = key
        self.value = value

    def sql_type(self) -> str:
        return f"MAP({sql_type(self.key)}, {sql_type(self.value)})"

    def to_duckdb_type(self) -> Any:
        import duckdb

        return duckdb.sqltype(self.sql_type())


class UDFAnyParameters:
    """smallpond's 'parameters of any type'; pond registers UDFs with a fixed signature."""


def sql_type(value: Any) -> str:
    """A smallpond type wrapper, a DuckDB type or a type name, as DuckDB spells it."""
    if isinstance(value, (UDFType, UDFStructType, UDFListType, UDFMapType)):
        return value.sql_type()
    return str(value).upper()


@dataclasses.dataclass
class UserDefinedFunction:
    """A Python scalar function and its signature, as `@udf` returns it."""

    name: str
    func: Callable[..., Any]
    params: Sequence[Any]
    return_type: Any
    use_arrow_type: bool = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def to_pond_udf(self) -> UDF:
        if isinstance(self.params, UDFAnyParameters):
            raise PondConfigError(
                f"UDF {self.name!r}: UDFAnyParameters is not supported on pond; give the parameter types (UDFType.VARCHAR, ...)"
            )
        if self.use_arrow_type:
            raise PondConfigError(f"UDF {self.name!r}: use_arrow_type=True is not supported on pond; use Python values")
        return UDF(self.name, self.func, tuple(sql_type(p) for p in self.params), sql_type(self.return_type))


def udf(
    params: Sequence[Any], return_type: Any, use_arrow_type: bool = False, name: str | None = None
) -> Callable[[Callable[..., Any]], UserDefinedFunction]:
    """Decorate a Python function so SQL nodes can call it: `@udf([UDFType.INTEGER], UDFType.INTEGER)`."""

    def wrap(func: Callable[..., Any]) -> UserDefinedFunction:
        return UserDefinedFunction(name or func.__name__, func, params, return_type, use_arrow_type)

    return wrap
