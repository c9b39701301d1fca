"""pond: partitioned DuckDB SQL over Parquet, in-process or on Ray, with smallpond's API.

`import pond_core as smallpond` runs smallpond programs unchanged.
"""

from pond_core.dataframe import DataFrame
from pond_core.errors import (
    PondConfigError,
    PondDataError,
    PondError,
    PondInputError,
    PondSerializationError,
    PondSqlError,
    PondStorageError,
    PondTransientError,
)
from pond_core.session import Session, init
from pond_core.udf import UDF, udf

__version__ = "0.1.0"

__all__ = [
    "DataFrame",
    "PondConfigError",
    "PondDataError",
    "PondError",
    "PondInputError",
    "PondSerializationError",
    "PondSqlError",
    "PondStorageError",
    "PondTransientError",
    "Session",
    "UDF",
    "init",
    "udf",
]
