"""Airflow test rig: one AIRFLOW_HOME per session, configured before anything imports Airflow.

- the metadata DB is a SQLite file, reset once per session (`airflow_db`);
- DAG bundles: the repository's `dags/` (examples) and `tests/dags/` (test-only DAGs);
- OpenLineage writes events to a file (`airflow_rig.lineage_events()` reads them back);
- `pond_default` is a connection to a per-session storage root; test DAGs that need other
  settings use other connections defined here;
- the example DAGs read and write under POND_EXAMPLES_ROOT, also per session.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import tempfile
from collections.abc import Iterator

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[2]
TMP = pathlib.Path(tempfile.mkdtemp(prefix="airflow-", dir=os.environ.get("POND_TEST_TMP")))
AIRFLOW_HOME = TMP / "airflow_home"
POND_ROOT = TMP / "pond"
EXAMPLES_ROOT = TMP / "examples"
LINEAGE_FILE = TMP / "openlineage.jsonl"
AIRFLOW_HOME.mkdir()


def conn(**extra: object) -> str:
    return json.dumps({"conn_type": "pond", "extra": {"data_root": str(POND_ROOT), "executor": "local", **extra}})


BUNDLES = [
    {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {"path": str(REPO / "dags")}},
    {"name": "pond-tests", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {"path": str(HERE / "dags")}},
]

# Airflow reads its settings when first imported, so these are set for the whole session.
AIRFLOW_ENV = {
    "AIRFLOW_HOME": str(AIRFLOW_HOME),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(BUNDLES),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME}/airflow.db",
    "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(LINEAGE_FILE), "append": True}),
    "AIRFLOW__OPENLINEAGE__NAMESPACE": "pond-tests",
    "AIRFLOW_CONN_POND_DEFAULT": conn(),
    # Transient failures must reach Airflow's own retry: pond does not retry them inside the stage.
    "AIRFLOW_CONN_POND_NO_RETRY": conn(max_retries=0),
}
os.environ.update(AIRFLOW_ENV)

# These only while this directory's tests run (other suites share the process).
TEST_ENV = {
    "POND_EXAMPLES_ROOT": str(EXAMPLES_ROOT),
    "POND_AIRFLOW_TEST_ROOT": str(TMP / "outputs"),
    "POND_AIRFLOW_LINEAGE_FILE": str(LINEAGE_FILE),
    # Test pipelines (pond_test_pipelines) must import in detached pond workers too.
    "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO / "dags"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
}
for path in (str(HERE), str(REPO / "dags")):
    if path not in sys.path:
        sys.path.insert(0, path)

import pytest  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _pond_airflow_env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in TEST_ENV.items():
            patch.setenv(key, value)
        yield


@pytest.fixture(scope="session")
def airflow_db() -> pathlib.Path:
    """A migrated, empty metadata DB (resetdb once per session)."""
    from airflow.utils import db

    db.resetdb()
    return AIRFLOW_HOME / "airflow.db"


@pytest.fixture(scope="session")
def rig() -> dict[str, pathlib.Path]:
    return {"tmp": TMP, "pond_root": POND_ROOT, "examples": EXAMPLES_ROOT, "airflow_home": AIRFLOW_HOME, "lineage": LINEAGE_FILE}
