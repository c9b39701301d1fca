"""Python functions registered into each task's DuckDB connection (smallpond's `udf`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pond_core.errors import PondConfigError

if TYPE_CHECKING:
    from pond_core.plan.logical import UdfSpec


def _type_name(duckdb_type: Any) -> str:
    """Accept 'INTEGER', duckdb.typing.INTEGER or a DuckDBPyType; keep the SQL spelling."""
    name = str(duckdb_type).strip()
    if not name:
        raise PondConfigError(f"UDF type {duckdb_type!r} is empty")
    return name.upper()


@dataclasses.dataclass(frozen=True)
class UDF:
    """A Python scalar function and the DuckDB signature it is registered with."""

    name: str
    func: Callable[..., Any]
    params: tuple[str, ...]
    return_type: str

    def __call__(self, *args: Any) -> Any:
        return self.func(*args)

    def register(self, con: Any) -> None:
        import duckdb

        con.create_function(
            self.name,
            self.func,
            [duckdb.sqltype(p) for p in self.params],
            duckdb.sqltype(self.return_type),
            exception_handling="default",
        )


def udf(
    params: Sequence[Any], return_type: Any, name: str | None = None
) -> Callable[[Callable[..., Any]], UDF]:
    """Decorate a function so SQL steps can call it by name: `@udf(["INTEGER"], "INTEGER")`."""

    def wrap(func: Callable[..., Any]) -> UDF:
        if not callable(func):
            raise PondConfigError(f"udf() decorates a function, got {func!r}")
        return UDF(
            name=name or func.__name__,
            func=func,
            params=tuple(_type_name(p) for p in params),
            return_type=_type_name(return_type),
        )

    return wrap


def as_udfs(udfs: Sequence[Any] | None) -> tuple[UDF, ...]:
    """Check a `udfs=[...]` argument: every entry must come from the `udf` decorator."""
    out = []
    for item in udfs or ():
        if not isinstance(item, UDF):
            raise PondConfigError(
                f"udfs= takes functions decorated with pond_core.udf(params, return_type), got {item!r}"
            )
        out.append(item)
    return tuple(out)


def udf_specs(udfs: Sequence[Any] | None) -> tuple[UdfSpec, ...]:
    """A `udfs=[...]` argument as plan data: each function's signature and pickled body."""
    from pond_core.plan.logical import UdfSpec
    from pond_core.plan.pyfunc import PyFunc

    return tuple(UdfSpec(u.name, u.params, u.return_type, PyFunc.wrap(u.func, "udf")) for u in as_udfs(udfs))
