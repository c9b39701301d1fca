"""smallpond's LogDataSet: log the first rows of a result (a Python script node)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pond_core.compat.smallpond.execution.task import PythonScriptTask, RuntimeContext
from pond_core.compat.smallpond.logical.dataset import DataSet
from pond_core.compat.smallpond.logical.node import Context, Node, PythonScriptNode


class LogDataSetTask(PythonScriptTask):
    num_rows = 200

    @property
    def exec_on_scheduler(self) -> bool:
        return True

    def process(self, runtime_ctx: RuntimeContext, input_datasets: list[DataSet], output_path: str) -> bool:
        for dataset in input_datasets:
            if not dataset.empty:
                dataset.log(self.num_rows)
        return True


class LogDataSet(PythonScriptNode):
    def __init__(self, ctx: Context, input_deps: Sequence[Node], num_rows: int = 200, **kwargs: Any) -> None:
        super().__init__(ctx, input_deps, **kwargs)
        self.num_rows = num_rows

    def spawn(self, *args: Any, **kwargs: Any) -> LogDataSetTask:
        task = LogDataSetTask(*args, **kwargs)
        task.num_rows = self.num_rows
        return task
