"""PondStageOperator: one stage of a pond pipeline as one Airflow task.

The task compiles the pipeline with its rendered parameters (milliseconds, no data read),
checks that the stage it was rendered for still exists with the same upstream stages, and runs
exactly that stage for the DAG run's pond run. Upstream stages' outputs are read from what
their own tasks committed; a retry resumes from the partitions an earlier try committed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, Sequence

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from pond_airflow.hooks.pond import PondHook
from pond_airflow.lineage import asset_event_extra, emit_asset_events, operator_lineage
from pond_airflow.runs import fail_for, final_try, first_try, pond_run_id, xcom_result

if TYPE_CHECKING:
    from airflow.sdk import Context
    from pond_core.plan.physical import PhysicalPlan, Stage


class PondStageOperator(BaseOperator):
    """Run one stage of `pipeline` (module:function) compiled with `pipeline_params`.

    :param pipeline: the pipeline, as `module:function`.
    :param stage: the stage's name in the compiled plan (e.g. `03_sql`).
    :param pipeline_params: the pipeline's keyword parameters; templated.
    :param upstream_stages: names of the stages this one reads, as rendered at parse time;
        the run-time plan must agree, or the task fails without retry.
    :param final: whether this is the plan's last stage (it closes the pond run).
    :param run_scope: what distinguishes this pipeline's pond run within a DAG run (the task
        group id); the pond run id is `<dag_id>__<run_id>__<run_scope>`.
    :param pond_conn_id: the pond connection; `hook_params` override its settings.
    :param keep_intermediates: keep exchange and intermediate outputs after the final stage
        succeeds (so any single stage can be cleared and re-run later).
    :param deferrable: run the stage in a detached pond worker and wait in the triggerer.
    :param poll_interval: seconds between the trigger's checks, when deferrable.
    """

    template_fields: Sequence[str] = ("pipeline_params",)
    template_fields_renderers = {"pipeline_params": "json"}
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
        self._plan: PhysicalPlan | None = None
        self._lineage: dict[str, Any] | None = None
        self._session: Any = None

    # -- plan ---------------------------------------------------------------------------------

    @property
    def hook(self) -> PondHook:
        return PondHook(self.pond_conn_id, **self.hook_params)

    def plan(self) -> PhysicalPlan:
        """The pipeline compiled with the rendered parameters, checked against the DAG."""
        if self._plan is None:
            from pond_core.errors import PondError
            from pond_core.pipeline import compile_pipeline

            try:
                plan = compile_pipeline(self.pipeline, self.pipeline_params)
            except PondError as exc:
                fail_for(exc)
            self._plan = plan
            self._check(plan)
        return self._plan

    def _check(self, plan: PhysicalPlan) -> None:
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

    def _stage(self) -> Stage:
        return self.plan().stage(self.stage)

    # -- running ------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        from pond_core.errors import PondError
        from pond_core.pipeline import run_stage

        stage = self._stage()
        run_id = pond_run_id(context, self.run_scope)
        force = first_try(context)
        if self.deferrable:
            return self._defer(context, stage, run_id, force)
        hook = self.hook
        self.log.info("pond run %s: stage %s (%s), %s", run_id, stage.name, stage.id, "fresh" if force else "resuming")
        with hook.get_conn(job_id=run_id, keep_intermediates=True) as session:
            self._session = session
            try:
                result = run_stage(self.plan(), stage.id, run_id, session=session, force=force)
            except PondError as exc:
                self._failed(context, run_id, exc)
                fail_for(exc)
            finally:
                self._session = None
            return self._complete(context, run_id, result)

    def _failed(self, context: Context, run_id: str, error: BaseException | str, retryable: bool | None = None) -> None:
        """Record lineage for the failure event; close the pond run when Airflow will not retry."""
        from pond_core.errors import is_retryable

        self._lineage = self._record(None)
        retryable = is_retryable(error) if retryable is None and isinstance(error, BaseException) else bool(retryable)
        if retryable and not final_try(context):
            return
        try:
            catalog = self.hook.catalog()
            try:
                catalog.finish_run(run_id, "failed", error=f"stage {self.stage}: {error}")
            finally:
                catalog.close()
        except Exception as exc:  # the stage's own error is what the task must report
            self.log.warning("could not mark pond run %s failed in the catalog: %s", run_id, exc)

    def _defer(self, context: Context, stage: Stage, run_id: str, force: bool) -> Any:
        from pond_airflow.triggers.stage import PondStageTrigger
        from pond_airflow import worker

        settings = self.hook.settings
        handle = worker.submit(self.plan(), stage, run_id, settings.init_kwargs(), force=force)
        self.log.info("pond run %s: stage %s submitted to worker pid %s", run_id, stage.name, handle["pid"])
        self.defer(
            trigger=PondStageTrigger(
                state_prefix=handle["state_prefix"],
                storage_root=handle["storage_root"],
                pond_conn_id=self.pond_conn_id,
                hook_params=self.hook_params,
                poll_interval=self.poll_interval,
            ),
            method_name="execute_complete",
            timeout=self.execution_timeout or timedelta(days=7),
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        run_id = pond_run_id(context, self.run_scope)
        status = event.get("status")
        if status == "success":
            return self._complete(context, run_id, event["result"])
        message = f"pond stage {self.stage} of run {run_id} {status}: {event.get('error')}"
        if event.get("log"):
            message += f" (worker log: {event['log']})"
        self._failed(context, run_id, message, retryable=bool(event.get("retryable")))
        if event.get("retryable"):
            from pond_core.errors import PondTransientError

            raise PondTransientError(message)
        raise AirflowFailException(message)

    def _complete(self, context: Context, run_id: str, result: dict[str, Any]) -> dict[str, Any]:
        from pond_core.lineage import stage_dataset

        stage = self._stage()
        hook = self.hook
        catalog = hook.catalog()
        try:
            upstream = {sid: catalog.stage_result(run_id, sid) or {} for sid in stage.depends_on}
            self._lineage = self._record(result, upstream)
            emit_asset_events(context, self.outlets, stage_dataset(self.plan(), stage), asset_event_extra(result, run_id))
            if self.final:
                catalog.finish_run(run_id, "success")
                if not self.keep_intermediates:
                    self._drop_intermediates(run_id)
        finally:
            catalog.close()
        self.log.info("pond stage %s committed %s rows in %s files", stage.name, result.get("rows"), result.get("files"))
        return xcom_result(result)

    def _drop_intermediates(self, run_id: str) -> None:
        from pond_core.io import get_filesystem

        with self.hook.get_conn(job_id=run_id, keep_intermediates=True, executor="local") as session:
            staging = session.stage_context(run_id).staging_root
            get_filesystem(staging, session.storage).delete(staging, recursive=True)

    def on_kill(self) -> None:
        session = self._session
        if session is not None:
            executor = session.executor()
            cancel = getattr(executor, "cancel_all", None)
            if cancel is not None:
                cancel()

    # -- lineage ------------------------------------------------------------------------------

    def _record(self, result: dict[str, Any] | None, upstream: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
        from pond_core.lineage import stage_dataset, stage_lineage

        plan, stage = self.plan(), self._stage()
        if result is not None:
            record = stage_lineage(plan, stage, result, upstream or {})
            record["outputs"][0]["bytes"] = result.get("bytes")
            return record
        return stage_lineage(plan, stage, {"run_id": None}, {}) | {"outputs": [{"uri": stage_dataset(plan, stage)}]}

    def get_openlineage_facets_on_start(self) -> Any:
        return operator_lineage(self._record(None))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        return operator_lineage(self._lineage or self._record(None))

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        error = getattr(task_instance, "error", None)
        return operator_lineage(self._lineage or self._record(None), error=error if isinstance(error, BaseException) else None)
