"""Engine fixtures: a pond session per test on each executor, and small Parquet inputs."""

from __future__ import annotations

import duckdb
import pytest

import pond_core


@pytest.fixture(params=["local", "ray"])
def sp(request, tmp_path):
    """A session on the in-process executor and on the session's shared Ray instance."""
    if request.param == "ray":
        request.getfixturevalue("ray_instance")
    session = pond_core.init(data_root=str(tmp_path / "pond"), executor=request.param)
    yield session
    session.shutdown()


@pytest.fixture
def local_sp(tmp_path):
    session = pond_core.init(data_root=str(tmp_path / "pond"), executor="local")
    yield session
    session.shutdown()


@pytest.fixture
def numbers_dir(tmp_path):
    """Three Parquet files holding ids 0..299 (k = id % 7, name = 'n<id>')."""
    folder = tmp_path / "numbers"
    folder.mkdir()
    con = duckdb.connect()
    for part in range(3):
        con.execute(
            f"COPY (SELECT i AS id, i % 7 AS k, 'n' || i AS name FROM range({part * 100}, {part * 100 + 100}) t(i)) "
            f"TO '{folder}/part-{part}.parquet' (FORMAT parquet)"
        )
    con.close()
    return folder
