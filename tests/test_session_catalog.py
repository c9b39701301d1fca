"""Every run is in the catalog, whoever starts it: a session's DataFrame actions and Session.sql
are recorded as the session's run, with lineage from the source files to the dataset written,
and `pond runs` / `pond lineage` show them. Building a plan imports no SQLAlchemy."""

from __future__ import annotations

import json
import subprocess
import sys

import duckdb
import pytest
from click.testing import CliRunner

import pond_core
from pond_core.cli import pond


@pytest.fixture
def orders(tmp_path):
    path = tmp_path / "orders.parquet"
    duckdb.sql(f"COPY (SELECT i AS id, i % 4 AS k, i * 1.5 AS amount FROM range(40) t(i)) TO '{path}' (FORMAT parquet)")
    return str(path)


def _cli(*args: str) -> str:
    done = CliRunner().invoke(pond, list(args), catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return done.stdout


def test_a_dataframe_run_is_listed_with_its_stages_and_lineage(tmp_path, orders):
    root, out = str(tmp_path / "pond"), str(tmp_path / "totals")
    with pond_core.init(data_root=root, executor="local", job_id="df-job") as sp:
        frame = sp.partial_sql("SELECT k, sum(amount) AS total FROM {0} GROUP BY k", sp.read_parquet(orders).repartition(2, hash_by="k"))
        frame.write_parquet(out)
        assert sp.sql("SELECT count(*) AS n FROM t", t=orders).take_all() == [{"n": 40}]
        runs = json.loads(_cli("runs", "--data-root", root, "--json"))
        assert [(r["run_id"], r["pipeline"], r["status"], r["attempts"]) for r in runs] == [("df-job", "session", "running", 1)]

    runs = json.loads(_cli("runs", "--data-root", root, "--json"))  # the job's run ends with the session
    assert [(r["run_id"], r["pipeline"], r["status"], r["attempts"]) for r in runs] == [("df-job", "session", "success", 1)]
    stages = json.loads(_cli("runs", "df-job", "--data-root", root, "--json"))["stages"]
    names = {s["stage_name"] for s in stages}
    assert {"orders_by_k", "write_orders"} <= names and all(s["status"] == "success" for s in stages)

    parts = json.loads(_cli("partitions", out, "--data-root", root, "--json"))
    assert [(p["key"], p["run_id"], p["rows"]) for p in parts] == [("", "df-job", 4)]
    tree = _cli("lineage", out, "--format", "tree", "--direction", "upstream", "--data-root", root)
    assert "<- [write_orders, 40 rows] pond://session.df-job/orders_by_k" in tree
    assert f"<- [orders_by_k] {orders}" in tree  # the chain reaches the source file


def test_a_failed_action_fails_the_run_with_its_error_and_the_next_one_runs_it_again(tmp_path, orders):
    root = str(tmp_path / "pond")
    with pond_core.init(data_root=root, executor="local", job_id="bad-job") as sp:
        with pytest.raises(pond_core.PondSqlError):
            sp.partial_sql("SELECT nope FROM {0}", sp.read_parquet(orders)).count()
        run = json.loads(_cli("runs", "bad-job", "--data-root", root, "--json"))
        assert run["status"] == "failed" and "nope" in run["error"]
        assert sp.read_parquet(orders).count() == 40
    run = json.loads(_cli("runs", "bad-job", "--data-root", root, "--json"))
    assert (run["status"], run["attempts"]) == ("success", 2)


def test_building_plans_imports_no_sqlalchemy_and_the_first_action_records(tmp_path, orders):
    code = (
        "import sys, pond_core\n"
        f"sp = pond_core.init(data_root={str(tmp_path / 'pond')!r}, executor='local')\n"
        f"df = sp.read_parquet({orders!r}).repartition(2, hash_by='k').map('k, amount')\n"
        "df.explain()\n"
        "assert 'sqlalchemy' not in sys.modules, 'planning imported SQLAlchemy'\n"
        "assert df.count() == 40\n"
        "assert 'sqlalchemy' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
