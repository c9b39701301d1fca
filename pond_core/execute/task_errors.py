"""Which pond error a DuckDB exception inside a task is: that kind decides retry or fail."""

from __future__ import annotations

import duckdb

from pond_core.errors import (
    PondDataError,
    PondError,
    PondInputError,
    PondOutOfMemoryError,
    PondSqlError,
    PondStorageError,
    PondTransientError,
)
from pond_core.sql_errors import on_user_sql

_SQL_ERRORS = (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException, duckdb.SyntaxException)


def classify(exc: duckdb.Error, where: str, current: str, sql: str) -> PondError:
    """Map a DuckDB exception to the pond error kind that decides retry or fail; a SQL error is
    told on the user's SQL, not on the view pond wrapped it in."""
    message = str(exc).strip()
    if isinstance(exc, _SQL_ERRORS):
        message = on_user_sql(message, sql)
    text = f"{where}: {current}: {message}"
    if sql:
        text += f"\nSQL: {sql}"
    if isinstance(exc, duckdb.OutOfMemoryException):
        return PondOutOfMemoryError(text)
    if isinstance(exc, _SQL_ERRORS):
        return PondSqlError(text)
    if "No space left on device" in message:  # the stage names the disk (execute/disk_full.py)
        return PondStorageError(text)
    if "Could not connect to server" in message or "Could not resolve host" in message:
        return PondStorageError(text)
    if isinstance(exc, duckdb.HTTPException) or "HTTP" in message[:40]:
        if any(code in message for code in (" 500", " 502", " 503", " 504", "timed out", "Timeout")):
            return PondTransientError(text)
        return PondStorageError(text)
    if "Python exception occurred while executing the UDF" in message or "out of range" in message or "partition key" in message:
        return PondDataError(text)
    if isinstance(exc, (duckdb.IOException, duckdb.InvalidInputException, duckdb.ConversionException)):
        return PondInputError(text)
    return PondDataError(text)
