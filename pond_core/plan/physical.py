"""Physical plan: stages × partitions, as pure data that round-trips through versioned JSON.

A stage reads its inputs (sources or upstream stages' committed outputs), runs a small DAG of
steps (SQL views and Python transforms) per partition in one DuckDB connection, and writes one
output: plain files, an exchange (buckets for the next stage) or a sink (a user dataset).

Inputs, steps and outputs are tagged unions (one dataclass per kind); the tag appears only in
their JSON form, which is the plan's boundary with orchestrators and other processes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Union

from pond_core.errors import PondSerializationError
from pond_core.plan.logical import PyMethod, RepartitionMethod, SourceSpec, UdfSpec, content_id
from pond_core.plan.pyfunc import PyFunc
from pond_core.specs.sink import SinkSpec
from pond_core.textenum import TextEnum

PLAN_FORMAT = "pond.physical-plan"
PLAN_VERSION = 2  # 2: tagged inputs, steps and outputs; the sink spec in full

Schema = tuple[tuple[str, str], ...]  # (column, DuckDB type)


class Split(TextEnum):
    """How a stage's partition k maps onto one input."""

    ALL = "all"  # every partition reads every file (single-partition stages, broadcasts, gathers)
    BUCKET = "bucket"  # partition k reads bucket k of an upstream exchange
    FILES = "files"  # the input's files, in order, split into contiguous even groups
    ROWS = "rows"  # the input's rows, in order, split into contiguous even ranges


# -- inputs --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SourceInput:
    """Files named by the user (paths, globs, s3:// URLs)."""

    name: str
    source: SourceSpec
    split: Split = Split.ALL

    kind = "source"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "source": self.source.to_dict(), "split": self.split.value}


@dataclasses.dataclass(frozen=True)
class UpstreamInput:
    """The committed output of an upstream stage of the same plan."""

    name: str
    stage: str  # the upstream stage's id
    split: Split = Split.ALL

    kind = "upstream"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "stage": self.stage, "split": self.split.value}


StageInput = Union[SourceInput, UpstreamInput]


def input_from_dict(d: Mapping[str, Any]) -> StageInput:
    split = Split(d["split"])
    if d["kind"] == "source":
        return SourceInput(d["name"], SourceSpec.from_dict(d["source"]), split)
    if d["kind"] == "upstream":
        return UpstreamInput(d["name"], d["stage"], split)
    raise PondSerializationError(f"unknown stage input kind {d['kind']!r}")


# -- steps ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SqlStep:
    """A view: SQL over named relations (`{i}` is input i), with the UDFs it calls."""

    id: str
    inputs: tuple[str, ...]
    query: str
    udfs: tuple[UdfSpec, ...] = ()
    setup: tuple[str, ...] = ()  # statements the task runs first (`{i}` bound as in query)

    kind = "sql"

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind, "id": self.id, "inputs": list(self.inputs), "query": self.query, "udfs": [u.to_dict() for u in self.udfs]}
        if self.setup:  # only when set, so other steps keep their ids
            d["setup"] = list(self.setup)
        return d

    def identity(self) -> dict[str, Any]:
        """What defines the step's result (a pickled function is identified by its digest)."""
        d = self.to_dict()
        d["udfs"] = [[u.name, u.func.digest, list(u.params), u.return_type] for u in self.udfs]
        return d


@dataclasses.dataclass(frozen=True)
class PythonStep:
    """A Python transform of one relation: map, filter, flat_map or map_batches."""

    id: str
    inputs: tuple[str, ...]
    method: PyMethod
    func: PyFunc
    schema: Schema | None = None
    batch_size: int = 122880
    streaming: bool = False

    kind = "python"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "id": self.id, "inputs": list(self.inputs), "method": self.method.value,
            "func": self.func.to_dict(), "schema": _schema_json(self.schema), "batch_size": self.batch_size,
            "streaming": self.streaming,
        }

    def identity(self) -> dict[str, Any]:
        return {**self.to_dict(), "func": self.func.digest}

    @property
    def label(self) -> str:
        return f"{self.method.value}({self.func.label})"


Step = Union[SqlStep, PythonStep]


def step_from_dict(d: Mapping[str, Any]) -> Step:
    if d["kind"] == "sql":
        return SqlStep(
            d["id"], tuple(d["inputs"]), d["query"], tuple(UdfSpec.from_dict(u) for u in d.get("udfs") or ()), tuple(d.get("setup") or ()),
        )
    if d["kind"] == "python":
        return PythonStep(
            d["id"], tuple(d["inputs"]), PyMethod(d["method"]), PyFunc.from_dict(d["func"]), _schema_from_json(d.get("schema")),
            int(d["batch_size"]), bool(d["streaming"]),
        )
    raise PondSerializationError(f"unknown step kind {d['kind']!r}")


# -- outputs -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FilesOutput:
    """One file set per partition, read by later stages or returned to the user."""

    kind = "files"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}


@dataclasses.dataclass(frozen=True)
class ExchangeOutput:
    """Rows bucketed for the next stage: by hash of `keys`, by the value of `expr`, or at random."""

    method: RepartitionMethod  # hash, value or random
    npartitions: int  # number of buckets
    keys: tuple[str, ...] = ()
    expr: str | None = None
    columns: tuple[str, ...] | None = None  # the only columns consumers read; None: all

    kind = "exchange"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "method": self.method.value, "npartitions": self.npartitions, "keys": list(self.keys),
            "expr": self.expr, "columns": None if self.columns is None else list(self.columns),
        }


@dataclasses.dataclass(frozen=True)
class SinkOutput:
    """A user dataset, written and committed atomically per the spec's mode."""

    sink: SinkSpec

    kind = "sink"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "sink": self.sink.to_dict()}


@dataclasses.dataclass(frozen=True)
class BucketedFilesOutput:
    """The files of `npartitions` partitions written by ONE task, each row tagged with its
    partition in the column `BUCKET_COLUMN` (a fused stage: see plan/fuse.py). The manifest
    lists them as `npartitions` partitions, as if each had been its own task."""

    npartitions: int

    kind = "bucketed_files"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "npartitions": self.npartitions}


BUCKET_COLUMN = "__pond_b"
# The DuckDB variable each task sets to its partition index: getvariable('pond_partition').
PARTITION_VARIABLE = "pond_partition"

StageOutput = Union[FilesOutput, ExchangeOutput, SinkOutput, BucketedFilesOutput]
FILES = FilesOutput()


def output_from_dict(d: Mapping[str, Any]) -> StageOutput:
    if d["kind"] == "files":
        return FILES
    if d["kind"] == "exchange":
        columns = d.get("columns")
        return ExchangeOutput(
            RepartitionMethod(d["method"]), int(d["npartitions"]), tuple(d.get("keys") or ()), d.get("expr"),
            None if columns is None else tuple(columns),
        )
    if d["kind"] == "sink":
        return SinkOutput(SinkSpec.from_dict(d["sink"]))
    if d["kind"] == "bucketed_files":
        return BucketedFilesOutput(int(d["npartitions"]))
    raise PondSerializationError(f"unknown stage output kind {d['kind']!r}")


# -- stages and plans ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Stage:
    id: str
    name: str
    inputs: tuple[StageInput, ...]
    steps: tuple[Step, ...]
    result: str  # the relation (input or step id) whose rows the stage writes
    npartitions: int  # 0: one partition per group of source files, decided when the stage runs
    output: StageOutput
    description: str = ""
    task_threads: int | None = None  # per-task DuckDB threads for this stage; None: the run's
    task_memory: int | None = None  # per-task memory (bytes) for this stage; None: the run's

    @property
    def depends_on(self) -> list[str]:
        return sorted({i.stage for i in self.inputs if isinstance(i, UpstreamInput)})

    @property
    def sql(self) -> list[str]:
        return [s.query for s in self.steps if isinstance(s, SqlStep) and s.query]

    @property
    def sources(self) -> list[SourceInput]:
        return [i for i in self.inputs if isinstance(i, SourceInput)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "inputs": [i.to_dict() for i in self.inputs],
            "steps": [s.to_dict() for s in self.steps],
            "result": self.result,
            "npartitions": self.npartitions,
            "output": self.output.to_dict(),
            "description": self.description,
            **{k: v for k, v in (("task_threads", self.task_threads), ("task_memory", self.task_memory)) if v is not None},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Stage:
        return cls(
            id=d["id"],
            name=d["name"],
            inputs=tuple(input_from_dict(i) for i in d["inputs"]),
            steps=tuple(step_from_dict(s) for s in d["steps"]),
            result=d["result"],
            npartitions=int(d["npartitions"]),
            output=output_from_dict(d["output"]),
            description=d.get("description", ""),
            task_threads=d.get("task_threads"),
            task_memory=d.get("task_memory"),
        )


def stage_id(inputs: tuple[StageInput, ...], steps: tuple[Step, ...], result: str, npartitions: int, output: StageOutput) -> str:
    return content_id(
        [i.to_dict() for i in inputs], [s.identity() for s in steps], result, npartitions, output.to_dict()
    )


@dataclasses.dataclass(frozen=True)
class PhysicalPlan:
    stages: tuple[Stage, ...]
    pipeline: str | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, stage_id_or_name: str) -> Stage:
        for s in self.stages:
            if s.id == stage_id_or_name or s.name == stage_id_or_name:
                return s
        raise KeyError(f"no stage {stage_id_or_name!r} in this plan (stages: {', '.join(s.name for s in self.stages)})")

    @property
    def fingerprint(self) -> str:
        return content_id([s.id for s in self.stages])

    def to_dict(self) -> dict[str, Any]:
        body = {
            "stages": [s.to_dict() for s in self.stages],
            "pipeline": self.pipeline,
            "params": self.params,
        }
        return {"format": PLAN_FORMAT, "version": PLAN_VERSION, "checksum": _checksum(body), **body}

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PhysicalPlan:
        if d.get("format") != PLAN_FORMAT:
            raise PondSerializationError(f"not a pond physical plan (format {d.get('format')!r})")
        if d.get("version") != PLAN_VERSION:
            raise PondSerializationError(
                f"plan version {d.get('version')!r} is not supported by this pond (it reads version {PLAN_VERSION}); recompile the pipeline"
            )
        body = {k: d.get(k) for k in ("stages", "pipeline", "params")}
        if d.get("checksum") != _checksum(body):
            raise PondSerializationError("plan checksum does not match its content: the plan JSON was modified after it was compiled")
        stages = tuple(Stage.from_dict(s) for s in body["stages"] or ())
        for s in stages:
            expected = stage_id(s.inputs, s.steps, s.result, s.npartitions, s.output)
            if expected != s.id:
                raise PondSerializationError(f"stage {s.name} has id {s.id} but its definition hashes to {expected}")
        return cls(stages=stages, pipeline=body["pipeline"], params=body["params"] or {})

    @classmethod
    def from_json(cls, text: str) -> PhysicalPlan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PondSerializationError(f"plan is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise PondSerializationError(f"a plan is a JSON object, not {type(data).__name__}")
        return cls.from_dict(data)

    def render(self) -> str:
        lines = []
        for s in self.stages:
            parts = "auto" if s.npartitions == 0 else str(s.npartitions)
            lines.append(f"{s.name} ({s.id}) partitions={parts} output={describe_output(s.output)}")
            if isinstance(s.output, BucketedFilesOutput):
                lines.append(f"    why: {s.description}")
            for i in s.inputs:
                what = f"stage {self.stage(i.stage).name}" if isinstance(i, UpstreamInput) else f"{i.source.format} {', '.join(i.source.paths[:3])}"
                lines.append(f"    input {i.name}: {what} [{i.split.value}]")
            for st in s.steps:
                body = " ".join(st.query.split()) if isinstance(st, SqlStep) else st.label
                lines.append(f"    step {st.id}: {body}")
        return "\n".join(lines)


def describe_output(output: StageOutput) -> str:
    if isinstance(output, ExchangeOutput):
        text = f"exchange {output.method.value}→{output.npartitions}"
        return text + (f" columns={list(output.columns)}" if output.columns is not None else "")
    if isinstance(output, SinkOutput):
        return f"sink {output.sink.path}"
    if isinstance(output, BucketedFilesOutput):
        return f"files in {output.npartitions} partitions, written by one task"
    return "files"


def _checksum(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _schema_json(schema: Schema | None) -> list[list[str]] | None:
    return None if schema is None else [list(c) for c in schema]


def _schema_from_json(value: Any) -> Schema | None:
    return None if value is None else tuple((str(n), str(t)) for n, t in value)
