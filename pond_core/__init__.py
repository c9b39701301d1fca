"""pond: partitioned DuckDB SQL over Parquet, in-process or on Ray, with smallpond's API.

smallpond programs run unchanged with `pond smallpond SCRIPT.py` (pond_core.compat.smallpond,
docs/smallpond.md); `import pond_core` is pond's own API, smallpond's with safer defaults.
`pond_core.sql(query, **inputs)` runs SQL over whole datasets on the session `init()` started. Names are imported on first
use, so `import pond_core.catalog` (or the CLI) does not pay for the whole engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "init": "pond_core.session",
    "sql": "pond_core.session",
    "Session": "pond_core.session",
    "DataFrame": "pond_core.dataframe",
    "udf": "pond_core.udfs",
    "UDF": "pond_core.udfs",
    "PondError": "pond_core.errors",
    "PondConfigError": "pond_core.errors",
    "PondDataError": "pond_core.errors",
    "PondInputError": "pond_core.errors",
    "PondInternalError": "pond_core.errors",
    "PondInterruptedError": "pond_core.errors",
    "PondNodeLostError": "pond_core.errors",
    "PondOutOfMemoryError": "pond_core.errors",
    "PondResourceError": "pond_core.errors",
    "PondSerializationError": "pond_core.errors",
    "PondSqlError": "pond_core.errors",
    "PondStorageError": "pond_core.errors",
    "PondTransientError": "pond_core.errors",
    "sql_literal": "pond_core.sql_quote",
    "bind_params": "pond_core.sql_quote",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pond_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)


if TYPE_CHECKING:  # for type checkers and IDEs
    from pond_core.dataframe import DataFrame
    from pond_core.errors import (
        PondConfigError,
        PondDataError,
        PondError,
        PondInputError,
        PondInternalError,
        PondInterruptedError,
        PondNodeLostError,
        PondOutOfMemoryError,
        PondResourceError,
        PondSerializationError,
        PondSqlError,
        PondStorageError,
        PondTransientError,
    )
    from pond_core.session import Session, init, sql
    from pond_core.sql_quote import bind_params, sql_literal
    from pond_core.udfs import UDF, udf
