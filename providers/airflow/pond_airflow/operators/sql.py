"""PondSqlOperator: templated DuckDB SQL over named Parquet inputs, run by pond.

    PondSqlOperator(
        task_id="customer_spend",
        sql="SELECT dt, customer_id, sum(amount) AS spend FROM orders WHERE dt = '{{ ds }}' GROUP BY ALL",
        inputs={"orders": "s3://shop/orders"},          # paths, globs, s3:// URLs, hive datasets
        npartitions=8,                                    # optional: pond chooses from sizes and cores
        output_path="s3://shop/customer_spend", partition_by="dt", mode="overwrite_partitions",
    )

The SQL names inputs like tables and reads them whole, as in DuckDB; pond's SQL planner
(docs/sql.md) places the exchanges, so joins on different keys run as partitioned stages.
`npartitions` fixes the partition count; `hash_by` hash-partitions every input holding those
columns first (a join or aggregate on them then needs no exchange).

When the connection names a pond service, the task compiles the statement here and the
service runs its stages on the cluster, one after another, their log lines in the task log;
killing the task cancels the running stage there (pond_airflow.service).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, BaseOperator

from pond_airflow import assets, service
from pond_airflow.hooks.pond import PondHook
from pond_airflow.openlineage import dataset_uri, operator_lineage
from pond_airflow.runs import fail_for, first_try, pond_run_id, xcom_result
from pond_core import api

if TYPE_CHECKING:
    from airflow.sdk import Context

MODES = ("error", "overwrite", "overwrite_partitions", "append")


SQL_PIPELINE = "pond_core.named_sql:sql_pipeline"
ROWS_PIPELINE = "pond_core.named_sql:named_sql"  # a query without an output: rows for XCom


class PondSqlOperator(BaseOperator):
    """Run DuckDB SQL over named Parquet inputs with pond; write a dataset or return rows.

    :param sql: the query (templated; a `.sql` file path works too).
    :param inputs: table name -> path, glob, s3:// URL or (hive) dataset directory; templated.
    :param hive_partitioning: read `key=value` directories as columns: True, False, or a dict
        per input name; default (None): where the files are in such directories.
    :param hash_by: hash-repartition every input holding these columns first (an override).
    :param npartitions: partitions of the planned stages (default: from sizes and cores; 4 with `hash_by`).
    :param output_path: where to write the result as Parquet (templated); without it, the
        result (at most `max_xcom_rows` rows) goes to XCom.
    :param partition_by: hive partition columns of the output.
    :param mode: error | overwrite | overwrite_partitions | append.
    :param output_table: instead of `output_path`, an Iceberg table (`namespace.table`,
        templated) committed as one snapshot; `iceberg_catalog` holds the catalog's non-secret
        properties (`uri`, `warehouse`); mode is append (default), overwrite or overwrite_partitions.
    :param checks: checks before publish (`pond_core.checks`: not_null(...), unique(...), ...),
        run on the staged output; a failing one fails the task and publishes nothing.
    :param pond_conn_id: the pond connection; `hook_params` override its settings.
    """

    template_fields: Sequence[str] = ("sql", "inputs", "output_path", "output_table")
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"sql": "sql", "inputs": "json"}
    ui_color = "#e3f2fd"

    def __init__(
        self,
        *,
        sql: str,
        inputs: dict[str, str | list[str]],
        hive_partitioning: bool | dict[str, bool] | None = None,
        hash_by: str | Sequence[str] | None = None,
        npartitions: int | None = None,
        output_path: str | None = None,
        partition_by: str | Sequence[str] | None = None,
        mode: str | None = None,
        output_table: str | None = None,
        iceberg_catalog: dict[str, str] | str | None = None,
        checks: Sequence[Any] = (),
        max_xcom_rows: int = 100,
        pond_conn_id: str = PondHook.default_conn_name,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        api.check_named_inputs(inputs, hash_by, npartitions, hive_partitioning)  # raises ValueError
        if output_path and output_table:
            raise ValueError("give output_path (a Parquet dataset) or output_table (an Iceberg table), not both")
        mode = mode or ("append" if output_table else "error")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if output_path and "outlets" not in kwargs and "{{" not in output_path:
            kwargs["outlets"] = [Asset(dataset_uri(output_path))]
            if "inlets" not in kwargs:  # the asset graph's chain: inputs -> this task -> output
                paths = [p for v in inputs.values() for p in ([v] if isinstance(v, str) else v)]
                kwargs["inlets"] = [Asset(u) for u in dict.fromkeys(assets.source_uri(p) for p in paths)]
        super().__init__(**kwargs)
        self.sql = sql
        self.inputs = dict(inputs)
        self.hive_partitioning = hive_partitioning
        self.hash_by = [hash_by] if isinstance(hash_by, str) else (list(hash_by) if hash_by else None)
        self.npartitions = npartitions
        self.output_path = output_path
        self.partition_by = partition_by
        self.mode = mode
        self.output_table = output_table
        self.iceberg_catalog = iceberg_catalog
        self.checks = [c if isinstance(c, dict) else c.to_dict() for c in checks]  # plain data: DAGs serialise
        self.max_xcom_rows = max_xcom_rows
        self.pond_conn_id = pond_conn_id
        self.hook_params = dict(hook_params or {})
        self._result: dict[str, Any] | None = None
        self._columns: dict[str, Any] | None = None  # the output's column lineage, once written
        self._hook: PondHook | None = None
        self._session: Any = None
        self._executor: api.Executor | None = None
        self._attempt: tuple[str, str] | None = None  # (run id, stage id) running on the service

    @property
    def hook(self) -> PondHook:
        """One hook per task: its connection is looked up once, not at every use."""
        if self._hook is None:
            self._hook = PondHook(self.pond_conn_id, **self.hook_params)
        return self._hook

    def _frame(self, sp: Any) -> Any:
        return api.named_sql(
            sp, self.sql, self.inputs, hash_by=self.hash_by, npartitions=self.npartitions, hive_partitioning=self.hive_partitioning
        )

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        scope = ti.task_id if ti.map_index in (None, -1) else f"{ti.task_id}.{ti.map_index}"
        run_id = pond_run_id(context, scope)
        hook = self.hook
        if self.output_path or self.output_table:
            return self._write(context, run_id)
        if hook.service is not None:
            return self._rows_on_service(context, run_id)
        with hook.get_conn(job_id=run_id) as session:  # rows to XCom: a query, not a dataset
            self._session = session
            try:
                df = self._frame(session)
                if first_try(context):
                    df.recompute()
                out = self._rows(df, run_id)
            except api.PondError as exc:
                if isinstance(exc, api.PondCheckError):
                    self.log.error("checks failed, nothing was published\n%s", api.render_checks(exc.results))
                fail_for(exc, lambda text: _scrub(text, hook))
            finally:
                self._session = None
        self._result = out
        return out

    def _write(self, context: Context, run_id: str) -> dict[str, Any]:
        """Run the statement as the pipeline `pond_core.named_sql:sql_pipeline`: a pond run
        recorded in the catalog (`pond runs`, `pond partitions`, `pond lineage`)."""
        hook = self.hook
        partition_by = self.partition_by if self.partition_by is None or isinstance(self.partition_by, str) else list(self.partition_by)
        params = api.sql_pipeline_params(
            self.sql, self.inputs, self.output_path, partition_by=partition_by, mode=self.mode, hash_by=self.hash_by,
            npartitions=self.npartitions, hive_partitioning=self.hive_partitioning, output_table=self.output_table,
            iceberg_catalog=self.iceberg_catalog, checks=self.checks,
        )
        if hook.service is not None:
            try:
                plan = api.compile_pipeline(SQL_PIPELINE, params)  # where it runs is the service's
            except api.PondError as exc:
                fail_for(exc, lambda text: _scrub(text, hook))
            committed = api.StageResult.from_dict(self._run_on_service(context, plan, run_id))
        else:
            plan, committed = self._run_here(context, run_id, params)
        result = committed.to_dict()
        self._result = result
        try:
            (written,) = api.stage_lineage(plan, plan.final, committed, storage=hook.settings.storage()).outputs
            self._columns = written.to_dict().get("column_lineage")
        except (OSError, api.PondError) as exc:
            if hook.service is None:
                raise
            # A thin client may not reach the sources the service reads: lineage without columns.
            self.log.warning("no column lineage for %s: the sources' schemas are not readable here (%s)", self.task_id, exc)
        target = self.output_path or str(result.get("location"))
        assets.emit(context, self.outlets, target, assets.event_extra(result, run_id), match=False)
        return xcom_result(result)

    def _run_here(self, context: Context, run_id: str, params: dict[str, Any]) -> tuple[api.PhysicalPlan, api.StageResult]:
        hook = self.hook
        settings = hook.session_settings(job_id=run_id)
        self._executor = api.make_executor(settings)
        try:
            plan = api.compile_pipeline(SQL_PIPELINE, params, data_root=settings.data_root, storage=hook.settings.storage())
            done = api.run_plan(
                plan, run_id, settings=settings, storage=hook.settings.storage(), executor=self._executor, force=first_try(context)
            )
        except api.PondError as exc:
            if isinstance(exc, api.PondCheckError):
                self.log.error("checks failed, nothing was published\n%s", api.render_checks(exc.results))
            fail_for(exc, lambda text: _scrub(text, hook))
        finally:
            executor, self._executor = self._executor, None
            executor.shutdown()
        return plan, done.manifests[plan.final.name].result

    # -- on a pond service --------------------------------------------------------------------

    def _run_on_service(self, context: Context, plan: api.PhysicalPlan, run_id: str) -> dict[str, Any]:
        """Run the plan's stages on the service in order; return the final stage's result."""
        force, settings = first_try(context), self.hook.settings.service_settings()
        payload: dict[str, Any] = {}
        with self.hook.service_client() as client:
            for stage in plan.stages:
                request = service.StageRequest(plan, run_id, stage.name, force, None, settings)
                payload = service.run(client, request, self.log, 0.2, self._track)
                if payload.get("state") != "succeeded":
                    self._service_failed(payload, stage.name, run_id)
        return dict(payload["result"])

    def _track(self, run_id: str | None, stage_id: str | None) -> None:
        self._attempt = (run_id, stage_id) if run_id and stage_id else None

    def _service_failed(self, payload: dict[str, Any], stage: str, run_id: str) -> None:
        failure = service.Failure.of(payload, stage, run_id)
        if failure.checks is not None:
            self.log.error("checks failed, nothing was published\n%s", api.render_checks(failure.checks))
        if failure.retryable:
            raise api.PondTransientError(failure.message)
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(failure.message)

    def _rows_on_service(self, context: Context, run_id: str) -> dict[str, Any]:
        """A query without an output: the service writes its result under the run, this task
        reads it back (it needs read access to the service's data root) for XCom."""
        params = {"sql": self.sql, "inputs": self.inputs, "hash_by": self.hash_by, "npartitions": self.npartitions,
                  "hive_partitioning": self.hive_partitioning}
        try:
            plan = api.compile_pipeline(ROWS_PIPELINE, params)
        except api.PondError as exc:
            fail_for(exc, lambda text: _scrub(text, self.hook))
        result = self._run_on_service(context, plan, run_id)
        location = str(result.get("location"))
        try:
            import pyarrow.dataset as ds

            table = ds.dataset(location, format="parquet").to_table()
        except (OSError, ValueError) as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(
                f"the pond service wrote the query's result to {location}, which this task cannot read ({exc}); "
                "give output_path (a dataset the task then reports on) instead of returning rows"
            ) from None
        finally:
            with self.hook.service_client() as client:
                client.drop_intermediates(run_id)
        out = self._rows_of(table, run_id)
        self._result = out
        return out

    def _rows(self, df: Any, run_id: str) -> dict[str, Any]:
        return self._rows_of(df.to_arrow(), run_id)

    def _rows_of(self, table: Any, run_id: str) -> dict[str, Any]:
        import json

        rows = table.slice(0, self.max_xcom_rows).to_pylist()
        if table.num_rows > self.max_xcom_rows:
            self.log.warning("result has %d rows; XCom gets the first %d", table.num_rows, self.max_xcom_rows)
        return {
            "run_id": run_id,
            "rows": table.num_rows,
            "schema": [[f.name, str(f.type)] for f in table.schema],
            "records": json.loads(json.dumps(rows, default=str)),
            "truncated": table.num_rows > self.max_xcom_rows,
        }

    def on_kill(self) -> None:
        session, executor, attempt = self._session, self._executor, self._attempt
        if session is not None:
            session.executor().cancel_all()
        if executor is not None:
            executor.cancel_all()
        if attempt is not None:  # waiting for the service: stop the stage there
            with self.hook.service_client() as client:
                client.cancel(*attempt)

    # -- lineage ------------------------------------------------------------------------------

    def _record(self) -> dict[str, Any]:
        inputs = []
        for value in self.inputs.values():
            for path in [value] if isinstance(value, str) else value:
                inputs.append({"uri": path})
        outputs = []
        if self.output_path or self.output_table:
            output: dict[str, Any] = {"uri": self.output_path or (self._result or {}).get("location") or f"iceberg://pond/{self.output_table}"}
            if self._result and self._result.get("checks"):
                output["assertions"] = [_assertion(c) for c in self._result["checks"]]
            if self._columns is not None:
                output["column_lineage"] = self._columns
            if self._result:
                output["schema"] = [{"name": n, "type": t} for n, t in self._result.get("schema") or []]
                output["rows"] = (self._result.get("sink") or {}).get("rows", self._result.get("rows"))
                output["bytes"] = self._result.get("bytes")
            outputs.append(output)
        return {
            "inputs": inputs,
            "outputs": outputs,
            "sql": self.sql,
            "run_id": (self._result or {}).get("run_id"),
            "stage_id": (self._result or {}).get("stage_id"),
        }

    def get_openlineage_facets_on_start(self) -> Any:
        return operator_lineage(self._record())

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        return operator_lineage(self._record())

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        error = getattr(task_instance, "error", None)
        return operator_lineage(self._record(), error=error if isinstance(error, BaseException) else None)


def _scrub(text: str, hook: PondHook) -> str:
    from pond_airflow.hooks.pond import scrub

    return scrub(text, hook.settings)


def _assertion(check: dict[str, Any]) -> dict[str, Any]:
    return {
        "assertion": check["kind"], "success": check["passed"], "column": check.get("columns_checked") or None,
        "severity": check["severity"], "name": check["name"], "actual": str(check["failing"]),
    }
