"""Column-level lineage: for each column a stage writes, the source dataset columns it is
computed from.

The physical plan says it exactly, for DataFrame pipelines and planned SQL alike: a stage is
SQL steps over named relations, and each relation is a source, an upstream stage of the same
plan or an earlier step. Each SQL step is qualified and traced with sqlglot's lineage (its
scope machinery) over the columns of the relations it reads; a column of an upstream stage
stands for that stage's own lineage, so every column traces back to source datasets, however
many exchanges lie between.

What cannot be traced is left out, never guessed: a Python step other than `filter` makes
its output columns opaque (they exist, their origins are unknown), and a stage whose SQL
sqlglot cannot read, or whose source schema is unknown, has no column lineage (None).
Columns are matched without regard to case, as DuckDB does.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from pond_core.plan.logical import PyMethod
from pond_core.plan.physical import ExchangeOutput, PhysicalPlan, PythonStep, Schema, SourceInput, SqlStep, Stage, UpstreamInput
from pond_core.plan.sql import bind
from pond_core.sql_quote import quote_ident
from pond_core.textenum import TextEnum

log = logging.getLogger("pond")

# Columns pond adds (bucket tags, partial aggregates between stages): traced through, like any
# column, but never reported as a column the stage writes for its user.
INTERNAL_PREFIX = "__pond"


class Transformation(TextEnum):
    """How an output column is derived from a source column (OpenLineage's DIRECT subtypes):
    copied unchanged, computed from it row by row, or aggregated over rows."""

    IDENTITY = "identity"
    TRANSFORMATION = "transformation"
    AGGREGATION = "aggregation"

    def then(self, other: Transformation) -> Transformation:
        """This step followed by `other`: the stronger of the two."""
        return max(self, other, key=_STRENGTH.index)


_STRENGTH = [Transformation.IDENTITY, Transformation.TRANSFORMATION, Transformation.AGGREGATION]


@dataclasses.dataclass(frozen=True, order=True)
class SourceColumn:
    """A column of a source dataset (its URI as lineage names it: the path as written), and how
    the output column is derived from it. `how` does not change which column it is, so it takes
    no part in equality or ordering."""

    dataset: str
    column: str
    how: Transformation = dataclasses.field(default=Transformation.IDENTITY, compare=False)

    def to_dict(self) -> dict[str, str]:
        return {"dataset": self.dataset, "column": self.column, "transformation": self.how.value}

    def then(self, how: Transformation) -> SourceColumn:
        return dataclasses.replace(self, how=self.how.then(how))


def _merge(origins: Iterable[SourceColumn]) -> frozenset[SourceColumn]:
    """One entry per source column, reached by several paths: the strongest derivation wins."""
    merged: dict[SourceColumn, SourceColumn] = {}
    for origin in origins:
        seen = merged.get(origin)
        merged[origin] = origin if seen is None else dataclasses.replace(seen, how=seen.how.then(origin.how))
    return frozenset(merged.values())


# An output column -> the source columns it is computed from (empty: a constant, count(*) or
# an opaque Python step). Ordered like the stage's output.
ColumnLineage = dict[str, tuple[SourceColumn, ...]]

# A relation's columns, in order, each with its origins; keys as the relation names them.
_Relation = dict[str, frozenset[SourceColumn]]

SourceSchemas = Callable[[SourceInput], "Schema | None"]


class PlanLineage:
    """The column lineage of a plan's stages, traced on demand (a stage and its upstream
    closure only), each source described once. `source_schema` gives a source input's
    columns, None when unknown."""

    def __init__(self, plan: PhysicalPlan, source_schema: SourceSchemas) -> None:
        self.plan = plan
        self._source_schema = source_schema
        self._sources: dict[str, Schema | None] = {}
        self._outputs: dict[str, _Relation | None] = {}
        self._lock = threading.Lock()  # a run's stages finish on several threads

    def stage(self, stage_id: str) -> ColumnLineage | None:
        """The columns the stage writes, each with the source columns it is computed from."""
        with self._lock:
            relation = self._output(stage_id)
        if relation is None:
            return None
        return {c: tuple(sorted(o)) for c, o in relation.items() if not c.startswith(INTERNAL_PREFIX)}

    def _output(self, stage_id: str) -> _Relation | None:
        if stage_id not in self._outputs:
            stage = self.plan.stage(stage_id)
            for upstream in stage.depends_on:
                self._output(upstream)
            self._outputs[stage_id] = _stage_output(stage, self._outputs, self._schema)
        return self._outputs[stage_id]

    def _schema(self, inp: SourceInput) -> Schema | None:
        key = json.dumps(inp.source.to_dict(), sort_keys=True)
        if key not in self._sources:
            self._sources[key] = self._source_schema(inp)
        return self._sources[key]


def to_json(lineage: ColumnLineage) -> dict[str, list[dict[str, str]]]:
    return {column: [s.to_dict() for s in sources] for column, sources in lineage.items()}


def matching_case(lineage: ColumnLineage, schema: Schema | None) -> ColumnLineage:
    """`lineage` with its column names spelt as the written schema spells them (SQL parsing
    folds unquoted names to lower case; DuckDB keeps the case the data has)."""
    if not schema:
        return lineage
    spelt = {name.lower(): name for name, _ in schema}
    return {spelt.get(c.lower(), c): sources for c, sources in lineage.items()}


def _stage_output(stage: Stage, done: Mapping[str, _Relation | None], source_schema: SourceSchemas) -> _Relation | None:
    relations: dict[str, _Relation] = {}
    for inp in stage.inputs:
        if isinstance(inp, UpstreamInput):
            upstream = done.get(inp.stage)
            if upstream is None:
                return None
            relations[inp.name] = upstream
        else:
            schema = source_schema(inp)
            if schema is None:
                return None
            relations[inp.name] = {name: frozenset(SourceColumn(path, name) for path in inp.source.paths) for name, _ in schema}
    for step in stage.steps:
        traced = _sql_step(step, relations) if isinstance(step, SqlStep) else _python_step(step, relations)
        if traced is None:
            return None
        relations[step.id] = traced
    result = relations.get(stage.result)
    if result is None:
        return None
    keep = stage.output.columns if isinstance(stage.output, ExchangeOutput) else None
    wanted = None if keep is None else {c.lower() for c in keep}
    return {c: o for c, o in result.items() if wanted is None or c.lower() in wanted}


def _python_step(step: PythonStep, relations: Mapping[str, _Relation]) -> _Relation | None:
    source = relations.get(step.inputs[0]) if step.inputs else None
    if source is None:
        return None
    if step.method is PyMethod.FILTER:
        return dict(source)
    if step.schema is None:
        return None
    return {name: frozenset() for name, _ in step.schema}


def _sql_step(step: SqlStep, relations: Mapping[str, _Relation]) -> _Relation | None:
    """The step's output columns and their origins, traced by sqlglot over the inputs' columns."""
    import sqlglot
    from sqlglot.errors import SqlglotError
    from sqlglot.lineage import lineage

    if any(name not in relations for name in step.inputs):
        return None
    schema = {name: {column: "UNKNOWN" for column in relations[name]} for name in step.inputs}
    folded = {name.lower(): {c.lower(): o for c, o in relations[name].items()} for name in step.inputs}
    try:
        sql = bind(step.query, [quote_ident(name) for name in step.inputs])
        nodes = lineage(None, sqlglot.parse_one(sql, dialect="duckdb"), schema=schema, dialect="duckdb", copy=False)
        return {column: _merge(_origins(node, Transformation.IDENTITY, folded)) for column, node in nodes.items()}
    except (SqlglotError, KeyError, IndexError, ValueError) as exc:  # sqlglot cannot read this SQL
        log.warning("column lineage: step %s not traced (%s: %s)", step.id, type(exc).__name__, exc)
        return None


def _origins(node: Any, how: Transformation, relations: Mapping[str, _Relation]) -> Iterator[SourceColumn]:
    """The source columns under a sqlglot lineage node, each with how the path from the output
    column down to it derives it (every hop on the path counts)."""
    import sqlglot

    how = how.then(_hop(node.expression))
    if node.downstream:
        for child in node.downstream:
            yield from _origins(child, how, relations)
    elif isinstance(node.source, sqlglot.exp.Table):
        name = sqlglot.exp.to_column(node.name, dialect="duckdb").name
        for origin in relations.get(node.source.name.lower(), {}).get(name.lower(), frozenset()):
            yield origin.then(how)


def _hop(expression: Any) -> Transformation:
    """How one select expression derives its value: a bare column copies it, an aggregate
    (also over a window) aggregates, anything else computes."""
    import sqlglot

    inner = expression.unalias() if isinstance(expression, sqlglot.exp.Alias) else expression
    if isinstance(inner, (sqlglot.exp.Column, sqlglot.exp.Table)):
        return Transformation.IDENTITY
    if inner.find(sqlglot.exp.AggFunc) is not None:
        return Transformation.AGGREGATION
    return Transformation.TRANSFORMATION
