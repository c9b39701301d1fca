"""resolve_paths: files, directories, globs, hidden names and committed datasets; local and S3."""

import os

import pytest

from pond_core.errors import PondInputError
from pond_core.io import get_filesystem, resolve_paths


def make(path, data=b"x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)


@pytest.fixture()
def tree(tmp_path):
    for rel in ("d/a.parquet", "d/b.parquet", "d/sub/c.parquet", "d/_SUCCESS", "d/.hidden/x.parquet",
                "d/_pond_staging/j/y.parquet", "e/z.parquet"):
        make(str(tmp_path / rel))
    return tmp_path


def test_file_directory_and_glob(tree):
    d = str(tree / "d")
    assert resolve_paths(f"{d}/a.parquet") == [f"{d}/a.parquet"]
    assert resolve_paths(d, recursive=True) == [f"{d}/a.parquet", f"{d}/b.parquet", f"{d}/sub/c.parquet"]
    assert resolve_paths(d, recursive=False) == [f"{d}/a.parquet", f"{d}/b.parquet"]
    assert resolve_paths(f"{d}/**/*.parquet") == [f"{d}/a.parquet", f"{d}/b.parquet", f"{d}/sub/c.parquet"]


def test_lists_keep_order_and_drop_duplicates(tree):
    d, e = str(tree / "d"), str(tree / "e")
    assert resolve_paths([e, f"{d}/b.parquet", f"{d}/*.parquet"], recursive=True) == [
        f"{e}/z.parquet", f"{d}/b.parquet", f"{d}/a.parquet"
    ]


def test_relative_paths_become_absolute(tree, monkeypatch):
    monkeypatch.chdir(tree)
    assert resolve_paths("e") == [str(tree / "e/z.parquet")]


def test_missing_path_and_empty_glob_name_the_path(tree):
    with pytest.raises(PondInputError, match=r"path not found: .*/nope\.parquet"):
        resolve_paths(str(tree / "nope.parquet"))
    with pytest.raises(PondInputError, match=r"no files match .*/d/\*\.csv"):
        resolve_paths(str(tree / "d/*.csv"))
    os.makedirs(tree / "empty/sub")
    with pytest.raises(PondInputError, match="no files in directory .*empty$"):
        resolve_paths(str(tree / "empty"))
    make(str(tree / "nested/sub/x.parquet"))
    with pytest.raises(PondInputError, match="no files in directory .*nested .non-recursive"):
        resolve_paths(str(tree / "nested"), recursive=False)


@pytest.mark.s3
def test_s3_resolution(s3_server, s3_options):
    bucket = s3_server.new_bucket()
    fs = get_filesystem(f"s3://{bucket}", s3_options)
    for rel in ("t/a.parquet", "t/k=1/b.parquet", "t/_pond_staging/j1/c.parquet", "t/_SUCCESS"):
        fs.write_bytes(f"s3://{bucket}/{rel}", b"x")
    root = f"s3://{bucket}/t"
    assert resolve_paths(root, True, s3_options) == [f"{root}/a.parquet", f"{root}/k=1/b.parquet"]
    assert resolve_paths(root, False, s3_options) == [f"{root}/a.parquet"]
    assert resolve_paths(f"{root}/**.parquet", True, s3_options) == [f"{root}/a.parquet", f"{root}/k=1/b.parquet"]
    assert resolve_paths(f"s3a://{bucket}/t/a.parquet", True, s3_options) == [f"{root}/a.parquet"]
    with pytest.raises(PondInputError, match=f"path not found: s3://{bucket}/t/zzz"):
        resolve_paths(f"{root}/zzz", True, s3_options)
    with pytest.raises(PondInputError, match=f"no files match s3://{bucket}/t/\\*.csv"):
        resolve_paths(f"{root}/*.csv", True, s3_options)


def test_globs_and_partition_dirs_inside_a_committed_dataset_skip_debris(tmp_path):
    from tests.test_io_sink import days, write

    root = str(tmp_path / "ds")
    write(root, [days((1, "a"), (2, "b"))], "j1", partition_by="dt")
    # An interrupted append's file: in place, but no commit record lists it.
    make(f"{root}/dt=a/part-dead-00000-0.parquet")
    expected_a = [f"{root}/dt=a/part-00000-0.parquet"]
    assert resolve_paths(f"{root}/dt=a") == expected_a
    assert resolve_paths(f"{root}/dt=a/*.parquet") == expected_a
    assert resolve_paths(f"{root}/*/*.parquet") == expected_a + [f"{root}/dt=b/part-00000-0.parquet"]
    assert resolve_paths(f"{root}/dt=a/part-dead-00000-0.parquet") == [f"{root}/dt=a/part-dead-00000-0.parquet"]
