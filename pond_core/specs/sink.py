"""SinkSpec: where and how a dataset is written, validated before anything runs."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from pond_core.checks import Check, as_checks
from pond_core.errors import PondConfigError
from pond_core.specs.iceberg_table import IcebergTable

MODES = ("error", "overwrite", "overwrite_partitions", "append")
COMPRESSIONS = ("snappy", "zstd", "gzip", "lz4", "lz4_raw", "brotli", "uncompressed")
S3_STAGING = "_pond_staging"
NO_ROTATION = 1 << 50  # FILE_SIZE_BYTES that never splits, so DuckDB writes into a directory
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class SinkSpec:
    """Where and how a dataset is written. `target_file_size` is in bytes."""

    path: str
    mode: str = "error"
    partition_by: list[str] | None = None
    compression: str = "snappy"
    target_file_size: int | None = None
    file_prefix: str = "part"
    row_group_size: int | None = None
    compression_level: int | None = None
    # An Iceberg sink: pond writes the files, then commits them to this table (io/iceberg.py).
    table: IcebergTable | None = None
    # Keep partition columns inside the files too (Iceberg readers do not parse hive paths).
    write_partition_columns: bool = False
    # Run on the staged files before the commit; a failing one publishes nothing (checks.py).
    checks: tuple[Check, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "checks", as_checks(self.checks))
        if isinstance(self.partition_by, str):
            object.__setattr__(self, "partition_by", [self.partition_by])
        elif self.partition_by is not None:
            object.__setattr__(self, "partition_by", list(self.partition_by) or None)
        compression = "uncompressed" if self.compression in (None, "none") else str(self.compression).lower()
        object.__setattr__(self, "compression", compression)
        self._validate()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        # Table options appear only when set, so a Parquet sink's definition (and id) is unchanged.
        for name in _OPTIONAL:
            if not out[name]:
                del out[name]
        if self.table is not None:
            out["table"] = self.table.to_dict()
        if self.checks:
            out["checks"] = [c.to_dict() for c in self.checks]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SinkSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PondConfigError(f"unknown sink option(s): {', '.join(unknown)}")
        values = dict(data)
        if values.get("table") is not None:
            values["table"] = IcebergTable.from_dict(values["table"])
        return cls(**values)

    def _validate(self) -> None:
        if self.mode not in MODES:
            raise PondConfigError(f"unknown write mode {self.mode!r}; use one of {', '.join(MODES)}")
        if self.compression not in COMPRESSIONS:
            raise PondConfigError(f"unknown compression {self.compression!r}; use one of {', '.join(COMPRESSIONS)}")
        if self.mode == "overwrite_partitions" and not self.partition_by:
            raise PondConfigError("mode 'overwrite_partitions' needs partition_by")
        cols = self.partition_by or []
        if len(set(cols)) != len(cols) or any(not c or "/" in c or "=" in c for c in cols):
            raise PondConfigError(f"invalid partition_by {cols!r}: names must be distinct, non-empty, without '/' or '='")
        if not _SAFE_NAME.match(self.file_prefix):
            raise PondConfigError(f"file_prefix {self.file_prefix!r} must be letters, digits, '_', '-' or '.'")
        for name in ("target_file_size", "row_group_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise PondConfigError(f"{name} must be a positive integer, not {value!r}")


_OPTIONAL = ("table", "write_partition_columns", "checks")


def job_tag(job_id: str) -> str:
    """A short, filename-safe, stable tag for a job id."""
    safe = re.sub(r"[^A-Za-z0-9_]", "_", job_id).strip("_")[:24]
    if safe == job_id and safe:
        return safe
    return f"{safe[:15]}_{hashlib.sha1(job_id.encode()).hexdigest()[:8]}".lstrip("_")
