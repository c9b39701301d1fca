"""Physical plan: stages × partitions, as pure data that round-trips through versioned JSON.

A stage reads its inputs (sources or upstream stages' committed outputs), runs a small DAG of
steps (SQL views and Python transforms) per partition in one DuckDB connection, and writes one
output: plain files, an exchange (buckets for the next stage) or a sink (a user dataset).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from pond_core.errors import PondSerializationError
from pond_core.plan.logical import SourceSpec, UdfSpec, content_id
from pond_core.plan.pyfunc import PyFunc

PLAN_FORMAT = "pond.physical-plan"
PLAN_VERSION = 1

# How a stage's partition k maps onto one input:
#   all      every partition reads every file (single-partition stages, broadcasts, gathers)
#   bucket   partition k reads bucket k of an upstream exchange
#   files    the input's files, in order, split into contiguous even groups
#   rows     the input's rows, in order, split into contiguous even ranges
SPLITS = ("all", "bucket", "files", "rows")


@dataclasses.dataclass(frozen=True)
class StageInput:
    name: str
    source: SourceSpec | None = None
    stage: str | None = None
    split: str = "all"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source.to_dict() if self.source else None,
            "stage": self.stage,
            "split": self.split,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StageInput":
        src = SourceSpec.from_dict(d["source"]) if d.get("source") else None
        return cls(d["name"], src, d.get("stage"), d["split"])


@dataclasses.dataclass(frozen=True)
class Step:
    """One view inside a task: SQL over named relations, or a Python transform of one."""

    id: str
    kind: str  # "sql" | "python"
    inputs: tuple[str, ...]
    query: str | None = None
    udfs: tuple[UdfSpec, ...] = ()
    method: str | None = None
    func: PyFunc | None = None
    schema: tuple[tuple[str, str], ...] | None = None
    batch_size: int = 122880
    streaming: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["inputs"] = list(self.inputs)
        d["udfs"] = [u.to_dict() for u in self.udfs]
        d["func"] = self.func.to_dict() if self.func else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Step":
        d = dict(d)
        d["inputs"] = tuple(d["inputs"])
        d["udfs"] = tuple(UdfSpec.from_dict(u) for u in d.get("udfs") or ())
        d["func"] = PyFunc.from_dict(d["func"]) if d.get("func") else None
        if d.get("schema") is not None:
            d["schema"] = tuple(tuple(x) for x in d["schema"])
        return cls(**d)

    def identity(self) -> dict[str, Any]:
        """What defines the step's result (the pickled payload is identified by its digest)."""
        d = self.to_dict()
        if self.func:
            d["func"] = self.func.digest
        d["udfs"] = [[u.name, u.func.digest, list(u.params), u.return_type] for u in self.udfs]
        return d


@dataclasses.dataclass(frozen=True)
class StageOutput:
    """'files' (one file set per partition), 'exchange' (buckets) or 'sink' (a user dataset)."""

    kind: str
    method: str | None = None  # exchange: hash | value | random
    keys: tuple[str, ...] = ()
    expr: str | None = None
    npartitions: int | None = None  # exchange: number of buckets
    columns: tuple[str, ...] | None = None  # exchange: the only columns consumers read
    sink: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["keys"] = list(self.keys)
        d["columns"] = list(self.columns) if self.columns is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StageOutput":
        d = dict(d)
        d["keys"] = tuple(d.get("keys") or ())
        if d.get("columns") is not None:
            d["columns"] = tuple(d["columns"])
        return cls(**d)


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

    @property
    def depends_on(self) -> list[str]:
        return sorted({i.stage for i in self.inputs if i.stage})

    @property
    def sql(self) -> list[str]:
        return [s.query for s in self.steps if s.kind == "sql" and s.query]

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
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Stage":
        return cls(
            id=d["id"],
            name=d["name"],
            inputs=tuple(StageInput.from_dict(i) for i in d["inputs"]),
            steps=tuple(Step.from_dict(s) for s in d["steps"]),
            result=d["result"],
            npartitions=d["npartitions"],
            output=StageOutput.from_dict(d["output"]),
            description=d.get("description", ""),
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
    def from_dict(cls, d: dict[str, Any]) -> "PhysicalPlan":
        if d.get("format") != PLAN_FORMAT:
            raise PondSerializationError(f"not a pond physical plan (format {d.get('format')!r})")
        if d.get("version") != PLAN_VERSION:
            raise PondSerializationError(
                f"plan version {d.get('version')!r} is not supported by this pond (it reads version {PLAN_VERSION}); recompile the pipeline"
            )
        body = {k: d.get(k) for k in ("stages", "pipeline", "params")}
        if d.get("checksum") != _checksum(body):
            raise PondSerializationError("plan checksum does not match its content: the plan JSON was modified after it was compiled")
        stages = tuple(Stage.from_dict(s) for s in body["stages"])
        for s in stages:
            expected = stage_id(s.inputs, s.steps, s.result, s.npartitions, s.output)
            if expected != s.id:
                raise PondSerializationError(f"stage {s.name} has id {s.id} but its definition hashes to {expected}")
        return cls(stages=stages, pipeline=body["pipeline"], params=body["params"] or {})

    @classmethod
    def from_json(cls, text: str) -> "PhysicalPlan":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PondSerializationError(f"plan is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def render(self) -> str:
        lines = []
        for s in self.stages:
            parts = "auto" if s.npartitions == 0 else str(s.npartitions)
            out = s.output.kind
            if s.output.kind == "exchange":
                out += f" {s.output.method}→{s.output.npartitions}"
                if s.output.columns is not None:
                    out += f" columns={list(s.output.columns)}"
            elif s.output.kind == "sink":
                out += f" {s.output.sink.get('path')}"
            lines.append(f"{s.name} ({s.id}) partitions={parts} output={out}")
            for i in s.inputs:
                what = f"stage {i.stage}" if i.stage else f"{i.source.format} {', '.join(i.source.paths[:3])}"
                lines.append(f"    input {i.name}: {what} [{i.split}]")
            for st in s.steps:
                body = " ".join((st.query or "").split()) if st.kind == "sql" else f"{st.method}({st.func.label if st.func else ''})"
                lines.append(f"    step {st.id}: {body}")
        return "\n".join(lines)


def _checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
