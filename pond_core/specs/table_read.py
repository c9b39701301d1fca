"""TableRead: which snapshot of which table (Iceberg or Delta) a source reads, as plain data in
the plan. io/table_read.py resolves it to files when the stage starts."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from pond_core.errors import PondConfigError
from pond_core.specs.iceberg_table import IcebergTable

DELTA_OPS = ("=", "!=", "<", "<=", ">", ">=", "in", "not in")


@dataclasses.dataclass(frozen=True)
class TableRead:
    """Which snapshot of which table a source reads. Exactly one of `iceberg` / `delta_path`."""

    iceberg: IcebergTable | None = None
    delta_path: str | None = None
    snapshot_id: int | None = None  # Iceberg
    as_of: float | None = None  # Iceberg or Delta: the snapshot current at this UNIX time
    version: int | None = None  # Delta
    row_filter: str | None = None  # Iceberg: a pyiceberg filter, also applied to every row
    partition_filters: tuple[tuple[str, str, Any], ...] = ()  # Delta: (column, op, value)

    def __post_init__(self) -> None:
        if (self.iceberg is None) == (self.delta_path is None):
            raise PondConfigError("a table source reads an Iceberg table or a Delta path")
        if self.snapshot_id is not None and self.as_of is not None or self.version is not None and self.as_of is not None:
            raise PondConfigError("give one of snapshot_id=/version= and as_of=, not both")
        for f in self.partition_filters:
            if len(f) != 3 or f[1] not in DELTA_OPS:
                raise PondConfigError(f"partition filter {f!r} must be (column, op, value) with op one of {', '.join(DELTA_OPS)}")

    @property
    def label(self) -> str:
        return self.iceberg.uri if self.iceberg is not None else str(self.delta_path)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["iceberg"] = self.iceberg.to_dict() if self.iceberg is not None else None
        out["partition_filters"] = [list(f) for f in self.partition_filters]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableRead:
        values = dict(data)
        if values.get("iceberg") is not None:
            values["iceberg"] = IcebergTable.from_dict(values["iceberg"])
        values["partition_filters"] = tuple(tuple(f) for f in values.get("partition_filters") or ())
        return cls(**values)


def as_of_seconds(value: dt.datetime | float | int | None) -> float | None:
    if value is None or isinstance(value, (int, float)):
        return value
    if value.tzinfo is None:
        raise PondConfigError("as_of= needs a timezone-aware datetime (or UNIX seconds)")
    return value.timestamp()
