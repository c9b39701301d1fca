"""What a write produced: the files a task wrote, and what a sink commit published.

Plain frozen dataclasses with one JSON form each (`to_dict` / `from_dict`), because these
records are persisted (task records, stage manifests, the catalog) and cross process
boundaries (Ray workers), where a typed value keeps every reader honest about the fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class WrittenFile:
    """One Parquet file a task wrote: its rows and bytes, and where it belongs.

    `bucket` is set for an exchange (the consumer partition that reads it); `partition_keys`
    for a hive-partitioned sink (`{"dt": "2026-11-20"}`).
    """

    path: str
    rows: int
    bytes: int
    bucket: int | None = None
    partition_keys: Mapping[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "rows": self.rows, "bytes": self.bytes}
        if self.bucket is not None:
            out["bucket"] = self.bucket
        if self.partition_keys:
            out["partition_keys"] = dict(self.partition_keys)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WrittenFile:
        keys = data.get("partition_keys")
        return cls(
            path=str(data["path"]),
            rows=int(data["rows"]),
            bytes=int(data["bytes"]),
            bucket=None if data.get("bucket") is None else int(data["bucket"]),
            partition_keys={str(k): str(v) for k, v in keys.items()} if keys else None,
        )


@dataclasses.dataclass(frozen=True)
class PartitionFiles:
    """The files one partition task wrote into a sink's staging area."""

    partition: int
    files: tuple[WrittenFile, ...]


@dataclasses.dataclass(frozen=True)
class SinkCommit:
    """What one commit published to a dataset."""

    path: str
    mode: str
    job_id: str
    files: tuple[str, ...]  # full paths of the committed files
    rows: int
    bytes: int
    partitions: tuple[str, ...]  # hive partitions written ("dt=2026-11-20"), sorted
    manifest: str  # the dataset's manifest file

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["files"], out["partitions"] = list(self.files), list(self.partitions)
        return out
