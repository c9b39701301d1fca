"""PondStageOperator: one stage of a pond pipeline as one Airflow task.

The task compiles the pipeline with its rendered parameters (milliseconds, no data read),
checks that the stage it was rendered for still exists with the same upstream stages, and runs
exactly that stage for the DAG run's pond run. Upstream stages' outputs are read from what
their own tasks committed; a retry resumes from the partitions an earlier try committed.

Where the stage runs: in the task's process (the connection's executor: local threads, or as
the Ray driver); in a detached pond worker (deferrable); or, when the connection names a pond
service, on that service's cluster (pond_airflow.service): the task submits the stage and
polls it, or, deferrable, submits and defers to PondServiceTrigger so no task process waits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from pond_airflow import assets, service
from pond_airflow.hooks.pond import PondHook
from pond_airflow.openlineage import operator_lineage
from pond_airflow.operators.checks import CHECKS_XCOM, checks_task_id
from pond_airflow.plan_cache import compile_cached
from pond_airflow.runs import fail_for, final_try, first_try, lineage_scope, pond_run_id, xcom_result
from pond_core import api

if TYPE_CHECKING:
    from airflow.sdk import Context


class PondStageOperator(BaseOperator):
    """Run one stage of `pipeline` (module:function) compiled with `pipeline_params`.

    :param pipeline: the pipeline, as `module:function`.
    :param stage: the stage's name in the compiled plan (e.g. `join_aggregate_customers_orders`).
    :param pipeline_params: the pipeline's keyword parameters; templated.
    :param upstream_stages: names of the stages this one reads, as rendered at parse time;
        the run-time plan must agree, or the task fails without retry.
    :param final: whether this is the plan's last stage (it closes the pond run).
    :param run_scope: what distinguishes this pipeline's pond run within a DAG run (the task
        group id); the pond run id is `<dag_id>__<run_id>__<run_scope>`.
    :param pond_conn_id: the pond connection; `hook_params` override its settings.
    :param keep_intermediates: keep exchange and intermediate outputs after the final stage
        succeeds (so any single stage can be cleared and re-run later).
    :param deferrable: wait in the triggerer: for the pond service when the connection names
        one, else for a detached pond worker that runs the stage.
    :param poll_interval: seconds between the trigger's checks, when deferrable (at most 1 s
        against a pond service: a status request is small).
    :param sql: the stage's SQL, shown in Rendered Templates (display only: the task runs the
        SQL of the plan it compiles); templated.
    """

    template_fields: Sequence[str] = ("pipeline_params", "sql")
    template_fields_renderers = {"pipeline_params": "json", "sql": "sql"}
    ui_color = "#cfe8fc"

    def __init__(
        self,
        *,
        pipeline: str,
        stage: str,
        pipeline_params: dict[str, Any] | None = None,
        upstream_stages: Sequence[str] = (),
        final: bool = False,
        run_scope: str = "pipeline",
        pond_conn_id: str = PondHook.default_conn_name,
        hook_params: dict[str, Any] | None = None,
        keep_intermediates: bool = False,
        deferrable: bool = False,
        poll_interval: float = 5.0,
        sql: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sql = sql
        self.pipeline = pipeline
        self.stage = stage
        self.pipeline_params = dict(pipeline_params or {})
        self.upstream_stages = sorted(upstream_stages)
        self.final = final
        self.run_scope = run_scope
        self.pond_conn_id = pond_conn_id
        self.hook_params = dict(hook_params or {})
        self.keep_intermediates = keep_intermediates
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self._plan: api.PhysicalPlan | None = None
        self._hook: PondHook | None = None
        self._lineage: dict[str, Any] | None = None
        self._executor: api.Executor | None = None
        self._attempt: tuple[str, str] | None = None  # (run id, stage id) running on the service

    # -- plan ---------------------------------------------------------------------------------

    @property
    def hook(self) -> PondHook:
        """One hook per task: its connection is looked up once, not at every use."""
        if self._hook is None:
            self._hook = PondHook(self.pond_conn_id, **self.hook_params)
        return self._hook

    def plan(self) -> api.PhysicalPlan:
        """The pipeline compiled with the rendered parameters, checked against the DAG."""
        if self._plan is None:
            try:
                plan = compile_cached(self.pipeline, self.pipeline_params)
            except api.PondError as exc:
                fail_for(exc)
            self._plan = plan
            self._check(plan)
        return self._plan

    def _check(self, plan: api.PhysicalPlan) -> None:
        names = [s.name for s in plan.stages]
        try:
            stage = plan.stage(self.stage)
        except KeyError:
            raise AirflowFailException(
                f"pipeline {self.pipeline} no longer has stage {self.stage} with these parameters "
                f"(it has {', '.join(names)}); its structure depends on parameter values, so the "
                "DAG rendered at parse time does not fit this run: give parse_params that yield "
                "the same stages, or make the stage structure independent of run-time parameters"
            ) from None
        upstream = sorted(plan.stage(sid).name for sid in stage.depends_on)
        if upstream != self.upstream_stages or (self.final and stage is not plan.final):
            raise AirflowFailException(
                f"stage {self.stage} of {self.pipeline} reads {upstream or 'no stage'} at run time but the DAG "
                f"was rendered with it reading {self.upstream_stages or 'no stage'}"
                + (" and as the final stage" if self.final else "")
                + "; the pipeline's structure depends on run-time parameters (see parse_params)"
            )

    def _stage(self) -> api.Stage:
        return self.plan().stage(self.stage)

    # -- running ------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        stage = self._stage()
        run_id = pond_run_id(context, self.run_scope)
        force = first_try(context)
        if self.hook.service is not None:
            return self._run_on_service(context, stage, run_id, force)
        if self.deferrable:
            return self._defer(context, stage, run_id, force)
        hook = self.hook
        settings = hook.session_settings(job_id=run_id)
        self.log.info("pond run %s: stage %s (%s), %s", run_id, stage.name, stage.id, "fresh" if force else "resuming")
        recomputed = self._upstream_to_recompute(run_id, settings)
        self._executor = api.make_executor(settings)
        try:
            # recompute_upstream: a task cleared after its run finished finds its upstream
            # outputs dropped; it recomputes them from their committed inputs (docs/airflow.md).
            manifest = api.run_stage(
                self.plan(), stage.id, run_id, settings=settings, storage=hook.settings.storage(), executor=self._executor, force=force,
                recompute_upstream=True, lineage_scope=self.lineage_scope,
            )
        except api.PondError as exc:
            self._failed(context, run_id, exc)
            self._checks_failed(context, exc)
            fail_for(exc)
        finally:
            executor, self._executor = self._executor, None
            executor.shutdown()
        if recomputed:
            self._drop_if_downstream_done(context, run_id)
        return self._complete(context, run_id, manifest.result.to_dict(), self._catalog_upstream(run_id))

    def _catalog_upstream(self, run_id: str) -> dict[str, dict[str, Any]]:
        with self.hook.catalog() as catalog:
            return {sid: catalog.stage_result(run_id, sid) or {} for sid in self._stage().depends_on}

    # -- on a pond service --------------------------------------------------------------------

    @property
    def _service_poll(self) -> float:
        return min(self.poll_interval, 1.0)

    def _request(self, stage: api.Stage, run_id: str, force: bool) -> service.StageRequest:
        return service.StageRequest(self.plan(), run_id, stage.name, force, self.lineage_scope, self.hook.settings.service_settings())

    def _run_on_service(self, context: Context, stage: api.Stage, run_id: str, force: bool) -> dict[str, Any]:
        """Submit the stage to the service; wait here (its log lines in the task log) or defer."""
        request = self._request(stage, run_id, force)
        with self.hook.service_client() as client:
            if self.deferrable:
                status = service.submitted(client, request, self.log)
                payload = service.event(status)
            else:
                payload = service.run(client, request, self.log, self._service_poll, self._track)
        if self.deferrable and payload["state"] not in service.TERMINAL:
            self._defer_to_service(run_id, stage, payload["stage_id"])
        return self._service_done(context, run_id, payload)

    def _track(self, run_id: str | None, stage_id: str | None) -> None:
        self._attempt = (run_id, stage_id) if run_id and stage_id else None

    def _defer_to_service(self, run_id: str, stage: api.Stage, stage_id: str) -> None:
        from pond_airflow.triggers.service import PondServiceTrigger

        self.defer(
            trigger=PondServiceTrigger(
                run_id=run_id, stage_id=stage_id, stage=stage.name, pond_conn_id=self.pond_conn_id, hook_params=self.hook_params,
                poll_interval=self._service_poll,
            ),
            method_name="execute_complete",
            timeout=self.execution_timeout or timedelta(days=7),
        )

    def _service_done(self, context: Context, run_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The task's outcome from the stage's final status on the service."""
        if payload.get("state") == "succeeded":
            recomputed = list(payload.get("recomputed") or [])
            if recomputed:
                self.log.warning("%s", service.recomputed_note(self.stage, recomputed, run_id))
            out = self._complete(context, run_id, payload["result"], dict(payload.get("upstream_results") or {}))
            if recomputed:
                self._drop_if_downstream_done(context, run_id)
            return out
        failure = service.Failure.of(payload, self.stage, run_id)
        self._failed(context, run_id, failure.message, retryable=failure.retryable)
        if failure.checks is not None:
            self._report_failed_checks(context, failure.checks)
        if failure.retryable:
            raise api.PondTransientError(failure.message)
        raise AirflowFailException(failure.message)

    def _upstream_to_recompute(self, run_id: str, settings: Any) -> list[str]:
        """The upstream stages whose outputs are gone (the run finished and dropped them, or was
        cleaned), which this task recomputes first: said in the log, before the work."""
        missing = [s.name for s in api.upstream_to_recompute(self.plan(), self.stage, run_id, settings=settings, storage=self.hook.settings.storage())]
        if missing:
            self.log.warning(
                "pond stage %s: recomputing upstream stage%s %s first: %s output%s of pond run %s %s gone "
                "(dropped when the run's final stage finished, or cleaned), as when this task is cleared alone",
                self.stage, "s" if len(missing) > 1 else "", ", ".join(missing), "their" if len(missing) > 1 else "its",
                "s" if len(missing) > 1 else "", run_id, "are" if len(missing) > 1 else "is",
            )
        return missing

    def _drop_if_downstream_done(self, context: Context, run_id: str) -> None:
        """After a task cleared alone recomputed its upstream: when no downstream stage of the
        run is going to read them (all done), drop the intermediates it made, as the final
        stage did when the run finished. Cleared with its downstream, they stay for them."""
        if self.final or self.keep_intermediates or self.dag is None:
            return
        relatives = [self.dag.get_task(tid) for tid in self.get_flat_relative_ids(upstream=False)]
        downstream = sorted(t.task_id for t in relatives if isinstance(t, PondStageOperator) and t.run_scope == self.run_scope)
        done = 0 if not downstream else context["ti"].get_ti_count(dag_id=self.dag_id, task_ids=downstream, run_ids=[context["dag_run"].run_id], states=["success"])
        if done < len(downstream):
            self.log.info("pond stage %s: keeping its intermediates for the downstream tasks still to run", self.stage)
            return
        self._drop_intermediates(run_id)
        self.log.info(
            "pond stage %s: dropped the intermediates it recomputed: downstream stages %s are done", self.stage,
            ", ".join(t.rsplit(".", 1)[-1] for t in downstream),
        )

    def _failed(self, context: Context, run_id: str, error: BaseException | str, retryable: bool | None = None) -> None:
        """Record lineage for the failure event; close the pond run when Airflow will not retry."""
        self._lineage = self._record(None)
        retryable = api.is_retryable(error) if retryable is None and isinstance(error, BaseException) else bool(retryable)
        if retryable and not final_try(context):
            return
        try:
            if self.hook.service is not None:
                with self.hook.service_client() as client:
                    client.close_run(run_id, "failed", error=f"stage {self.stage}: {error}")
            else:
                api.close_run(run_id, "failed", settings=self.hook.session_settings(job_id=run_id), error=f"stage {self.stage}: {error}")
        except Exception as exc:  # the stage's own error is what the task must report
            self.log.warning("could not mark pond run %s failed in the catalog: %s", run_id, exc)

    def _checks_failed(self, context: Context, error: BaseException) -> None:
        """A stage stopped by its checks: the table of results in the task log, the results for
        the checks task (XCom), lineage's DataQualityAssertions facet; fails without retry,
        naming the checks."""
        if isinstance(error, api.PondCheckError):
            self._report_failed_checks(context, error.results)

    def _report_failed_checks(self, context: Context, results: Sequence[api.CheckResult]) -> None:
        self.log.error("pond stage %s: checks failed, nothing was published\n%s", self.stage, api.render_checks(results))
        context["ti"].xcom_push(key=CHECKS_XCOM, value=[r.to_dict() for r in results])
        record = api.stage_lineage(self.plan(), self._stage(), None, {})
        self._lineage = api.with_assertions(record, tuple(results)).to_dict()
        failed = ", ".join(r.name for r in results if not r.passed and r.severity == "error")
        raise AirflowFailException(f"checks failed: {failed}; nothing was published (stage {self.stage}, task {checks_task_id(self.stage)})")

    def _defer(self, context: Context, stage: api.Stage, run_id: str, force: bool) -> Any:
        from pond_airflow import worker
        from pond_airflow.triggers.stage import PondStageTrigger

        handle = worker.submit(self.plan(), stage, run_id, self.hook.settings, force=force, lineage_scope=self.lineage_scope)
        self.log.info("pond run %s: stage %s submitted to worker pid %s", run_id, stage.name, handle["pid"])
        self.defer(
            trigger=PondStageTrigger(
                state_prefix=handle["state_prefix"],
                data_root=handle["data_root"],
                pond_conn_id=self.pond_conn_id,
                hook_params=self.hook_params,
                poll_interval=self.poll_interval,
            ),
            method_name="execute_complete",
            timeout=self.execution_timeout or timedelta(days=7),
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        run_id = pond_run_id(context, self.run_scope)
        if event.get("kind") == "pond-service":
            if event.get("state") == "unknown":  # the service lost the attempt: the same request again
                self.log.warning("pond service no longer knows stage %s of run %s (restarted?): submitting it again", self.stage, run_id)
                return self._run_on_service(context, self._stage(), run_id, first_try(context))
            return self._service_done(context, run_id, event)
        status = event.get("status")
        if status == "success":
            return self._complete(context, run_id, event["result"], self._catalog_upstream(run_id))
        message = f"pond stage {self.stage} of run {run_id} {status}: {event.get('error')}"
        if event.get("log"):
            message += f" (worker log: {event['log']})"
        self._failed(context, run_id, message, retryable=bool(event.get("retryable")))
        if event.get("retryable"):
            raise api.PondTransientError(message)
        raise AirflowFailException(message)

    def _complete(self, context: Context, run_id: str, result: dict[str, Any], upstream: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """`result`: the stage result's JSON form; `upstream`: the upstream stages' results by
        stage id (for lineage). The final stage's commit closed the pond run."""
        stage = self._stage()
        self._lineage = self._record(result, upstream)
        assets.emit(context, self.outlets, api.stage_dataset(self.plan(), stage, self.lineage_scope), assets.event_extra(result, run_id))
        if self.final and not self.keep_intermediates:
            self._drop_intermediates(run_id)
        if self.deferrable:  # otherwise pond's own line (or the service's) is in the log already
            self.log.info(
                "pond stage %s done %s: %s partitions, %s rows, %s in %s files -> %s", stage.name,
                "on the pond service" if self.hook.service is not None else "in the worker",
                result.get("npartitions"), result.get("rows"), api.human_bytes(result.get("bytes")), result.get("files"), result.get("location"),
            )
        if result.get("checks"):
            checks = [api.CheckResult.from_dict(c) for c in result["checks"]]
            self.log.info("pond stage %s: checks before publish\n%s", stage.name, api.render_checks(checks))
            context["ti"].xcom_push(key=CHECKS_XCOM, value=result["checks"])
        return xcom_result(result)

    def _drop_intermediates(self, run_id: str) -> None:
        hook = self.hook
        if hook.service is not None:
            with hook.service_client() as client:
                client.drop_intermediates(run_id)
        else:
            api.drop_intermediates(run_id, hook.session_settings(job_id=run_id), hook.settings.storage())

    def on_kill(self) -> None:
        executor, attempt = self._executor, self._attempt
        if executor is not None:
            executor.cancel_all()
        if attempt is not None:  # waiting for the service: stop the stage there
            with self.hook.service_client() as client:
                status = client.cancel(*attempt)
            self.log.info("pond run %s: stage %s cancelled on the pond service (%s)", attempt[0], self.stage, service.state_of(status))

    # -- lineage ------------------------------------------------------------------------------

    def _record(self, result: dict[str, Any] | None, upstream: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
        committed = api.StageResult.from_dict(result) if result is not None else None
        storage = self.hook.settings.storage()
        # Every stage task's event carries column lineage (an intermediate's columns trace to sources too).
        try:
            return api.stage_lineage(self.plan(), self._stage(), committed, upstream or {}, self.lineage_scope, storage, columns=True).to_dict()
        except (OSError, api.PondError) as exc:
            if self.hook.service is None:
                raise
            # A thin client may not reach the sources the service reads: lineage without columns.
            self.log.warning("pond stage %s: no column lineage (the sources' schemas are not readable here: %s)", self.stage, exc)
            return api.stage_lineage(self.plan(), self._stage(), committed, upstream or {}, self.lineage_scope, storage, columns=False).to_dict()

    @property
    def lineage_scope(self) -> str:
        """Intermediate datasets are `pond://<dag_id>.<group>/<stage>`: this DAG's own."""
        return lineage_scope(self.dag_id, self.run_scope)

    def get_openlineage_facets_on_start(self) -> Any:
        return operator_lineage(self._record(None))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        return operator_lineage(self._lineage or self._record(None))

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        error = getattr(task_instance, "error", None)
        return operator_lineage(self._lineage or self._record(None), error=error if isinstance(error, BaseException) else None)
