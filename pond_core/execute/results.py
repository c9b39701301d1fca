"""What running produced: a task's result, a committed partition, a stage's result and manifest.

One JSON form each (`to_dict` / `from_dict`). A task's result comes back from a Ray worker as
this dataclass (pickled); a committed partition is persisted as `_tasks/pNNNNN.json`; a stage's
manifest as `_manifest.json`; a stage result is what the catalog, XCom and Prefect record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pond_core.checks import CheckResult
from pond_core.execute.input_key import InputKey
from pond_core.io.written import WrittenFile
from pond_core.plan.physical import Schema

MANIFEST_VERSION = 2


def schema_json(schema: Schema) -> list[list[str]]:
    return [list(column) for column in schema]


def schema_from_json(value: Any) -> Schema:
    return tuple((str(name), str(typ)) for name, typ in value or ())


def _files(value: Any) -> tuple[WrittenFile, ...]:
    return tuple(WrittenFile.from_dict(f) for f in value or ())


@dataclasses.dataclass(frozen=True)
class TaskResult:
    """What one partition task returns: the files it wrote and where it ran."""

    partition: int
    attempt: int
    files: tuple[WrittenFile, ...]
    schema: Schema
    started_at: float
    seconds: float
    threads: int
    host: str
    pid: int
    node: str | None = None  # the Ray node id

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One attempt of a partition, as its history records it."""

    attempt: int
    memory: int
    speculative: bool
    outcome: str | None = None  # committed | discarded | cancelled; None when it failed
    error: str | None = None
    host: str | None = None
    node: str | None = None
    seconds: float | None = None
    avoided_node: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None or k in ("attempt", "memory", "speculative")}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Attempt:
        return cls(
            attempt=int(d["attempt"]), memory=int(d["memory"]), speculative=bool(d["speculative"]), outcome=d.get("outcome"),
            error=d.get("error"), host=d.get("host"), node=d.get("node"), seconds=d.get("seconds"), avoided_node=d.get("avoided_node"),
        )


@dataclasses.dataclass(frozen=True)
class CommittedPartition:
    """The attempt that won a partition, with what it took to get there."""

    partition: int
    attempt: int
    files: tuple[WrittenFile, ...]
    schema: Schema
    seconds: float
    retries: int = 0
    node_failures: int = 0
    memory_retries: int = 0
    speculative_attempts: int = 0
    history: tuple[Attempt, ...] = ()
    host: str | None = None
    pid: int | None = None
    node: str | None = None
    threads: int | None = None

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition, "attempt": self.attempt, "files": [f.to_dict() for f in self.files],
            "rows": self.rows, "bytes": self.bytes, "schema": schema_json(self.schema), "seconds": self.seconds,
            "retries": self.retries, "node_failures": self.node_failures, "memory_retries": self.memory_retries,
            "speculative_attempts": self.speculative_attempts, "history": [h.to_dict() for h in self.history],
            "host": self.host, "pid": self.pid, "node": self.node, "threads": self.threads,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CommittedPartition:
        return cls(
            partition=int(d["partition"]), attempt=int(d["attempt"]), files=_files(d["files"]), schema=schema_from_json(d.get("schema")),
            seconds=float(d.get("seconds") or 0.0), retries=int(d.get("retries") or 0), node_failures=int(d.get("node_failures") or 0),
            memory_retries=int(d.get("memory_retries") or 0), speculative_attempts=int(d.get("speculative_attempts") or 0),
            history=tuple(Attempt.from_dict(h) for h in d.get("history") or ()), host=d.get("host"), pid=d.get("pid"),
            node=d.get("node"), threads=d.get("threads"),
        )


@dataclasses.dataclass(frozen=True)
class AttemptCounters:
    """Retries, lost nodes and speculative copies a stage made (also when it failed)."""

    task_retries: int = 0
    node_failures: int = 0
    memory_retries: int = 0
    speculative_attempts: int = 0


@dataclasses.dataclass(frozen=True)
class InputSummary:
    """What one stage input read: source paths as written, or an upstream stage."""

    name: str
    split: str
    format: str | None = None
    paths: tuple[str, ...] = ()
    stage: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.stage is not None:
            return {"name": self.name, "stage": self.stage, "split": self.split}
        return {"name": self.name, "format": self.format, "paths": list(self.paths), "split": self.split}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InputSummary:
        return cls(d["name"], d["split"], d.get("format"), tuple(d.get("paths") or ()), d.get("stage"))


@dataclasses.dataclass(frozen=True)
class PartitionStats:
    """Files, rows and bytes of one written dataset partition (`dt=2026-11-20`)."""

    key: str
    values: Mapping[str, str]
    files: int
    rows: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "values": dict(self.values), "files": self.files, "rows": self.rows, "bytes": self.bytes}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PartitionStats:
        return cls(d["key"], dict(d.get("values") or {}), int(d["files"] or 0), int(d["rows"] or 0), int(d["bytes"] or 0))


@dataclasses.dataclass(frozen=True)
class SinkSummary:
    """What a sink stage published (its files are in the dataset's manifest)."""

    path: str
    mode: str
    job_id: str
    rows: int
    bytes: int
    partitions: tuple[str, ...]
    manifest: str
    partition_stats: tuple[PartitionStats, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "mode": self.mode, "job_id": self.job_id, "rows": self.rows, "bytes": self.bytes,
            "partitions": list(self.partitions), "manifest": self.manifest,
            "partition_stats": [p.to_dict() for p in self.partition_stats],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SinkSummary:
        return cls(
            d["path"], d["mode"], d.get("job_id", ""), int(d.get("rows") or 0), int(d.get("bytes") or 0),
            tuple(d.get("partitions") or ()), d.get("manifest", ""),
            tuple(PartitionStats.from_dict(p) for p in d.get("partition_stats") or ()),
        )


@dataclasses.dataclass(frozen=True)
class StageResult:
    """A committed stage, in brief: where its output is, its counts, schema and timings."""

    run_id: str
    stage_id: str
    stage: str
    output_kind: str
    location: str
    npartitions: int
    files: int
    rows: int
    bytes: int
    schema: Schema
    started_at: float
    finished_at: float
    seconds: float
    inputs: tuple[InputSummary, ...]
    executor: str
    task_retries: int = 0
    node_failures: int = 0
    memory_retries: int = 0
    speculative_attempts: int = 0
    sink: SinkSummary | None = None
    checks: tuple[CheckResult, ...] = ()  # the sink's checks, run before its commit

    def to_dict(self) -> dict[str, Any]:
        out = {
            "run_id": self.run_id, "stage_id": self.stage_id, "stage": self.stage, "output_kind": self.output_kind,
            "location": self.location, "npartitions": self.npartitions, "files": self.files, "rows": self.rows,
            "bytes": self.bytes, "schema": schema_json(self.schema), "started_at": self.started_at,
            "finished_at": self.finished_at, "seconds": self.seconds, "task_retries": self.task_retries,
            "node_failures": self.node_failures, "memory_retries": self.memory_retries,
            "speculative_attempts": self.speculative_attempts, "inputs": [i.to_dict() for i in self.inputs],
            "executor": self.executor,
        }
        if self.sink is not None:
            out["sink"] = self.sink.to_dict()
        if self.checks:
            out["checks"] = [c.to_dict() for c in self.checks]
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StageResult:
        return cls(
            run_id=d["run_id"], stage_id=d["stage_id"], stage=d["stage"], output_kind=d["output_kind"], location=d["location"],
            npartitions=int(d["npartitions"]), files=int(d["files"]), rows=int(d["rows"]), bytes=int(d["bytes"]),
            schema=schema_from_json(d.get("schema")), started_at=float(d["started_at"]), finished_at=float(d["finished_at"]),
            seconds=float(d["seconds"]), inputs=tuple(InputSummary.from_dict(i) for i in d.get("inputs") or ()),
            executor=d.get("executor", ""), task_retries=int(d.get("task_retries") or 0),
            node_failures=int(d.get("node_failures") or 0), memory_retries=int(d.get("memory_retries") or 0),
            speculative_attempts=int(d.get("speculative_attempts") or 0),
            sink=SinkSummary.from_dict(d["sink"]) if d.get("sink") else None,
            checks=tuple(CheckResult.from_dict(c) for c in d.get("checks") or ()),
        )


@dataclasses.dataclass(frozen=True)
class PartitionOutput:
    """One partition's committed files, as a stage manifest lists them."""

    partition: int
    files: tuple[WrittenFile, ...]

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {"partition": self.partition, "files": [f.to_dict() for f in self.files], "rows": self.rows, "bytes": self.bytes}


@dataclasses.dataclass(frozen=True)
class StageManifest:
    """A committed stage in full: every partition's files, and the stage's result.

    Written last, after the files it lists, so a reader that finds it can trust it."""

    stage_id: str
    run_id: str
    partitions: tuple[PartitionOutput, ...]
    schema: Schema
    result: StageResult
    inputs: InputKey | None = None  # what the stage read; None: unknown, so never reused

    @property
    def files(self) -> list[WrittenFile]:
        return [f for p in self.partitions for f in p.files]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION, "stage_id": self.stage_id, "run_id": self.run_id,
            "partitions": [p.to_dict() for p in self.partitions], "schema": schema_json(self.schema),
            "result": self.result.to_dict(), "inputs": self.inputs.to_dict() if self.inputs is not None else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StageManifest | None:
        """The manifest, or None for one written by an older pond (its stage runs again)."""
        if d.get("version") != MANIFEST_VERSION:
            return None
        return cls(
            stage_id=d["stage_id"], run_id=d["run_id"],
            partitions=tuple(PartitionOutput(int(p["partition"]), _files(p["files"])) for p in d["partitions"]),
            schema=schema_from_json(d.get("schema")), result=StageResult.from_dict(d["result"]),
            inputs=InputKey.from_dict(d["inputs"]) if d.get("inputs") is not None else None,
        )
