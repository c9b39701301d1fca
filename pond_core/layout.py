"""RunLayout: every path of one run, named in one place.

A run keeps its state under `<data_root>/jobs/<run_id>/`:

    staging/<stage_id>/...        stage outputs, task records and manifests (execute/store.py)
    airflow/<stage>.<token>.*     state files of detached Airflow stage workers
    queue/ output/ log/           smallpond's job folders, kept for programs that look there
    status.json                   how a session ended

Spill files are local to the machine that runs a task, never in object storage: under
`spill_dir/<run_id>` when set, else the run's `temp/` for a local data root, else the system
temp directory.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile

from pond_core.errors import PondConfigError
from pond_core.io.fs import check_path_length, join_path

SMALLPOND_DIRS = ("queue", "staging", "output", "log")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+=@-]{0,199}$")


def check_run_id(run_id: str) -> str:
    """A run id names a folder under jobs/: letters, digits and . _ - : + = @ only."""
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id) or ".." in run_id:
        raise PondConfigError(
            f"run id {run_id!r} is not allowed: use letters, digits and . _ - : + = @ "
            "(it names a folder under <data-root>/jobs/)"
        )
    return run_id


# What a run adds below its root: staging/<stage id>/<attempt folder>/<bucket>/<file>.
RUN_ROOM = 160


@dataclasses.dataclass(frozen=True)
class RunLayout:
    data_root: str
    run_id: str
    spill_dir: str | None = None  # the spill_dir setting

    def __post_init__(self) -> None:
        # Before any folder is made: a root too long for its storage would fail half-way.
        check_path_length(self.run_root, "data_root: the run folder", room=RUN_ROOM)

    @property
    def run_root(self) -> str:
        return join_path(self.data_root, "jobs", self.run_id)

    @property
    def staging(self) -> str:
        return join_path(self.run_root, "staging")

    def stage_dir(self, stage_id: str) -> str:
        return join_path(self.staging, stage_id)

    @property
    def status_file(self) -> str:
        return join_path(self.run_root, "status.json")

    def orchestrator_dir(self, orchestrator: str) -> str:
        """Where a detached orchestrator worker and its waiter exchange state files."""
        return join_path(self.run_root, orchestrator)

    def job_dirs(self) -> list[str]:
        return [join_path(self.run_root, name) for name in SMALLPOND_DIRS]

    @property
    def inputs_dir(self) -> str:
        """In-memory sources (from_arrow, from_pandas, from_items) stored by content, shared by runs."""
        return join_path(self.data_root, "inputs")

    @property
    def spill_root(self) -> str:
        """Local scratch for this run's tasks (spill files); always a local path."""
        if self.spill_dir:
            return os.path.join(self.spill_dir, self.run_id)
        if "://" in self.data_root:
            return os.path.join(tempfile.gettempdir(), "pond", self.run_id)
        return os.path.join(self.run_root, "temp")

    def task_spill_dir(self, stage_id: str, partition: int, attempt: int) -> str:
        return os.path.join(self.spill_root, f"{stage_id}-p{partition}-a{attempt}")
