"""Issue 3 end to end through pond's public API: s3:// everywhere a local path works."""

import pyarrow as pa
import pytest

import pond_core
from pond_core.errors import PondConfigError, PondDataError

pytestmark = pytest.mark.s3


@pytest.fixture()
def session(s3_server, s3_options):
    bucket = s3_server.new_bucket()
    sp = pond_core.init(data_root=f"s3://{bucket}/pond", storage_options=s3_options, executor="local")
    try:
        yield sp, bucket
    finally:
        sp.shutdown()


def rows(sp, sql, df):
    return sp.partial_sql(sql, df).to_arrow().to_pylist()


def test_s3_root_hive_write_read_filter_and_backfill(session, s3_server):
    sp, bucket = session
    out = f"s3://{bucket}/warehouse/events"
    days = [f"2026-11-{d:02d}" for d in (18, 19, 20)]
    events = sp.from_arrow(pa.table({"id": list(range(30)), "dt": [days[i % 3] for i in range(30)]}))
    result = events.write_parquet(out, partition_by="dt")
    assert result["rows"] == 30 and result["sink"]["partitions"] == [f"dt={d}" for d in days]

    back = sp.read_parquet(out)
    assert rows(sp, "SELECT typeof(dt) AS t, count(*) AS n FROM {0} WHERE dt = DATE '2026-11-19' GROUP BY 1", back) == [
        {"t": "DATE", "n": 10}
    ]
    # A daily backfill: replace one day, keep the others.
    fix = sp.from_arrow(pa.table({"id": [100, 101], "dt": ["2026-11-19", "2026-11-19"]}))
    fix.write_parquet(out, partition_by="dt", mode="overwrite_partitions")
    counts = rows(sp, "SELECT CAST(dt AS VARCHAR) AS dt, count(*) AS n FROM {0} GROUP BY 1 ORDER BY 1", sp.read_parquet(out))
    assert counts == [{"dt": "2026-11-18", "n": 10}, {"dt": "2026-11-19", "n": 2}, {"dt": "2026-11-20", "n": 10}]
    with pytest.raises(PondConfigError, match="already exists and is not empty"):
        fix.write_parquet(out, partition_by="dt")


def test_s3_csv_and_json_sources_and_bad_partition_values(session, s3_server):
    sp, bucket = session
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key="raw/a.csv", Body=b"1,x\n2,y\n")
    client.put_object(Bucket=bucket, Key="raw/b.json", Body=b'{"k": 3}\n{"k": 4}\n')
    csv = sp.read_csv(f"s3://{bucket}/raw/*.csv", schema={"n": "BIGINT", "s": "VARCHAR"})
    assert rows(sp, "SELECT sum(n) AS total FROM {0}", csv) == [{"total": 3}]
    js = sp.read_json(f"s3://{bucket}/raw/b.json", schema={"k": "BIGINT"})
    assert rows(sp, "SELECT sum(k) AS total FROM {0}", js) == [{"total": 7}]
    bad = sp.from_arrow(pa.table({"id": [1], "dt": ["../../etc"]}))
    with pytest.raises(PondDataError, match="invalid partition key value for column \"dt\": '../../etc'"):
        bad.write_parquet(f"s3://{bucket}/bad", partition_by="dt")
    assert client.list_objects_v2(Bucket=bucket, Prefix="bad").get("KeyCount") == 0
