"""SinkWriter on local paths: names, modes, manifests and what readers see."""

import json
import os

import duckdb
import pytest

from pond_core.errors import PondConfigError
from pond_core.io import MANIFEST_NAME, SinkSpec, SinkWriter, read_dataset_files, resolve_paths


def write(path, selects, job, options=None, **spec):
    """What the engine does: prepare, one COPY per partition, commit."""
    writer = SinkWriter(SinkSpec(path=path, **spec), job, options)
    writer.prepare()
    con = duckdb.connect()
    from pond_core.io import configure_duckdb

    configure_duckdb(con, options, [path])
    outputs = [writer.run_copy(con, sql, k) for k, sql in enumerate(selects)]
    return writer.commit(outputs)


def read(path, options=None, where=""):
    files = resolve_paths(path, True, options)
    con = duckdb.connect()
    from pond_core.io import configure_duckdb

    configure_duckdb(con, options, files)
    sql = f"SELECT * FROM read_parquet({files!r}, hive_partitioning=true) {where} ORDER BY ALL"
    return con.execute(sql).fetchall()


def rel_files(root):
    out = []
    for dirpath, _, files in os.walk(root):
        out += [os.path.relpath(os.path.join(dirpath, f), root) for f in files]
    return sorted(out)


def parquet_files(root):
    return [f for f in rel_files(root) if f.endswith(".parquet")]


def days(*pairs):
    """SELECT producing (id, dt) rows."""
    return " UNION ALL ".join(f"SELECT {i} AS id, '{d}' AS dt" for i, d in pairs)


def test_unpartitioned_write_names_manifest_and_result(tmp_path):
    out = str(tmp_path / "ds")
    result = write(out, ["SELECT range AS x FROM range(10)", "SELECT range + 10 AS x FROM range(5)"], "job1")
    assert rel_files(out) == sorted(
        ["part-00000-0.parquet", "part-00001-0.parquet", MANIFEST_NAME, f"_pond_log/{os.listdir(out + '/_pond_log')[0]}"]
    )
    assert result.rows == 15 and result.path == out and result.partitions == ()
    assert list(result.files) == [f"{out}/part-00000-0.parquet", f"{out}/part-00001-0.parquet"]
    manifest = json.loads(open(f"{out}/{MANIFEST_NAME}").read())
    assert manifest["rows"] == 15 and [f["path"] for f in manifest["files"]] == ["part-00000-0.parquet", "part-00001-0.parquet"]
    assert read_dataset_files(out) == list(result.files)
    assert [r[0] for r in read(out)] == list(range(15))
    # No staging left next to the dataset.
    assert sorted(os.listdir(tmp_path)) == ["ds"]


def test_mode_error_refuses_existing_nonempty_path_before_any_task(tmp_path):
    out = str(tmp_path / "ds")
    write(out, ["SELECT 1 AS x"], "j1")
    writer = SinkWriter(SinkSpec(out), "j2")
    with pytest.raises(PondConfigError, match=f"{out} already exists and is not empty .*mode='error'"):
        writer.prepare()
    assert sorted(os.listdir(tmp_path)) == ["ds"]  # no staging created
    os.makedirs(tmp_path / "empty")
    write(str(tmp_path / "empty"), ["SELECT 2 AS x"], "j3")  # an empty directory is fine
    assert read(str(tmp_path / "empty")) == [(2,)]


def test_overwrite_replaces_everything(tmp_path):
    out = str(tmp_path / "ds")
    write(out, ["SELECT 1 AS x", "SELECT 2 AS x"], "j1")
    write(out, ["SELECT 9 AS x"], "j2", mode="overwrite")
    assert read(out) == [(9,)]
    assert parquet_files(out) == ["part-j2-00000-0.parquet"]
    assert sorted(os.listdir(tmp_path)) == ["ds"]


def test_overwrite_partitions_replaces_exactly_the_new_partitions(tmp_path):
    out = str(tmp_path / "ds")
    write(out, [days((1, "2024-01-01"), (2, "2024-01-02")), days((3, "2024-01-03"))], "j1", partition_by="dt")
    assert parquet_files(out) == [
        "dt=2024-01-01/part-00000-0.parquet", "dt=2024-01-02/part-00000-0.parquet", "dt=2024-01-03/part-00001-0.parquet"
    ]
    result = write(out, [days((20, "2024-01-02"), (40, "2024-01-04"))], "j2", partition_by="dt", mode="overwrite_partitions")
    assert list(result.partitions) == ["dt=2024-01-02", "dt=2024-01-04"]
    assert [(r[0], str(r[1])) for r in read(out)] == [(1, "2024-01-01"), (3, "2024-01-03"), (20, "2024-01-02"), (40, "2024-01-04")]
    assert parquet_files(out) == [
        "dt=2024-01-01/part-00000-0.parquet", "dt=2024-01-02/part-j2-00000-0.parquet",
        "dt=2024-01-03/part-00001-0.parquet", "dt=2024-01-04/part-j2-00000-0.parquet",
    ]
    manifest = json.loads(open(f"{out}/{MANIFEST_NAME}").read())
    assert manifest["partitions"] == ["dt=2024-01-01", "dt=2024-01-02", "dt=2024-01-03", "dt=2024-01-04"]
    assert manifest["rows"] == 4


def test_append_adds_job_tagged_files(tmp_path):
    out = str(tmp_path / "ds")
    write(out, [days((1, "a"))], "j1", partition_by="dt")
    write(out, [days((2, "a"), (3, "b"))], "j2", partition_by="dt", mode="append")
    assert [r[0] for r in read(out)] == [1, 2, 3]
    assert parquet_files(out) == ["dt=a/part-00000-0.parquet", "dt=a/part-j2-00000-0.parquet", "dt=b/part-j2-00000-0.parquet"]


def test_append_to_missing_path_creates_it(tmp_path):
    out = str(tmp_path / "new" / "ds")
    write(out, ["SELECT 5 AS x"], "j1", mode="append")
    assert read(out) == [(5,)]


def test_writes_into_a_dataset_pond_never_wrote_keep_its_files(tmp_path):
    out = tmp_path / "legacy"
    os.makedirs(out / "dt=a")
    os.makedirs(out / "dt=b")
    duckdb.sql(f"COPY (SELECT 1 AS id) TO '{out}/dt=a/old.parquet' (FORMAT parquet)")
    duckdb.sql(f"COPY (SELECT 2 AS id) TO '{out}/dt=b/old.parquet' (FORMAT parquet)")
    write(str(out), [days((7, "b"))], "j1", partition_by="dt", mode="overwrite_partitions")
    assert [(r[0], r[1]) for r in read(str(out))] == [(1, "a"), (7, "b")]
    write(str(out), [days((8, "c"))], "j2", partition_by="dt", mode="append")
    assert [(r[0], r[1]) for r in read(str(out))] == [(1, "a"), (7, "b"), (8, "c")]


def test_layout_change_needs_overwrite(tmp_path):
    out = str(tmp_path / "ds")
    write(out, [days((1, "a"))], "j1", partition_by="dt")
    with pytest.raises(PondConfigError, match=r"partitioned by \['dt'\], not nothing"):
        SinkWriter(SinkSpec(out, mode="append"), "j2").prepare()
    write(out, ["SELECT 3 AS id"], "j3", mode="overwrite")
    assert read(out) == [(3,)]


def test_target_file_size_compression_and_row_groups(tmp_path):
    out = str(tmp_path / "ds")
    sql = "SELECT range AS x, md5(range::VARCHAR) AS s FROM range(200000)"
    result = write(out, [sql], "j1", target_file_size=1_000_000, compression="zstd", compression_level=9, row_group_size=20000)
    names = [os.path.basename(f) for f in result.files]
    assert len(names) >= 3 and names[:3] == ["part-00000-0.parquet", "part-00000-1.parquet", "part-00000-2.parquet"]
    assert all(os.path.getsize(f) < 1_500_000 for f in result.files)
    meta = duckdb.sql(f"SELECT DISTINCT compression FROM parquet_metadata('{out}/*.parquet')").fetchall()
    assert meta == [("ZSTD",)]
    sizes = duckdb.sql(f"SELECT max(row_group_num_rows) FROM parquet_metadata('{out}/*.parquet')").fetchone()[0]
    assert sizes <= 20480
    assert sum(r[0] for r in duckdb.sql(f"SELECT count(*) FROM '{out}/*.parquet'").fetchall()) == 200000


def test_rerun_of_a_committed_job_returns_the_same_result(tmp_path):
    out = str(tmp_path / "ds")
    first = write(out, [days((1, "a"))], "job-7", partition_by="dt", mode="append")
    writer = SinkWriter(SinkSpec(out, mode="append", partition_by=["dt"]), "job-7")
    writer.prepare()
    assert writer.commit([]) == first
    assert [r[0] for r in read(out)] == [1]


def test_abort_leaves_the_dataset_and_no_staging(tmp_path):
    out = str(tmp_path / "ds")
    write(out, ["SELECT 1 AS x"], "j1")
    writer = SinkWriter(SinkSpec(out, mode="overwrite"), "j2")
    writer.prepare()
    con = duckdb.connect()
    writer.run_copy(con, "SELECT 2 AS x", 0)
    assert len(os.listdir(tmp_path)) == 2  # the hidden staging sibling
    writer.abort()
    assert sorted(os.listdir(tmp_path)) == ["ds"] and read(out) == [(1,)]


def test_spec_validation():
    with pytest.raises(PondConfigError, match="unknown write mode 'upsert'"):
        SinkSpec("/x", mode="upsert")
    with pytest.raises(PondConfigError, match="needs partition_by"):
        SinkSpec("/x", mode="overwrite_partitions")
    with pytest.raises(PondConfigError, match="unknown compression"):
        SinkSpec("/x", compression="rar")
    with pytest.raises(PondConfigError, match="file_prefix"):
        SinkSpec("/x", file_prefix="../p")
    assert SinkSpec("/x", partition_by="dt").partition_by == ["dt"]
