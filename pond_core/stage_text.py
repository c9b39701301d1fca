"""A stage as people read it: its SQL with real relation names, a markdown card, log lines.

Orchestrators show this where a data engineer looks: Airflow's task docs and rendered fields,
Prefect's task run artifacts, and one log line when a stage starts and one when it finishes.
Only plan data and a stage's small result are used, never rows.
"""

from __future__ import annotations

import re

from pond_core.execute.results import StageResult
from pond_core.plan.physical import PhysicalPlan, PythonStep, SourceInput, SqlStep, Stage, UpstreamInput
from pond_core.stages import describe_output

SQL_HEAD = 120
_SPACE = re.compile(r"\s+")
_VIEW_COMMENT = re.compile(r"^-- view .*$", re.MULTILINE)


def _relation(plan: PhysicalPlan, stage: Stage, ref: str) -> str:
    for inp in stage.inputs:
        if inp.name == ref:
            if isinstance(inp, UpstreamInput):
                return plan.stage(inp.stage).name
            assert isinstance(inp, SourceInput)
            paths = ", ".join(f"'{p}'" for p in inp.source.paths[:3]) + (", …" if len(inp.source.paths) > 3 else "")
            return f"read_{inp.source.format.value}([{paths}])"
    return ref  # an earlier step of the stage: a view of that name


def stage_sql(plan: PhysicalPlan, stage: Stage) -> str:
    """The stage's steps as SQL over named relations (upstream stages by name, sources as
    read_parquet(...)); steps after the first read the one before as a view."""
    parts = []
    for step in stage.steps:
        names = [_relation(plan, stage, ref) for ref in step.inputs]
        if isinstance(step, SqlStep):
            text = step.query.replace("{{", "\0").replace("}}", "\1")
            for i, name in enumerate(names):
                text = text.replace(f"{{{i}}}", name)
            body = text.replace("\0", "{").replace("\1", "}")
        else:
            assert isinstance(step, PythonStep)
            body = f"-- Python: {step.label} over {', '.join(names)}"
        last = step.id == stage.result
        parts.append(body if len(stage.steps) == 1 else f"-- view {step.id}{' (the stage output)' if last else ''}\n{body}")
    return ";\n\n".join(parts)


def sql_head(plan: PhysicalPlan, stage: Stage, limit: int = SQL_HEAD) -> str:
    """The stage's SQL on one line, cut at `limit` characters."""
    text = _SPACE.sub(" ", _VIEW_COMMENT.sub("", stage_sql(plan, stage))).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def inputs_text(plan: PhysicalPlan, stage: Stage) -> list[str]:
    out = []
    for inp in stage.inputs:
        if isinstance(inp, UpstreamInput):
            out.append(f"stage {plan.stage(inp.stage).name} ({inp.split.value})")
        else:
            out += [f"{p} ({inp.source.format.value})" for p in inp.source.paths]
    return out


def partitions_text(stage: Stage) -> str:
    return str(stage.npartitions) if stage.npartitions else "one per group of input files (decided at run time)"


def stage_markdown(plan: PhysicalPlan, stage: Stage, note: str | None = None) -> str:
    """A markdown card: what the stage reads, writes, in how many partitions, and its SQL."""
    lines = [
        f"### pond stage `{stage.name}`",
        f"of `{plan.pipeline or 'session'}` (id `{stage.id}`)",
        "",
        "**Reads**",
        *[f"- {i}" for i in inputs_text(plan, stage)],
        "",
        f"**Writes** {describe_output(stage)}",
        "",
        f"**Partitions** {partitions_text(stage)}",
    ]
    if stage.steps:
        lines += ["", "**SQL**", "", "```sql", stage_sql(plan, stage), "```"]
    else:
        lines += ["", "No SQL: the stage passes its input's files through."]
    if note:
        lines += ["", note]
    return "\n".join(lines)


def human_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def start_line(plan: PhysicalPlan, stage: Stage) -> str:
    reads = ", ".join(inputs_text(plan, stage))
    return (
        f"pond stage {stage.name} starts: reads {reads}; writes {describe_output(stage)}; "
        f"partitions {stage.npartitions or 'auto'}; SQL: {sql_head(plan, stage) or '(none)'}"
    )


def finish_line(stage: Stage, result: StageResult, reused: bool = False) -> str:
    how = "already committed, reused" if reused else f"done in {result.seconds:.2f}s"
    return (
        f"pond stage {stage.name} {how}: {result.npartitions} partition{'' if result.npartitions == 1 else 's'}, {result.rows} rows, "
        f"{human_bytes(result.bytes)} in {result.files} files -> {result.location}"
    )
