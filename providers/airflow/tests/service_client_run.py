"""Run DAGs with dag.test() in a client environment (no Ray) against a pond service.

`python service_client_run.py SPEC.json OUT.json`, run by the client venv's Python
(tests/client_venv.py) from test_airflow_service*.py. SPEC: {"airflow_home", "examples_root",
"service_url", "token", "runs": [{"key", "dag_id", "day", "conf"}]}. OUT: whether Ray was importable,
and per run key its state, each task's (state, try) and return XCom. Everything Airflow needs is set
here before Airflow is imported; the pond_default connection names the service.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import pathlib
import sys
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[2]
FOLDERS = [REPO / "dags", HERE / "service_dags"]


def configure(spec: dict[str, Any]) -> None:
    home = pathlib.Path(spec["airflow_home"])
    home.mkdir(parents=True, exist_ok=True)
    bundles = [
        {"name": f"b{i}", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {"path": str(f)}}
        for i, f in enumerate(FOLDERS)
    ]
    os.environ.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__CORE__DAGS_FOLDER": str(FOLDERS[0]),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(home / "ol.jsonl"), "append": True}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "pond-service-tests",
        "AIRFLOW_CONN_POND_DEFAULT": json.dumps(
            {"conn_type": "pond", "password": spec["token"], "extra": {"service_url": spec["service_url"]}}
        ),
        "POND_EXAMPLES_ROOT": spec["examples_root"],
    })
    for path in (str(HERE), str(REPO / "dags")):
        sys.path.insert(0, path)


def run(dag_id: str, day: str, conf: dict[str, Any] | None) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag = next(b.dags[dag_id] for b in (DagBag(dag_folder=str(f)) for f in FOLDERS) if dag_id in b.dags)
    d = dt.date.fromisoformat(day)
    dag_run = dag.test(logical_date=dt.datetime(d.year, d.month, d.day, tzinfo=dt.timezone.utc), run_conf=conf)
    with create_session() as session:
        tis = session.execute(
            select(TaskInstance.task_id, TaskInstance.state, TaskInstance.try_number).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == dag_run.run_id
            )
        ).all()
        xcoms = session.execute(
            select(XComModel.task_id, XComModel.key, XComModel.value).where(
                XComModel.dag_id == dag_id, XComModel.run_id == dag_run.run_id
            )
        ).all()
    values: dict[str, dict[str, Any]] = {}
    for task_id, key, value in xcoms:
        values.setdefault(task_id, {})[key] = _json(value)
    return {
        "dag_id": dag_id,
        "run_id": dag_run.run_id,
        "state": str(getattr(dag_run.state, "value", dag_run.state)),
        "tasks": {t: [str(getattr(s, "value", s)), n] for t, s, n in tis},
        "xcom": values,
    }


def _json(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def main() -> None:
    spec = json.loads(pathlib.Path(sys.argv[1]).read_text())
    configure(spec)
    out: dict[str, Any] = {"ray_importable": importlib.util.find_spec("ray") is not None, "runs": {}}
    from airflow.utils import db

    db.resetdb()
    for item in spec["runs"]:
        out["runs"][item["key"]] = run(item["dag_id"], item["day"], item.get("conf"))
    out["ray_imported"] = "ray" in sys.modules
    pathlib.Path(sys.argv[2]).write_text(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
