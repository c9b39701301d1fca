"""LocalFileSystem: the POSIX operations commits rely on, on real files."""

import os
import threading

import pytest

from pond_core.errors import PondConfigError, PondStorageError
from pond_core.io import get_filesystem, join_path
from pond_core.io.fs import LocalFileSystem


@pytest.fixture()
def fs():
    return LocalFileSystem()


def make(path, data=b"x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)


def test_get_filesystem_picks_local_and_rejects_unknown_schemes(tmp_path):
    assert isinstance(get_filesystem(str(tmp_path)), LocalFileSystem)
    assert isinstance(get_filesystem(f"file://{tmp_path}"), LocalFileSystem)
    with pytest.raises(PondConfigError, match="unsupported storage scheme"):
        get_filesystem("gs://bucket/x")


def test_join_path_is_url_aware_and_refuses_to_climb():
    assert join_path("s3://b/root/", "dt=1", "part.parquet") == "s3://b/root/dt=1/part.parquet"
    assert join_path("/data", "a/b", "c") == "/data/a/b/c"
    assert join_path("/", "x") == "/x"
    with pytest.raises(PondConfigError, match="escape"):
        join_path("/data", "../etc")


def test_glob_list_and_stat(fs, tmp_path):
    for rel in ("a/1.parquet", "a/2.parquet", "a/sub/3.parquet", "b/4.csv"):
        make(str(tmp_path / rel), b"12345")
    assert fs.glob(str(tmp_path / "a/*.parquet")) == [str(tmp_path / "a/1.parquet"), str(tmp_path / "a/2.parquet")]
    assert fs.glob(str(tmp_path / "**/*.parquet"))[-1] == str(tmp_path / "a/sub/3.parquet")
    assert len(fs.glob(str(tmp_path / "**/*.parquet"))) == 3
    listed = fs.list_files(str(tmp_path / "a"), recursive=False)
    assert [(f.path, f.size) for f in listed] == [(str(tmp_path / "a/1.parquet"), 5), (str(tmp_path / "a/2.parquet"), 5)]
    assert listed[0].mtime_ns == os.stat(tmp_path / "a/1.parquet").st_mtime_ns  # the identity reuse compares
    assert [f.path for f in fs.list_files(str(tmp_path))][-1] == str(tmp_path / "b/4.csv")
    assert fs.list_files(str(tmp_path / "missing")) == []
    assert fs.exists(str(tmp_path / "a")) and fs.isdir(str(tmp_path / "a"))
    assert not fs.isdir(str(tmp_path / "a/1.parquet"))


def test_listing_skips_a_name_whose_file_is_gone_by_the_time_it_is_sized(fs, tmp_path):
    # A concurrent writer's temp file can vanish between the directory read and the stat; a
    # dangling symlink is a name whose file is gone at stat time, every time.
    make(str(tmp_path / "ds/dt=x/part.parquet"), b"12345")
    os.symlink(str(tmp_path / "gone"), str(tmp_path / "ds/._pond_manifest.json.tmp-1"))
    os.symlink(str(tmp_path / "gone"), str(tmp_path / "ds/dt=x/.tmp-2"))
    assert [(f.path, f.size) for f in fs.list_files(str(tmp_path / "ds"))] == [(str(tmp_path / "ds/dt=x/part.parquet"), 5)]
    assert fs.list_files(str(tmp_path / "ds"), recursive=False) == []


def test_write_bytes_is_atomic_replace_with_no_temp_left(fs, tmp_path):
    target = str(tmp_path / "d/m.json")
    fs.write_bytes(target, b"old")
    seen, errors = set(), []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                seen.add(fs.read_bytes(target))
            except Exception as exc:  # a thread's exception would otherwise only be a warning
                errors.append(exc)
                return

    t = threading.Thread(target=reader)
    t.start()
    for _ in range(50):
        fs.write_bytes(target, b"new" * 1000)
        fs.write_bytes(target, b"old")
    stop.set()
    t.join()
    assert errors == []
    assert seen <= {b"old", b"new" * 1000}
    assert os.listdir(tmp_path / "d") == ["m.json"]


def test_rename_file_and_directory(fs, tmp_path):
    make(str(tmp_path / "src/f"), b"1")
    fs.rename(str(tmp_path / "src"), str(tmp_path / "deep/dst"))
    assert fs.read_bytes(str(tmp_path / "deep/dst/f")) == b"1"
    assert not fs.exists(str(tmp_path / "src"))


def test_link_or_copy_hard_links_on_one_device(fs, tmp_path):
    make(str(tmp_path / "t/a/1"), b"one")
    make(str(tmp_path / "t/a/b/2"), b"two")
    fs.link_or_copy(str(tmp_path / "t/a"), str(tmp_path / "u"))
    assert fs.read_bytes(str(tmp_path / "u/b/2")) == b"two"
    assert os.stat(tmp_path / "u/1").st_ino == os.stat(tmp_path / "t/a/1").st_ino


def test_link_or_copy_copies_across_devices(fs, tmp_path):
    shm = "/dev/shm"
    if not os.path.isdir(shm) or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second filesystem (/dev/shm) to cross devices")
    make(str(tmp_path / "f"), b"data")
    dst = os.path.join(shm, f"pond-test-{os.getpid()}", "f")
    try:
        fs.link_or_copy(str(tmp_path / "f"), dst)
        assert fs.read_bytes(dst) == b"data"
        assert os.stat(dst).st_ino != os.stat(tmp_path / "f").st_ino
        with pytest.raises(PondStorageError, match="different mounts"):
            fs.rename(str(tmp_path / "f"), dst + "2")
    finally:
        fs.delete(os.path.dirname(dst), recursive=True)


def test_delete_missing_ok_and_nonrecursive_refuses_full_dir(fs, tmp_path):
    fs.delete(str(tmp_path / "nope"))
    fs.delete(str(tmp_path / "nope"), recursive=True)
    make(str(tmp_path / "d/x"))
    with pytest.raises(PondStorageError, match="not empty"):
        fs.delete(str(tmp_path / "d"))
    fs.delete(str(tmp_path / "d/x"))
    fs.delete(str(tmp_path / "d"))
    assert not fs.exists(str(tmp_path / "d"))
    make(str(tmp_path / "e/f/g"))
    fs.delete(str(tmp_path / "e"), recursive=True)
    assert not fs.exists(str(tmp_path / "e"))
