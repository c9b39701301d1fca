"""PondChecksOperator: a sink's checks before publish as their own task in the grid.

The checks run inside the stage that writes the sink, on its staged files, before anything
is published: that is what keeps a failing dataset unpublished, so they cannot move to a task
of their own. What moves is their result. The stage task hands the results over in XCom
(`CHECKS_XCOM`, on success and on a check failure alike) and this task, right after it in the
pipeline's group, reports them:

- every check passed: success;
- a `warn=` check failed: success, with a WARNING line naming it in the log and the
  warned checks in the return value (Airflow 3.3 has no warning state and no asset checks);
- an error-level check failed: failed without retry, its message naming the checks.

It runs whatever the stage's state (trigger rule all_done); when the stage failed before its
checks ran there are no results and it is skipped, saying so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from pond_airflow.assets import checks_summary
from pond_core import api

if TYPE_CHECKING:
    from airflow.sdk import Context

CHECKS_XCOM = "pond_checks"


def checks_task_id(stage: str) -> str:
    return f"{stage}_checks"


class PondChecksOperator(BaseOperator):
    """Report the checks before publish of the stage task `stage_task_id` (see the module docstring).

    :param stage_task_id: the task id of the stage that writes the sink and runs the checks.
    :param checks: the checks' names, as compiled (shown in the task's docs).
    """

    ui_color = "#fdf3c7"

    def __init__(self, *, stage_task_id: str, checks: Sequence[str] = (), **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        kwargs["retries"] = 0  # a check result is final: a retry would read the same XCom
        kwargs.setdefault("doc_md", "Checks before publish of `{}`:\n\n{}".format(stage_task_id, "\n".join(f"- `{c}`" for c in checks)))
        super().__init__(**kwargs)
        self.stage_task_id = stage_task_id
        self.checks = list(checks)

    def execute(self, context: Context) -> dict[str, Any]:
        raw = context["ti"].xcom_pull(task_ids=self.stage_task_id, key=CHECKS_XCOM)
        if not raw:
            raise AirflowSkipException(
                f"no check results: stage task {self.stage_task_id} stopped before its checks ran (see its log)"
            )
        results = [api.CheckResult.from_dict(c) for c in raw]
        self.log.info("checks before publish of %s\n%s", self.stage_task_id, api.render_checks(results))
        failed = [r.name for r in results if not r.passed and r.severity == "error"]
        warned = [r.name for r in results if not r.passed and r.severity != "error"]
        if failed:
            raise AirflowFailException(f"checks failed: {', '.join(failed)}; nothing was published ({checks_summary(results)})")
        if warned:
            self.log.warning("checks warned: %s; the output was published", ", ".join(warned))
        return {
            "summary": checks_summary(results),
            "passed": [r.name for r in results if r.passed],
            "warned": warned,
        }
