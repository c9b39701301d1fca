"""A pond pipeline as an Airflow task group: one task per stage, rendered at parse time.

How the graph is rendered without knowing the run's parameters:

1. Parameters that are Jinja templates (`{{ ds }}`, `{{ partition_key }}`, ...) are rendered
   once, at parse time, against a fixed representative context: the DAG's start_date (or
   2000-01-01) as the logical date and the partition key that date would have. `parse_params`
   replaces any of them explicitly. Nothing here depends on the clock, a connection, a
   Variable or the data, so every parse renders the same DAG and Airflow records no new version.
2. The pipeline is compiled with those values (pure planning: no data read, no cluster), once
   per DAG-file version: the plan is cached on disk (pond_airflow.plan_cache), so the parse
   at every task's start costs milliseconds. Each stage becomes a PondStageOperator named
   after the stage, wired by the plan's dependencies; a sink with checks gets a checks task.
3. At run time each task compiles the pipeline again with the real rendered parameters and
   checks that its stage still exists with the same upstream stages, so a pipeline whose shape
   depends on its parameters fails loudly instead of running the wrong graph. Stage ids are
   content hashes, so every task of a run computes the same ids and finds its upstream output.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
from typing import Any

from airflow.sdk import Asset, AssetAlias, TaskGroup

from pond_airflow.assets import is_published, upstream_sources
from pond_airflow.hooks.pond import PondHook
from pond_airflow.openlineage import dataset_uri
from pond_airflow.operators.checks import PondChecksOperator, checks_task_id
from pond_airflow.operators.stage import PondStageOperator
from pond_airflow.plan_cache import cached, compile_cached
from pond_airflow.runs import lineage_scope
from pond_core import api

_DEFAULT_DATE = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)


def pond_pipeline_group(
    pipeline: str | None = None,
    params: dict[str, Any] | None = None,
    *,
    plan: api.PhysicalPlan | str | os.PathLike[str] | None = None,
    group_id: str | None = None,
    parse_params: dict[str, Any] | None = None,
    pond_conn_id: str = PondHook.default_conn_name,
    hook_params: dict[str, Any] | None = None,
    keep_intermediates: bool = False,
    deferrable: bool = False,
    poll_interval: float = 5.0,
    stage_kwargs: dict[str, dict[str, Any]] | None = None,
    dag: Any = None,
    **task_kwargs: Any,
) -> TaskGroup:
    """Render `pipeline` (module:function) as a TaskGroup with one task per stage.

    :param params: the pipeline's parameters; string values may be Jinja templates.
    :param plan: a precompiled plan (a PhysicalPlan, or the path of `pond plan --format json`
        output, relative to the DAG file) to render from instead of compiling at parse time;
        for very large pipelines. `pipeline` and `params` default to the plan's.
    :param group_id: the task group id (default: the function's name); it also scopes the
        pond run, so two groups of one pipeline in a DAG run separately.
    :param parse_params: values used instead of the representative rendering at parse time.
    :param keep_intermediates: keep exchange outputs after the final stage succeeds.
    :param deferrable: wait for each stage in the triggerer: for the pond service when the
        connection names one, else for a detached pond worker that runs it.
    :param stage_kwargs: extra operator arguments per stage name (e.g. a longer timeout).
    :param task_kwargs: operator arguments for every stage task (retries, pool, ...).
    """
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    dag = dag or DagContext.get_current()
    compiled: api.PhysicalPlan | None = None
    if plan is not None:
        compiled = _load_plan(plan, dag)
        pipeline = pipeline or compiled.pipeline
        params = dict(compiled.params if params is None else params)
        rendered = {**params, **_representative(params, parse_params, dag)}
    else:
        if not pipeline:
            raise ValueError("pond_pipeline_group needs a pipeline (module:function) or a precompiled plan")
        params = dict(params or {})
        rendered = _representative(params, parse_params, dag)
    if not pipeline:
        raise ValueError("the precompiled plan names no pipeline; pass pipeline='module:function'")
    group_id = group_id or pipeline.rpartition(":")[2]
    templated = [k for k, v in params.items() if _templated(v)]
    tasks: dict[str, PondStageOperator] = {}
    with TaskGroup(group_id=group_id, dag=dag) as group:
        run_scope = group.group_id or group_id
        render = _Render(
            scope=lineage_scope(dag.dag_id if dag is not None else None, run_scope),
            # Values too short to tell apart from other text ("1") are not looked for in paths.
            samples=[str(rendered[k]) for k in templated if len(str(rendered[k])) >= 4],
            templates={str(rendered[k]): params[k] for k in templated if isinstance(params[k], str) and len(str(rendered[k])) >= 4},
            parse_values={k: rendered[k] for k in templated},
        )
        specs = render.stage_tasks(compiled) if compiled is not None else render.cached(pipeline, rendered)
        unknown = sorted(set(stage_kwargs or {}) - {spec.name for spec in specs})
        if unknown:
            raise ValueError(f"stage_kwargs names no stage of {pipeline}: {', '.join(unknown)}")
        for spec in specs:
            kwargs = {**task_kwargs, **(stage_kwargs or {}).get(spec.name, {})}
            task = tasks[spec.name] = PondStageOperator(
                task_id=spec.name,
                pipeline=pipeline,
                stage=spec.name,
                pipeline_params=params,
                upstream_stages=list(spec.upstream),
                final=spec.final,
                run_scope=run_scope,
                pond_conn_id=pond_conn_id,
                hook_params=hook_params,
                keep_intermediates=keep_intermediates,
                deferrable=deferrable,
                poll_interval=poll_interval,
                outlets=_outlets(spec, render.scope),
                inlets=[Asset(u) for u in spec.inlets],
                doc_md=spec.doc_md,
                sql=spec.sql,
                **kwargs,
            )
            for name in spec.upstream:
                tasks[name] >> task
            if spec.checks:
                task >> PondChecksOperator(task_id=checks_task_id(spec.name), stage_task_id=task.task_id, checks=spec.checks, dag=dag)
    return group


@dataclasses.dataclass(frozen=True)
class StageTask:
    """What one stage's task is made of, as plain data: rendered from the compiled plan once
    per DAG-file version and cached with it (pond_airflow.plan_cache), so a parse does not
    import pond's planner."""

    name: str
    upstream: tuple[str, ...]
    final: bool
    outlet: str | None  # the published dataset's URI; None for an intermediate (no Asset)
    per_run: bool  # the outlet's path holds a run value: an AssetAlias
    inlets: tuple[str, ...]  # every source dataset the published output derives from
    doc_md: str
    sql: str  # the parse-time SQL as a template of each run's SQL
    checks: tuple[str, ...]  # the names of a sink's checks before publish

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StageTask:
        return cls(
            name=d["name"], upstream=tuple(d["upstream"]), final=bool(d["final"]), outlet=d["outlet"], per_run=bool(d["per_run"]),
            inlets=tuple(d["inlets"]), doc_md=d["doc_md"], sql=d["sql"], checks=tuple(d["checks"]),
        )


@dataclasses.dataclass(frozen=True)
class _Render:
    """How this group renders a plan's stages: its lineage scope and the run values to template."""

    scope: str
    samples: list[str]
    templates: dict[str, str]
    parse_values: dict[str, Any]

    def cached(self, pipeline: str, rendered: dict[str, Any]) -> list[StageTask]:
        def build() -> list[StageTask]:
            try:
                compiled = compile_cached(pipeline, rendered)
            except api.PondError as exc:
                raise ValueError(
                    f"cannot render pond pipeline {pipeline} at parse time with {rendered}: {exc}; "
                    "pass parse_params= with representative values"
                ) from exc
            return self.stage_tasks(compiled)

        return cached(
            "tasks", pipeline, rendered, dataclasses.asdict(self), build=build,
            dump=lambda specs: json.dumps([dataclasses.asdict(t) for t in specs], default=str),
            load=lambda text: [StageTask.from_dict(d) for d in json.loads(text)],
        )

    def stage_tasks(self, plan: api.PhysicalPlan) -> list[StageTask]:
        names = {stage.id: stage.name for stage in plan.stages}
        specs = []
        for stage in plan.stages:
            outlet = dataset_uri(api.stage_dataset(plan, stage, self.scope))
            published = is_published(outlet)
            specs.append(StageTask(
                name=stage.name,
                upstream=tuple(names[sid] for sid in stage.depends_on),
                final=stage is plan.final,
                outlet=outlet if published else None,
                per_run=published and any(sample in outlet for sample in self.samples),
                inlets=tuple(_source_uris(upstream_sources(plan, stage), self.samples)) if published else (),
                doc_md=_doc(plan, stage, self.parse_values),
                sql=templated_sql(api.stage_sql(plan, stage), self.templates),
                checks=tuple(_check_names(stage)),
            ))
        return specs


def _outlets(spec: StageTask, scope: str) -> list[Asset | AssetAlias]:
    """A published dataset's Asset (an AssetAlias when its path holds a run value, the real
    asset attached at run time); nothing for an intermediate (pond_airflow.assets)."""
    if spec.outlet is None:
        return []
    return [AssetAlias(name=f"pond.{scope}.{spec.name}") if spec.per_run else Asset(spec.outlet)]


def _check_names(stage: api.Stage) -> list[str]:
    """The names of the checks a sink stage runs before publish (none for other stages)."""
    if not isinstance(stage.output, api.SinkOutput):
        return []
    return [c.name for c in stage.output.sink.checks]


def _source_uris(paths: list[str], samples: list[str]) -> list[str]:
    """Source paths as static asset URIs (a path that holds a run value, e.g.
    `orders/dt=<ds>`, names its dataset folder above that part, which every run shares)."""
    uris: list[str] = []
    for path in paths:
        for sample in samples:
            if sample in path:
                path = path[: path.index(sample)].rsplit("/", 1)[0]
        uri = dataset_uri(_above_hive(path))
        if uri not in uris:
            uris.append(uri)
    return uris


def _above_hive(path: str) -> str:
    """`/shop/orders/dt=2026-11-20/*.parquet` -> `/shop/orders`: the dataset, not one partition."""
    parts = path.split("/")
    for i, part in enumerate(parts):
        if "=" in part and i > 0:
            return "/".join(parts[:i])
    return path


def _load_plan(plan: api.PhysicalPlan | str | os.PathLike[str], dag: Any) -> api.PhysicalPlan:
    if isinstance(plan, api.PhysicalPlan):
        return plan
    path = os.fspath(plan)
    if not os.path.isabs(path) and dag is not None and getattr(dag, "fileloc", None):
        path = os.path.join(os.path.dirname(dag.fileloc), path)
    with open(path) as f:
        return api.PhysicalPlan.from_json(f.read())


def _doc(plan: api.PhysicalPlan, stage: api.Stage, parse_values: dict[str, Any]) -> str:
    note = None
    if parse_values:
        shown = ", ".join(f"`{k}={v}`" for k, v in parse_values.items())
        note = (
            f"_Compiled at parse time with {shown}. A run's own SQL: Rendered Templates (`sql`), "
            "the task log and the OpenLineage SQL facet._"
        )
    return api.stage_markdown(plan, stage, note)


_JINJA_OPEN = re.compile(r"\{[{%#]")


def templated_sql(sql: str, templates: dict[str, str]) -> str:
    """The parse-time SQL as a template of the run's SQL: values rendered from templated
    parameters become their templates again (`DATE '2026-11-01'` -> `DATE '{{ ds }}'`), and
    anything else Jinja would read is escaped, so Rendered Templates shows the run's SQL."""
    text = _JINJA_OPEN.sub(lambda m: "{{ '" + m.group(0) + "' }}", sql)
    for value in sorted(templates, key=len, reverse=True):
        text = text.replace(value, templates[value])
    return text


def _representative(params: dict[str, Any], explicit: dict[str, Any] | None, dag: Any) -> dict[str, Any]:
    explicit = dict(explicit or {})
    rest = {k: v for k, v in params.items() if k not in explicit}
    return {**representative_params(rest, dag), **explicit}


def _templated(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(_templated(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_templated(v) for v in value)
    return False


def representative_params(params: dict[str, Any], dag: Any = None) -> dict[str, Any]:
    """Render templated values against a fixed context (see the module docstring)."""
    if not _templated(params):
        return dict(params)
    context = representative_context(dag)
    if dag is not None:
        env = dag.get_template_env(force_sandboxed=True)
    else:
        import jinja2.sandbox

        env = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined)
    return {k: _render(env, v, context, k) for k, v in params.items()}


def _render(env: Any, value: Any, context: dict[str, Any], key: str) -> Any:
    import jinja2

    if isinstance(value, str) and _templated(value):
        try:
            return env.from_string(value).render(**context)
        except jinja2.TemplateError as exc:
            raise ValueError(
                f"pond parameter {key!r} = {value!r} cannot be rendered at parse time ({exc}); "
                f"pass parse_params={{{key!r}: <representative value>}}"
            ) from exc
    if isinstance(value, dict):
        return {k: _render(env, v, context, key) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_render(env, v, context, key) for v in value)
    return value


def representative_context(dag: Any = None) -> dict[str, Any]:
    """The template context of an imaginary run at the DAG's start date."""
    from airflow.sdk.execution_time import macros

    start = getattr(dag, "start_date", None) or _DEFAULT_DATE
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.timezone.utc)
    start = dt.datetime.fromtimestamp(start.timestamp(), tz=dt.timezone.utc)
    timetable = getattr(dag, "timetable", None)
    key_format = getattr(timetable, "key_format", None) or "%Y-%m-%d"
    params = dag.params.dump() if dag is not None else {}
    return {
        "ds": start.strftime("%Y-%m-%d"),
        "ds_nodash": start.strftime("%Y%m%d"),
        "ts": start.isoformat(),
        "ts_nodash": start.strftime("%Y%m%dT%H%M%S"),
        "ts_nodash_with_tz": start.strftime("%Y%m%dT%H%M%S%z"),
        "logical_date": start,
        "data_interval_start": start,
        "data_interval_end": start,
        "run_after": start,
        "partition_key": start.strftime(key_format),
        "partition_date": start,
        "run_id": "scheduled__" + start.isoformat(),
        "params": params,
        "macros": macros,
        "dag": dag,
    }


class PondPipelineTaskGroup:
    """`PondPipelineTaskGroup(pipeline, params, ...)` is `pond_pipeline_group(...)`: a TaskGroup."""

    def __new__(cls, pipeline: str, params: dict[str, Any] | None = None, **kwargs: Any) -> TaskGroup:  # type: ignore[misc]
        return pond_pipeline_group(pipeline, params, **kwargs)
