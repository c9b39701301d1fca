"""Compile a logical plan into stages, cutting at every exchange.

A stage holds every per-partition node between its inputs (sources or upstream exchanges) and
its output, so consecutive steps run as one DuckDB query over chained views. Compiling reads no
data and starts nothing; the same logical plan always gives the same stage ids.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from typing import Any, Iterator

from pond_core.plan.logical import Limit, Node, PyMap, Read, Repartition, Sql, walk
from pond_core.plan.optimize import optimize
from pond_core.plan.physical import PhysicalPlan, Stage, StageInput, StageOutput, Step, stage_id
from pond_core.plan.sql import referenced_columns

FILES = StageOutput(kind="files")


def compile_plan(
    root: Node,
    output: StageOutput = FILES,
    *,
    pipeline: str | None = None,
    params: dict[str, Any] | None = None,
) -> PhysicalPlan:
    with _recursion_room(len(walk(root))):
        builder = _Builder()
        builder.stage_for(optimize(root), output)
    stages = _prune_exchange_columns(builder.stages)
    return PhysicalPlan(stages=tuple(stages), pipeline=pipeline, params=dict(params or {}))


@contextlib.contextmanager
def _recursion_room(nodes: int) -> Iterator[None]:
    """The compiler recurses once per plan level (a few frames each); give deep plans room."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, 1000 + 8 * nodes))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


class _Builder:
    def __init__(self) -> None:
        self.stages: list[Stage] = []

    def stage_for(self, node: Node, output: StageOutput) -> Stage:
        ctx = _StageContext(self, node.npartitions)
        if output.kind == "exchange" and isinstance(node, Read):
            # Nothing to compute before the exchange: split the files over many producers.
            ctx.npartitions = 0
            result = ctx.add_input(StageInput(name="", source=node.source, split="files"))
        else:
            result = ctx.relation(node)
        inputs, steps = tuple(ctx.inputs), tuple(ctx.steps)
        sid = stage_id(inputs, steps, result, ctx.npartitions, output)
        for existing in self.stages:
            if existing.id == sid:
                return existing
        stage = Stage(
            id=sid,
            name=f"{len(self.stages) + 1:02d}_{_stage_kind(node, output)}",
            inputs=inputs,
            steps=steps,
            result=result,
            npartitions=ctx.npartitions,
            output=output,
            description=node.label(),
        )
        self.stages.append(stage)
        return stage


class _StageContext:
    """Collects the inputs and steps of one stage while walking its nodes."""

    def __init__(self, builder: _Builder, npartitions: int) -> None:
        self.builder = builder
        self.npartitions = npartitions
        self.inputs: list[StageInput] = []
        self.steps: list[Step] = []
        self.names: dict[str, str] = {}

    def add_input(self, spec: StageInput) -> str:
        for existing in self.inputs:
            if (existing.source, existing.stage, existing.split) == (spec.source, spec.stage, spec.split):
                return existing.name
        name = f"in{len(self.inputs)}"
        self.inputs.append(dataclasses.replace(spec, name=name))
        return name

    def add_step(self, **fields: Any) -> str:
        name = f"s{len(self.steps)}"
        self.steps.append(Step(id=name, **fields))
        return name

    def relation(self, node: Node) -> str:
        if node.id not in self.names:
            self.names[node.id] = self._build(node)
        return self.names[node.id]

    def _build(self, node: Node) -> str:
        if isinstance(node, Read):
            return self.add_input(StageInput(name="", source=node.source, split="all"))
        if isinstance(node, Repartition):
            return self._exchange(node)
        if isinstance(node, Limit):
            return self._limit(node)
        if node.npartitions == 1 and self.npartitions > 1:
            # A single-partition result used by every partition: compute it once, broadcast it.
            upstream = self.builder.stage_for(node, FILES)
            return self.add_input(StageInput(name="", stage=upstream.id, split="all"))
        if isinstance(node, Sql):
            names = tuple(self.relation(i) for i in node.inputs)
            return self.add_step(kind="sql", inputs=names, query=node.query, udfs=node.udfs)
        if isinstance(node, PyMap):
            return self.add_step(
                kind="python",
                inputs=(self.relation(node.inputs[0]),),
                method=node.method,
                func=node.func,
                schema=node.schema,
                batch_size=node.batch_size,
                streaming=node.streaming,
            )
        raise TypeError(f"cannot compile node {node.kind}")

    def _exchange(self, node: Repartition) -> str:
        child = node.inputs[0]
        if node.n == 1:
            upstream = self.builder.stage_for(child, FILES)
            return self.add_input(StageInput(name="", stage=upstream.id, split="all"))
        if node.method in ("files", "rows"):
            if isinstance(child, Read):
                return self.add_input(StageInput(name="", source=child.source, split=node.method))
            upstream = self.builder.stage_for(child, FILES)
            return self.add_input(StageInput(name="", stage=upstream.id, split=node.method))
        out = StageOutput(kind="exchange", method=node.method, keys=node.keys, expr=node.expr, npartitions=node.n)
        upstream = self.builder.stage_for(child, out)
        return self.add_input(StageInput(name="", stage=upstream.id, split="bucket"))

    def _limit(self, node: Limit) -> str:
        child = node.inputs[0]
        query = f"SELECT * FROM {{0}} LIMIT {node.n}"
        if child.npartitions == 1:
            return self.add_step(kind="sql", inputs=(self.relation(child),), query=query)
        # Each partition keeps at most n rows; one task then keeps the first n of them all.
        partial = Sql(inputs=(child,), query=query)
        upstream = self.builder.stage_for(partial, FILES)
        gathered = self.add_input(StageInput(name="", stage=upstream.id, split="all"))
        return self.add_step(kind="sql", inputs=(gathered,), query=query)


def _stage_kind(node: Node, output: StageOutput) -> str:
    if output.kind == "exchange":
        return f"{output.method}_exchange"
    if output.kind == "sink":
        return "write"
    if isinstance(node, PyMap):
        return node.method
    return node.kind


def _prune_exchange_columns(stages: list[Stage]) -> list[Stage]:
    """Write through an exchange only the columns its consumers' SQL can reference.

    Rebuilding a producer changes its id, so consumers are re-identified in topological order.
    """
    renamed: dict[str, str] = {}
    out: list[Stage] = []
    for stage in stages:
        inputs = tuple(
            dataclasses.replace(i, stage=renamed.get(i.stage, i.stage)) if i.stage else i for i in stage.inputs
        )
        output = stage.output
        if output.kind == "exchange":
            columns = _columns_needed(stage.id, stages)
            if columns is not None:
                output = dataclasses.replace(output, columns=tuple(sorted(columns)))
        new_id = stage_id(inputs, stage.steps, stage.result, stage.npartitions, output)
        renamed[stage.id] = new_id
        out.append(dataclasses.replace(stage, id=new_id, inputs=inputs, output=output))
    return out


def _columns_needed(producer_id: str, stages: list[Stage]) -> set[str] | None:
    needed: set[str] = set()
    for consumer in stages:
        for inp in consumer.inputs:
            if inp.stage != producer_id:
                continue
            if consumer.result == inp.name:
                return None
            users = [s for s in consumer.steps if inp.name in s.inputs]
            for step in users:
                if step.kind != "sql" or step.query is None:
                    return None
                refs = referenced_columns(step.query.format(*["__pond_rel"] * len(step.inputs)))
                if refs is None:
                    return None
                needed |= refs
    return needed
