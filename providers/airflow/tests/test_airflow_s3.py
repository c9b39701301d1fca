"""PondSqlOperator against a real S3-compatible server, with credentials only in the connection.

The secret key lives in the connection's password field; it must reach pond (the write works)
and nothing else: not XCom, not OpenLineage events, not asset events, not the task log.
"""

from __future__ import annotations

import json
import os

import pytest
from airflow_rig import asset_events, lineage_events, run_dag, task_states, xcom

DAY = "2026-11-20"


@pytest.mark.s3
def test_sql_operator_reads_and_writes_s3_without_leaking_credentials(airflow_db, rig, s3_server, monkeypatch, capfd):
    from _pond_airflow_examples import ensure_shop_day

    local_day = ensure_shop_day(DAY, str(rig["examples"] / "shop"))
    bucket = "pond-airflow-s3-test"  # named in tests/dags/pond_test_dags.py
    s3 = s3_server.client()
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(os.path.join(local_day, "part-0.parquet"), bucket, f"shop/orders/dt={DAY}/part-0.parquet")
    s3.upload_file(str(rig["examples"] / "shop" / "customers.parquet"), bucket, "shop/customers.parquet")
    monkeypatch.setenv(
        "AIRFLOW_CONN_POND_S3",
        json.dumps(
            {
                "conn_type": "pond",
                "password": s3_server.secret_access_key,
                "extra": {
                    "data_root": f"s3://{bucket}/pond",
                    "catalog_url": f"sqlite:///{rig['tmp'] / 's3-catalog.sqlite'}",
                    "executor": "local",
                    "s3_endpoint_url": s3_server.endpoint_url,
                    "s3_region": s3_server.region,
                    "s3_access_key_id": s3_server.access_key_id,
                },
            }
        ),
    )
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)

    output = f"s3://{bucket}/segment_revenue"
    run = run_dag("pond_test_s3", DAY)
    assert task_states(run) == {"segment_revenue": ("success", 1)}

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="segment_revenue/")["Contents"]]
    assert any(k.startswith(f"segment_revenue/dt={DAY}/") and k.endswith(".parquet") for k in keys)
    result = xcom(run, "segment_revenue")
    assert result["rows"] == 4 and result["sink"]["partitions"] == [f"dt={DAY}"]

    secrets = (s3_server.secret_access_key,)
    evidence = {
        "xcom": json.dumps(result),
        "lineage": json.dumps(lineage_events("pond_test_s3.segment_revenue")),
        "assets": json.dumps(asset_events(output)),
        "log": capfd.readouterr().out,
    }
    assert json.loads(evidence["assets"])[0]["extra"]["rows"] == 4
    assert "segment_revenue" in evidence["lineage"]
    assert "Pushing xcom" in evidence["log"]  # the task's own log was captured
    for where, text in evidence.items():
        for secret in secrets:
            assert secret not in text, f"the S3 secret leaked into {where}"
