"""Compile a logical plan into stages, cutting at every exchange.

A stage holds every per-partition node between its inputs (sources or upstream exchanges) and
its output, so consecutive steps run as one DuckDB query over chained views. Compiling reads no
data and starts nothing; the same logical plan always gives the same stage ids.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Iterator
from typing import Any

from pond_core.plan import naming
from pond_core.plan.fuse import fuse_co_partitioned
from pond_core.plan.logical import Limit, Node, PyMap, Read, Repartition, RepartitionMethod, Sql, walk
from pond_core.plan.optimize import optimize
from pond_core.plan.physical import (
    FILES,
    ExchangeOutput,
    PhysicalPlan,
    PythonStep,
    SinkOutput,
    SourceInput,
    Split,
    SqlStep,
    Stage,
    StageInput,
    StageOutput,
    Step,
    UpstreamInput,
    stage_id,
)
from pond_core.plan.sql import referenced_columns_of


@dataclasses.dataclass(frozen=True)
class CompileOptions:
    """Choices that depend on where the plan will run (the logical plan means the same)."""

    # One machine: a stage reading hash exchanges runs as one task over their inputs, and the
    # exchanges are not written (plan/fuse.py). Never for plans an orchestrator runs stage by
    # stage, nor on a cluster of several nodes.
    fuse_co_partitioned: bool = False


def compile_plan(
    root: Node,
    output: StageOutput = FILES,
    *,
    pipeline: str | None = None,
    params: dict[str, Any] | None = None,
    options: CompileOptions = CompileOptions(),
) -> PhysicalPlan:
    with _recursion_room(len(walk(root))):
        builder = _Builder(pipeline)
        builder.stage_for(optimize(root), output)
    stages = _prune_exchange_columns(naming.unique(builder.stages))
    if options.fuse_co_partitioned:
        stages = fuse_co_partitioned(stages)
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
    def __init__(self, pipeline: str | None = None) -> None:
        self.pipeline = pipeline  # names the sink's stage (naming.sink_name)
        self.stages: list[Stage] = []
        self.relations: dict[str, str] = {}  # stage id -> what its rows are called (naming.py)

    def stage_for(self, node: Node, output: StageOutput, exchanged: Repartition | None = None) -> Stage:
        """The stage computing `node` into `output` (`exchanged`: the repartition it serves)."""
        ctx = _StageContext(self, node.npartitions)
        if isinstance(output, ExchangeOutput) and isinstance(node, Read):
            # Nothing to compute before the exchange: split the files over many producers.
            ctx.npartitions = 0
            result = ctx.add_input(SourceInput("", node.source, Split.FILES), _read_name(node))
        else:
            result = ctx.relation(node)
        for asked in (node, exchanged):
            if asked is not None:
                ctx.note_resources(asked)
        inputs, steps = tuple(ctx.inputs), tuple(ctx.steps)
        sid = stage_id(inputs, steps, result, ctx.npartitions, output)
        for existing in self.stages:
            if existing.id == sid:
                return existing
        relation = node.name if node.name else naming.joined(ctx.relations.values())
        self.relations[sid] = relation
        stage = Stage(
            id=sid,
            name=_stage_name(ctx, node, output, exchanged, relation),
            inputs=inputs,
            steps=steps,
            result=result,
            npartitions=ctx.npartitions,
            output=output,
            description=node.label(),
            task_threads=ctx.task_threads,
            task_memory=ctx.task_memory,
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
        self.relations: dict[str, str] = {}  # input name -> what its rows are called
        self.task_threads: int | None = None
        self.task_memory: int | None = None

    def add_input(self, spec: StageInput, relation: str) -> str:
        for existing in self.inputs:
            if dataclasses.replace(existing, name="") == spec:
                return existing.name
        name = f"in{len(self.inputs)}"
        self.inputs.append(dataclasses.replace(spec, name=name))
        self.relations[name] = relation
        return name

    def add_sql(self, inputs: tuple[str, ...], query: str, udfs: tuple[Any, ...] = (), setup: tuple[str, ...] = ()) -> str:
        name = f"s{len(self.steps)}"
        self.steps.append(SqlStep(name, inputs, query, udfs, setup))
        return name

    def note_resources(self, node: Node) -> None:
        """A node computed in this stage asks for threads or memory: the stage takes the most."""
        if node.task_threads is not None:
            self.task_threads = max(self.task_threads or 0, node.task_threads)
        if node.task_memory is not None:
            self.task_memory = max(self.task_memory or 0, node.task_memory)

    def add_python(self, node: PyMap) -> str:
        inputs = (self.relation(node.inputs[0]),)  # first: building the input may add steps
        name = f"s{len(self.steps)}"
        self.steps.append(PythonStep(name, inputs, node.method, node.func, node.schema, node.batch_size, node.streaming))
        return name

    def upstream(self, node: Node, output: StageOutput = FILES, split: Split = Split.ALL, exchanged: Repartition | None = None) -> str:
        """An input reading the stage that computes `node`."""
        stage = self.builder.stage_for(node, output, exchanged)
        return self.add_input(UpstreamInput("", stage.id, split), self.builder.relations[stage.id])

    def relation(self, node: Node) -> str:
        if node.id not in self.names:
            self.names[node.id] = self._build(node)
        return self.names[node.id]

    def _build(self, node: Node) -> str:
        if isinstance(node, Read):
            return self.add_input(SourceInput("", node.source, Split.ALL), _read_name(node))
        if isinstance(node, Repartition):
            return self._exchange(node)
        if isinstance(node, Limit):
            return self._limit(node)
        if node.npartitions == 1 and self.npartitions > 1:
            # A single-partition result used by every partition: compute it once, broadcast it.
            return self.upstream(node)
        if isinstance(node, Sql):
            self.note_resources(node)
            return self.add_sql(tuple(self.relation(i) for i in node.inputs), node.query, node.udfs, node.setup)
        if isinstance(node, PyMap):
            self.note_resources(node)
            return self.add_python(node)
        raise TypeError(f"cannot compile node {node.kind}")

    def _exchange(self, node: Repartition) -> str:
        child = node.inputs[0]
        if node.n == 1:
            return self.upstream(child)
        if not node.method.is_exchange:
            split = Split.FILES if node.method is RepartitionMethod.FILES else Split.ROWS
            if isinstance(child, Read):
                return self.add_input(SourceInput("", child.source, split), _read_name(child))
            return self.upstream(child, split=split)
        out = ExchangeOutput(node.method, node.n, node.keys, node.expr)
        return self.upstream(child, out, Split.BUCKET, exchanged=node)

    def _limit(self, node: Limit) -> str:
        child = node.inputs[0]
        query = f"SELECT * FROM {{0}} LIMIT {node.n}"
        if child.npartitions == 1:
            return self.add_sql((self.relation(child),), query)
        # Each partition keeps at most n rows; one task then keeps the first n of them all.
        gathered = self.upstream(Sql(inputs=(child,), query=query))
        return self.add_sql((gathered,), query)


def _read_name(node: Read) -> str:
    return node.name or naming.source_name(node.source.paths)


def _stage_name(ctx: _StageContext, node: Node, output: StageOutput, exchanged: Repartition | None, relation: str) -> str:
    """The user's name for what the stage produces, else one derived from what it does."""
    if isinstance(output, ExchangeOutput):
        if exchanged is not None and exchanged.name:
            return exchanged.name
        return naming.exchange_name(relation, output.method.value, output.keys, output.expr)
    if node.name and not isinstance(node, Read):
        return node.name
    if isinstance(output, SinkOutput):
        return naming.sink_name(ctx.builder.pipeline, relation)
    queries = [s.query for s in ctx.steps if isinstance(s, SqlStep)]
    methods = [s.method.value for s in ctx.steps if isinstance(s, PythonStep)]
    sources = all(isinstance(i, SourceInput) for i in ctx.inputs)
    return naming.compute_name(relation, queries, methods, sources)


def _prune_exchange_columns(stages: list[Stage]) -> list[Stage]:
    """Write through an exchange only the columns its consumers' SQL can reference.

    Rebuilding a producer changes its id, so consumers are re-identified in topological order.
    """
    renamed: dict[str, str] = {}
    out: list[Stage] = []
    for stage in stages:
        inputs = tuple(
            dataclasses.replace(i, stage=renamed.get(i.stage, i.stage)) if isinstance(i, UpstreamInput) else i
            for i in stage.inputs
        )
        output = stage.output
        if isinstance(output, ExchangeOutput):
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
            if not isinstance(inp, UpstreamInput) or inp.stage != producer_id:
                continue
            if consumer.result == inp.name:
                return None
            users = [s for s in consumer.steps if inp.name in s.inputs]
            for step in users:
                if not isinstance(step, SqlStep):
                    return None
                # Each placeholder its own table name, so `o.amount` counts for `o`'s input only.
                query = step.query.format(*[f"__pond_rel{i}" for i in range(len(step.inputs))])
                refs: frozenset[str] | None = frozenset()
                for i, name in enumerate(step.inputs):
                    if name == inp.name:
                        found = referenced_columns_of(query, f"__pond_rel{i}")
                        refs = None if found is None or refs is None else refs | found
                if refs is None:
                    return None
                needed |= refs
    return needed
