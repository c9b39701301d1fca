"""Pond's own per-task and fixed costs (issue 25), checked by what they do, never by a clock.

A stage finds the partitions an earlier attempt committed with one listing of its `_tasks/`
folder, not a look-up per partition; it must still find exactly the committed ones (a record
whose files were cleaned away is no commit, a temporary file of a write in flight is no record).
Every job's time is also profiled by phase (pond_core/phases.py) for the benchmarks.
"""

from __future__ import annotations

import os
import subprocess
import sys

import duckdb

import pond_core
from pond_core import phases
from pond_core.catalog import migrate
from pond_core.execute.results import CommittedPartition
from pond_core.execute.store import StageStore
from pond_core.io.filesystems import get_filesystem
from pond_core.io.written import WrittenFile

STAGE = "s-tiny"


def _commit(store: StageStore, partition: int, tmp_path) -> str:
    path = str(tmp_path / f"p{partition}.parquet")
    duckdb.sql(f"COPY (SELECT {partition} AS k) TO '{path}' (FORMAT parquet)")
    size = os.path.getsize(path)
    store.commit_task(STAGE, CommittedPartition(partition, 1, (WrittenFile(path, 1, size),), (("k", "INTEGER"),), 0.01))
    return path


def test_committed_partitions_are_found_from_one_listing(tmp_path):
    root = str(tmp_path / "staging")
    store = StageStore(get_filesystem(root, None), root)
    assert store.task_records(STAGE, 5) == {}  # a stage never started: no folder, no records

    for k in (0, 2, 3, 7):
        _commit(store, k, tmp_path)
    os.remove(tmp_path / "p3.parquet")  # cleaned away after its commit: runs again
    tasks = os.path.join(store.stage_dir(STAGE), "_tasks")
    with open(os.path.join(tasks, ".p00004.json.tmp-0123456789ab"), "w") as fh:
        fh.write("{")  # a write killed half-way

    found = store.task_records(STAGE, 5)

    assert sorted(found) == [0, 2]  # 7 is beyond this stage's 5 partitions
    assert found[2] == store.task_record(STAGE, 2)
    assert found[2].files[0].path == str(tmp_path / "p2.parquet")


def test_a_job_is_profiled_by_phase(tmp_path):
    src = str(tmp_path / "tiny.parquet")
    duckdb.sql(f"COPY (SELECT range AS key, range % 7 AS v FROM range(100)) TO '{src}' (FORMAT parquet)")
    sp = pond_core.init(data_root=str(tmp_path / "pond"), executor="local")
    try:
        phases.reset()
        rows = sp.partial_sql("SELECT key, v * 2 AS v2 FROM {0}", sp.read_parquet(src).repartition(4, by_rows=True)).take_all()
    finally:
        sp.shutdown()
    spent = phases.seconds()

    assert len(rows) == 100
    assert set(spent) == {p.value for p in phases.Phase}
    for phase in ("plan", "catalog", "list", "tasks", "commit", "read-back"):
        assert spent[phase] > 0, f"phase {phase} was not timed: {spent}"
    phases.reset()
    assert set(phases.seconds().values()) == {0.0}


def test_the_shipped_head_read_from_file_names_is_alembics_head():
    assert migrate.shipped_head() == migrate.head_revision()


_RUN_TWICE = """
import sys, pond_core
sp = pond_core.init(executor="local", data_root=sys.argv[1])
assert sp.read_parquet(sys.argv[2]).count() == 100
sp.shutdown()
print("alembic" in sys.modules)
"""


def test_a_run_on_a_catalog_at_head_does_not_import_alembic(tmp_path):
    src = str(tmp_path / "tiny.parquet")
    duckdb.sql(f"COPY (SELECT range AS key FROM range(100)) TO '{src}' (FORMAT parquet)")

    def alembic_imported() -> str:
        done = subprocess.run([sys.executable, "-c", _RUN_TWICE, str(tmp_path / "pond"), src], capture_output=True, text=True, check=True)
        return done.stdout.strip()

    assert alembic_imported() == "True"  # a new catalog: Alembic creates its tables
    assert alembic_imported() == "False"  # at head: one SELECT, no Alembic
