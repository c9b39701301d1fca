"""SinkWriter against the real S3-compatible server: every mode, manifests and staging."""

import dataclasses
import json

import pytest

from pond_core.errors import PondConfigError
from pond_core.io import MANIFEST_NAME, SinkSpec, SinkWriter, get_filesystem, read_dataset_files
from pond_core.io.written import PartitionFiles
from tests.test_io_sink import days, read, write

pytestmark = pytest.mark.s3


@pytest.fixture()
def root(s3_server):
    return f"s3://{s3_server.new_bucket()}/lake/ds"


def keys(s3_server, root):
    bucket, prefix = root[5:].split("/", 1)
    listing = s3_server.client().list_objects_v2(Bucket=bucket, Prefix=prefix + "/")
    return sorted(o["Key"][len(prefix) + 1:] for o in listing.get("Contents", []) if not o["Key"].endswith("/"))


def data_keys(s3_server, root):
    return [k for k in keys(s3_server, root) if k.endswith(".parquet")]


def test_error_mode_write_and_read(s3_server, s3_options, root):
    result = write(root, ["SELECT range AS x FROM range(100)", "SELECT 100 AS x"], "j1", s3_options)
    assert result.rows == 101
    assert data_keys(s3_server, root) == ["part-00000-0.parquet", "part-00001-0.parquet"]
    assert not any(k.startswith("_pond_staging/") for k in keys(s3_server, root))
    assert [r[0] for r in read(root, s3_options)] == list(range(101))
    manifest = json.loads(get_filesystem(root, s3_options).read_bytes(f"{root}/{MANIFEST_NAME}"))
    assert manifest["rows"] == 101
    with pytest.raises(PondConfigError, match=f"{root} already exists and is not empty"):
        SinkWriter(SinkSpec(root), "j2", s3_options).prepare()


def test_overwrite_deletes_old_objects_after_the_switch(s3_server, s3_options, root):
    write(root, ["SELECT 1 AS x", "SELECT 2 AS x"], "j1", s3_options)
    write(root, ["SELECT 3 AS x"], "j2", s3_options, mode="overwrite")
    assert read(root, s3_options) == [(3,)]
    assert data_keys(s3_server, root) == ["part-j2-00000-0.parquet"]


def test_overwrite_partitions_and_append(s3_server, s3_options, root):
    write(root, [days((1, "a"), (2, "b")), days((3, "c"))], "j1", s3_options, partition_by="dt")
    write(root, [days((20, "b"), (40, "d"))], "j2", s3_options, partition_by="dt", mode="overwrite_partitions")
    assert [(r[0], r[1]) for r in read(root, s3_options)] == [(1, "a"), (3, "c"), (20, "b"), (40, "d")]
    write(root, [days((5, "a"))], "j3", s3_options, partition_by="dt", mode="append")
    assert [(r[0], r[1]) for r in read(root, s3_options)] == [(1, "a"), (3, "c"), (5, "a"), (20, "b"), (40, "d")]
    assert data_keys(s3_server, root) == [
        "dt=a/part-00000-0.parquet",
        "dt=a/part-j3-00000-0.parquet",
        "dt=b/part-j2-00000-0.parquet",
        "dt=c/part-00001-0.parquet",
        "dt=d/part-j2-00000-0.parquet",
    ]


def test_debris_of_a_dead_writer_is_never_read(s3_server, s3_options, root):
    write(root, ["SELECT 1 AS x"], "j1", s3_options)
    # A writer that died after copying an object in but before its commit record.
    fs = get_filesystem(root, s3_options)
    fs.link_or_copy(f"{root}/part-00000-0.parquet", f"{root}/part-dead-00000-0.parquet")
    fs.write_bytes(f"{root}/_pond_staging/dead/tasks/p0/part-00000-0.parquet", b"garbage")
    assert read(root, s3_options) == [(1,)]
    assert read_dataset_files(root, s3_options) == [f"{root}/part-00000-0.parquet"]


def test_failed_copy_takes_back_what_it_copied(s3_server, s3_options, root):
    write(root, ["SELECT 1 AS x"], "j1", s3_options)
    writer = SinkWriter(SinkSpec(root, mode="append"), "j2", s3_options)
    writer.prepare()
    import duckdb

    from pond_core.io import configure_duckdb

    con = duckdb.connect()
    configure_duckdb(con, s3_options, [root])
    good = writer.run_copy(con, "SELECT 2 AS x", 0)
    never_written = good.files[0].path.rsplit("/", 1)[0] + "/part-j2-00001-0.parquet"
    missing = PartitionFiles(1, (dataclasses.replace(good.files[0], path=never_written),))
    with pytest.raises(FileNotFoundError):
        writer.commit([good, missing])  # the second object cannot be copied: it was never written
    assert data_keys(s3_server, root) == ["part-00000-0.parquet"]
    assert not [k for k in keys(s3_server, root) if k.startswith("_pond_staging/")]
    assert read(root, s3_options) == [(1,)]
