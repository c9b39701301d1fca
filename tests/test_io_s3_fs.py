"""S3FileSystem against a real S3-compatible server (moto) on 127.0.0.1."""

import pytest

from pond_core.errors import PondStorageError
from pond_core.io import get_filesystem, resolve_paths
from pond_core.io.s3 import S3FileSystem, glob_regex

pytestmark = pytest.mark.s3


@pytest.fixture()
def bucket(s3_server):
    return s3_server.new_bucket()


@pytest.fixture()
def fs(s3_options, bucket):
    return get_filesystem(f"s3://{bucket}", s3_options)


def put(fs, url, data=b"12345"):
    fs.write_bytes(url, data)


def test_get_filesystem_returns_one_cached_s3_filesystem(s3_options, bucket):
    a = get_filesystem(f"s3://{bucket}/x", s3_options)
    assert isinstance(a, S3FileSystem)
    assert get_filesystem(f"s3://{bucket}/y", s3_options) is a


def test_write_read_exists_isdir(fs, bucket):
    root = f"s3://{bucket}"
    put(fs, f"{root}/d/sub/a.bin", b"hello")
    assert fs.read_bytes(f"{root}/d/sub/a.bin") == b"hello"
    assert fs.exists(f"{root}/d/sub/a.bin") and not fs.isdir(f"{root}/d/sub/a.bin")
    assert fs.isdir(f"{root}/d") and fs.isdir(f"{root}/d/sub")
    assert not fs.exists(f"{root}/nothing")
    with pytest.raises(FileNotFoundError):
        fs.read_bytes(f"{root}/nothing")


def test_glob_and_list(fs, bucket):
    root = f"s3://{bucket}"
    for rel in ("t/dt=1/a.parquet", "t/dt=1/b.parquet", "t/dt=2/c.parquet", "t/x.csv", "u/d.parquet"):
        put(fs, f"{root}/{rel}")
    assert fs.glob(f"{root}/t/dt=1/*.parquet") == [f"{root}/t/dt=1/a.parquet", f"{root}/t/dt=1/b.parquet"]
    assert fs.glob(f"{root}/t/*/*.parquet") == [
        f"{root}/t/dt=1/a.parquet", f"{root}/t/dt=1/b.parquet", f"{root}/t/dt=2/c.parquet"
    ]
    assert fs.glob(f"{root}/**/*.parquet")[-1] == f"{root}/u/d.parquet"
    assert len(fs.glob(f"{root}/**/*.parquet")) == 4
    assert fs.glob(f"{root}/t/dt=[2-3]/?.parquet") == [f"{root}/t/dt=2/c.parquet"]
    assert fs.glob(f"{root}/t/x.csv") == [f"{root}/t/x.csv"]
    assert fs.glob(f"{root}/t/*.json") == []
    listed = fs.list_files(f"{root}/t", recursive=False)
    assert [(f.path, f.size) for f in listed] == [(f"{root}/t/x.csv", 5)]
    assert listed[0].mtime_ns is not None and listed[0].mtime_ns > 0  # LastModified: what reuse compares
    assert len(fs.list_files(f"{root}/t")) == 4
    assert [(f.path, f.size) for f in fs.list_files(f"{root}/t/x.csv")] == [(f"{root}/t/x.csv", 5)]
    assert fs.list_files(f"{root}/absent") == []


def test_glob_regex_semantics():
    assert glob_regex("b/*/x").fullmatch("b/a/x") and not glob_regex("b/*/x").fullmatch("b/a/c/x")
    assert glob_regex("b/**/x").fullmatch("b/x") and glob_regex("b/**/x").fullmatch("b/a/c/x")
    assert glob_regex("b/[!a]").fullmatch("b/c") and not glob_regex("b/[!a]").fullmatch("b/a")


def test_copy_rename_delete(fs, bucket):
    root = f"s3://{bucket}"
    put(fs, f"{root}/s/1", b"one")
    put(fs, f"{root}/s/d/2", b"two")
    fs.link_or_copy(f"{root}/s", f"{root}/c")
    assert fs.read_bytes(f"{root}/c/d/2") == b"two"
    fs.rename(f"{root}/c/1", f"{root}/r/1")
    assert fs.read_bytes(f"{root}/r/1") == b"one" and not fs.exists(f"{root}/c/1")
    fs.rename(f"{root}/s", f"{root}/moved")
    assert not fs.exists(f"{root}/s") and fs.read_bytes(f"{root}/moved/d/2") == b"two"
    fs.delete(f"{root}/moved", recursive=True)
    assert not fs.exists(f"{root}/moved")
    fs.delete(f"{root}/never/was")
    fs.delete(f"{root}/never/was", recursive=True)


def test_deletes_leave_no_directory_markers(fs, bucket, s3_server):
    root = f"s3://{bucket}"
    put(fs, f"{root}/ds/_pond_staging/job/tasks/p0/f.parquet")
    s3_server.client().put_object(Bucket=bucket, Key="ds/_pond_staging/job/", Body=b"")  # a marker
    fs.delete(f"{root}/ds/_pond_staging/job", recursive=True)
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    put(fs, f"{root}/a/b/c")
    fs.delete(f"{root}/a/b/c")
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_missing_bucket_is_named(fs, s3_server):
    with pytest.raises(PondStorageError, match=r"bucket not found: 'no-such-bucket-x' at http://127\.0\.0\.1"):
        fs.check_bucket("s3://no-such-bucket-x/key")
    with pytest.raises(PondStorageError, match="bucket not found: 'no-such-bucket-x'"):
        resolve_paths("s3://no-such-bucket-x/key/", True, fs.options)
    with pytest.raises(PondStorageError, match="bucket not found: 'no-such-bucket-x'"):
        resolve_paths("s3://no-such-bucket-x/key/*.parquet", True, fs.options)
