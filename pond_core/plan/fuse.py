"""Fuse a co-partitioned stage with the hash exchanges it reads, when the plan runs on one machine.

`a.repartition(8, hash_by="k")` and `b.repartition(8, hash_by="k")` joined per partition is the
shape distribution exists for; on one machine it pays for writing both inputs again as Parquet
and for eight small joins, which together cost two to three times DuckDB's single join. When
one process holds all the data there is nothing to move: the fused stage reads the exchanges'
inputs directly, tags every row with the partition the exchange would have sent it to
(`__pond_b`, the same hash), and runs the per-partition SQL once for all partitions, with the
partition as an extra key: joins also match on `__pond_b`, aggregates also group by it. Rows of
partition k meet exactly the rows they would have met in task k, so the result equals the
union of the per-partition results, and it is written split by `__pond_b` into the same
partitions (BucketedFilesOutput). One task, all cores, no exchange written.

Only SQL this rewrite provably keeps the meaning of is fused: one SELECT over the exchanged
inputs, inner or left joins, WHERE, GROUP BY (not global aggregates: a partition without rows
still yields a row of those), HAVING, DISTINCT; no window, ORDER BY, LIMIT, subquery, set
operation or `*`. Anything else keeps its exchanges. The unit of resume of a fused stage is the
stage: a retry or a resumed run runs its one task again from the exchanges' inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from pond_core.plan.logical import RepartitionMethod
from pond_core.plan.physical import (
    BUCKET_COLUMN,
    PARTITION_VARIABLE,
    BucketedFilesOutput,
    ExchangeOutput,
    FilesOutput,
    Split,
    SqlStep,
    Stage,
    StageInput,
    Step,
    UpstreamInput,
    stage_id,
)
from pond_core.plan.sql import input_name, inputs_as_names, names_as_inputs
from pond_core.sql_quote import quote_ident


def fuse_co_partitioned(stages: list[Stage]) -> list[Stage]:
    """The stages with every fusable consumer merged with its exchanges (ids renamed)."""
    consumers: dict[str, list[str]] = {}
    for stage in stages:
        for inp in stage.inputs:
            if isinstance(inp, UpstreamInput):
                consumers.setdefault(inp.stage, []).append(stage.id)
    by_id = {s.id: s for s in stages}
    removed: set[str] = set()
    fused: dict[str, Stage] = {}
    for stage in stages:
        producers = _fusable_producers(stage, by_id, consumers)
        if producers is None:
            continue
        merged = _fuse(stage, producers)
        if merged is not None:
            fused[stage.id] = merged
            removed.update(p.id for p in producers)
    if not fused:
        return stages
    out: list[Stage] = []
    renamed: dict[str, str] = {}
    for stage in stages:
        if stage.id in removed:
            continue
        stage = fused.get(stage.id, stage)
        inputs = tuple(
            dataclasses.replace(i, stage=renamed.get(i.stage, i.stage)) if isinstance(i, UpstreamInput) else i for i in stage.inputs
        )
        new_id = stage_id(inputs, stage.steps, stage.result, stage.npartitions, stage.output)
        renamed[stage.id] = new_id
        for old, merged in fused.items():
            if merged is stage:
                renamed[old] = new_id
        out.append(dataclasses.replace(stage, id=new_id, inputs=inputs))
    return out


def _fusable_producers(stage: Stage, by_id: dict[str, Stage], consumers: dict[str, list[str]]) -> list[Stage] | None:
    if not isinstance(stage.output, FilesOutput) or not stage.inputs or stage.npartitions < 2:
        return None
    if not all(isinstance(s, SqlStep) for s in stage.steps) or not stage.steps:
        return None
    producers = []
    for inp in stage.inputs:
        if not isinstance(inp, UpstreamInput) or inp.split is not Split.BUCKET:
            return None
        producer = by_id[inp.stage]
        out = producer.output
        if not isinstance(out, ExchangeOutput) or out.method is not RepartitionMethod.HASH or out.npartitions != stage.npartitions:
            return None
        if consumers.get(producer.id) != [stage.id] or producer.npartitions > 1:
            return None
        if any(isinstance(i, UpstreamInput) and i.split is not Split.ALL for i in producer.inputs):
            return None
        producers.append(producer)
    return producers


def _fuse(consumer: Stage, producers: list[Stage]) -> Stage | None:
    inputs: list[StageInput] = []
    steps: list[Step] = []
    bucketed: dict[str, str] = {}  # consumer input name -> the fused relation holding its rows and partition
    for i, producer in enumerate(producers):
        prefix = f"x{i}_"
        names = {inp.name: prefix + inp.name for inp in producer.inputs}
        names.update({s.id: prefix + s.id for s in producer.steps})
        for inp in producer.inputs:
            inputs.append(dataclasses.replace(inp, name=names[inp.name], split=Split.ALL))
        for s in producer.steps:
            steps.append(dataclasses.replace(s, id=names[s.id], inputs=tuple(names[n] for n in s.inputs)))
        exchange = producer.output
        assert isinstance(exchange, ExchangeOutput)
        view = f"{prefix}partitioned"
        # Every column: DuckDB reads only those the consumer's SQL uses (the exchange's column
        # list is a superset, over all its consumer's inputs).
        keys = ", ".join(quote_ident(k) for k in exchange.keys)
        steps.append(SqlStep(view, (names[producer.result],), f"SELECT *, (hash({keys}) % {exchange.npartitions})::BIGINT AS {BUCKET_COLUMN} FROM {{0}}"))
        consumer_input = next(inp for inp in consumer.inputs if isinstance(inp, UpstreamInput) and inp.stage == producer.id)
        bucketed[consumer_input.name] = view
    for s in consumer.steps:
        assert isinstance(s, SqlStep)
        if s.setup or PARTITION_VARIABLE in s.query:
            return None  # set-up statements and the partition index belong to one partition's task
        rewritten = per_partition_query(s.query, len(s.inputs))
        if rewritten is None:
            return None
        steps.append(SqlStep(s.id, tuple(bucketed.get(n, n) for n in s.inputs), rewritten, s.udfs))
        bucketed[s.id] = s.id
    exchanges = [p.name for p in producers]
    return Stage(
        id="",
        name=consumer.name,
        inputs=tuple(inputs),
        steps=tuple(steps),
        result=consumer.result,
        npartitions=1,
        output=BucketedFilesOutput(consumer.npartitions),
        description=f"{consumer.description} — fused with {', '.join(exchanges)}: one task computes all "
        f"{consumer.npartitions} partitions; the exchanges are not written (one machine)",
    )


def per_partition_query(query: str, ninputs: int) -> str | None:
    """`query` (placeholders {0}..{n-1}, every input tagged with `__pond_b`) rewritten to run
    for all partitions at once, keeping `__pond_b` in its output; None when the rewrite could
    change what the query means."""
    import sqlglot
    from sqlglot import exp

    names = [input_name(i) for i in range(ninputs)]
    try:
        tree = sqlglot.parse_one(inputs_as_names(query, ninputs), read="duckdb")
    except Exception:
        return None
    if not isinstance(tree, exp.Select) or not _plain(tree):
        return None
    tables = [tree.args.get("from_") or tree.args.get("from")] + list(tree.args.get("joins") or [])
    relations = []
    for part in tables:
        table = part.this if part is not None else None
        if not isinstance(table, exp.Table) or table.name not in names or table.args.get("db"):
            return None
        relations.append(table.alias_or_name)
    first = relations[0]

    def bucket_of(alias: str) -> exp.Column:
        # An unaliased input is qualified by its placeholder, which must stay bare: pond binds
        # it to an already quoted relation name.
        table = exp.to_identifier(alias, quoted=alias not in names)
        return exp.Column(this=exp.to_identifier(BUCKET_COLUMN, quoted=True), table=table)

    for join, alias in zip(tree.args.get("joins") or [], relations[1:]):
        if not _join_kept(join):
            return None
        using = join.args.get("using")
        if using:
            join.set("using", [*using, exp.to_identifier(BUCKET_COLUMN, quoted=True)])
            continue
        same = exp.EQ(this=bucket_of(alias), expression=bucket_of(first))
        on = join.args.get("on")
        join.set("on", exp.and_(on, same) if on is not None else same)
        if not join.args.get("side"):
            join.set("kind", "INNER")  # a cross or comma join becomes a join on the partition
    joined_using = any(j.args.get("using") for j in tree.args.get("joins") or [])
    partition = exp.column(BUCKET_COLUMN, quoted=True) if joined_using else bucket_of(first)
    aggregates = any(isinstance(e, exp.AggFunc) for e in tree.find_all(exp.AggFunc))
    group = tree.args.get("group")
    if aggregates and group is None:
        return None  # a global aggregate yields a row for an empty partition, too
    if any(e.alias_or_name == BUCKET_COLUMN for e in tree.expressions):
        return None
    tree = tree.select(exp.alias_(partition.copy(), BUCKET_COLUMN, quoted=True), copy=False)
    if group is not None and not group.args.get("all"):
        tree = tree.group_by(partition.copy(), copy=False)
    text = names_as_inputs(tree.sql(dialect="duckdb"))
    return text if "__pond_in_" not in text else None


def _plain(tree: object) -> bool:
    from sqlglot import exp

    assert isinstance(tree, exp.Select)
    forbidden = (exp.Window, exp.Order, exp.Limit, exp.Offset, exp.Subquery, exp.Union, exp.Intersect, exp.Except,
                 exp.With, exp.Lateral, exp.Unnest, exp.Qualify)
    if any(isinstance(node, forbidden) for node in tree.walk()):
        return False
    if any(isinstance(node, exp.Star) and not isinstance(node.parent, exp.Count) for node in tree.walk()):
        return False  # `*` would also select the partition column of every input
    group = tree.args.get("group")
    if group is not None and any(group.args.get(k) for k in ("grouping_sets", "rollup", "cube")):
        return False
    if any(isinstance(node, exp.Select) and node is not tree for node in tree.walk()):
        return False
    distinct = tree.args.get("distinct")
    return not (distinct is not None and distinct.args.get("on"))


def _join_kept(join: object) -> bool:
    """Inner, cross and left joins: every row of the first relation has its partition."""
    from sqlglot import exp

    assert isinstance(join, exp.Join)
    side = (join.args.get("side") or "").upper()
    kind = (join.args.get("kind") or "").upper()
    if join.args.get("method"):  # NATURAL, ASOF, POSITIONAL
        return False
    return side in ("", "LEFT") and kind in ("", "INNER", "CROSS", "OUTER")


def fused_names(stages: Sequence[Stage]) -> list[str]:
    """Names of the stages a fusion produced (for explain and tests)."""
    return [s.name for s in stages if isinstance(s.output, BucketedFilesOutput)]
