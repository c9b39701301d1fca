"""Failures that used to read as crashes (issue 21, item 6), each as a real `pond` process: a
full disk under the catalog and under an overwritten dataset (a real tmpfs of a few MiB, mounted
here), a malformed catalog port, a run that failed before it was recorded, and a catalog file
deleted mid-run. Each must be a one-line pond error saying what failed and what to do, exit 2
for configuration and 1 for a failed run, never "internal error" nor a leaked password."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from pond_core.catalog import Catalog
from pond_core.errors import PondStorageError
from tests.test_pipeline_defs import make_shop

REPO = Path(__file__).resolve().parents[1]
POND = str(Path(sys.executable).with_name("pond"))
REVENUE = "pond_core.examples:daily_revenue"
DAY = "2026-11-20"


def pond(*args: str, env: dict[str, str] | None = None, pythonpath: str = "") -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("POND_", "SP_", "AWS_"))}
    base.update(PYTHONPATH=os.pathsep.join(p for p in (str(REPO), pythonpath) if p), **(env or {}))
    return subprocess.run([POND, *args], cwd=REPO, env=base, capture_output=True, text=True, timeout=300)


def assert_clean_failure(result: subprocess.CompletedProcess, code: int) -> str:
    """One `error:` line on stderr, the exit code, and no crash; returns the message."""
    assert result.returncode == code, (result.returncode, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    return errors[0]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_shop(str(tmp_path_factory.mktemp("shop")), [DAY])


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs mounted for this test (root only), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> None:
    """Write zeros until the file system has no space left (unbuffered, ever smaller writes)."""
    with open(disk / "filler", "wb", buffering=0) as fh:
        for size in (1 << 16, 4096, 1):
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError:
                pass
    assert os.statvfs(disk).f_bavail == 0


def test_a_full_disk_under_an_open_catalog_is_a_storage_error_naming_it(small_disk: Path) -> None:
    catalog = Catalog(f"sqlite:///{small_disk}/catalog.sqlite")
    try:
        catalog.start_run("before", "p", {}, "fp", "local")
        fill(small_disk)
        with pytest.raises(PondStorageError, match="disk holding it is full") as caught:
            for i in range(200):  # the WAL file has some room left: write until it has none
                catalog.start_run(f"r{i}", "p", {"pad": "x" * 2000}, "fp", "local")
        assert str(small_disk) in str(caught.value) and "Free space" in str(caught.value)
    finally:
        catalog.close()


def test_a_run_whose_catalog_disk_is_full_fails_with_exit_1_and_no_resume_hint(shop: str, small_disk: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{small_disk}/catalog.sqlite"
    Catalog(url).close()
    fill(small_disk)
    result = pond(
        "run", REVENUE, "-p", f"ds={DAY}", "-p", f"source_root={shop}", "-p", f"output_root={tmp_path / 'out'}",
        "--catalog", url, "--data-root", str(tmp_path / "root"), "--run-id", "fullcat",
    )
    message = assert_clean_failure(result, 1)
    assert "full" in message and str(small_disk) in message
    assert "resume it with" not in message


def test_a_full_disk_during_an_overwrite_names_the_disk_and_publishes_nothing(shop: str, small_disk: Path, tmp_path: Path) -> None:
    out = small_disk / "revenue"
    args = ["run", REVENUE, "-p", f"ds={DAY}", "-p", f"source_root={shop}", "-p", f"output_root={out}", "--data-root", str(tmp_path / "root")]
    assert pond(*args, "--run-id", "first").returncode == 0
    before = duckdb.sql(f"SELECT * FROM read_parquet('{out}/**/*.parquet') ORDER BY ALL").fetchall()
    fill(small_disk)
    message = assert_clean_failure(pond(*args, "--run-id", "second"), 1)
    assert "no space left on the disk mounted at " + str(small_disk) in message
    assert "nothing was published" in message and str(out) in message
    after = duckdb.sql(f"SELECT * FROM read_parquet('{out}/**/*.parquet') ORDER BY ALL").fetchall()
    assert after == before and len(before) > 0


def test_a_malformed_catalog_port_is_a_configuration_error_without_the_password() -> None:
    result = pond("runs", "--catalog", "postgresql://pond:hunter2secret@127.0.0.1:notaport/db")
    message = assert_clean_failure(result, 2)
    assert "port" in message and "127.0.0.1:notaport" in message
    assert "hunter2secret" not in result.stderr + result.stdout


def test_a_run_that_failed_before_it_was_recorded_gives_no_resume_hint(shop: str, s3_server, tmp_path: Path) -> None:
    env = {
        "AWS_ENDPOINT_URL": s3_server.endpoint_url, "AWS_ACCESS_KEY_ID": s3_server.access_key_id,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_access_key, "AWS_REGION": s3_server.region,
    }
    root = str(tmp_path / "root")
    missing = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/revenue"
    result = pond(
        "run", REVENUE, "-p", f"ds={DAY}", "-p", f"source_root={shop}", "-p", f"output_root={missing}",
        "--data-root", root, "--run-id", "s3sink", env=env,
    )
    message = assert_clean_failure(result, 1)
    assert "no-such-bucket" in message
    assert "resume it with" not in message and "run the same command again" in message
    assert "no run s3sink" in pond("resume", "s3sink", "--data-root", root).stderr  # indeed nothing to resume


def test_a_catalog_deleted_mid_run_fails_the_run(shop: str, tmp_path: Path) -> None:
    catalog_file = tmp_path / "root" / "catalog.sqlite"
    module = tmp_path / "deleting_pipeline.py"
    module.write_text(textwrap.dedent(f"""
        import os

        def pipeline(sp):
            def drop_catalog(row):  # runs inside the stage's task, mid-run
                if os.path.exists({str(catalog_file)!r}):
                    os.remove({str(catalog_file)!r})
                return row
            return sp.read_parquet({shop + "/customers.parquet"!r}).map(drop_catalog).sink_parquet({str(tmp_path / "out")!r})
    """))
    result = pond("run", "deleting_pipeline:pipeline", "--data-root", str(tmp_path / "root"), "--run-id", "deleted", pythonpath=str(tmp_path))
    message = assert_clean_failure(result, 1)
    assert str(catalog_file) in message and "was deleted while pond used it" in message


@pytest.mark.parametrize("password", ["hunter2secret", "with/slash", "with@at", "p:a/s@s"])
def test_a_malformed_catalog_url_never_shows_its_password(password: str) -> None:
    from pond_core.catalog.engine import parse_url
    from pond_core.errors import PondConfigError

    with pytest.raises(PondConfigError, match="port that is not a number") as caught:
        parse_url(f"postgresql://pond:{password}@127.0.0.1:notaport/db")
    assert password not in str(caught.value) and "pond:***@127.0.0.1:notaport/db" in str(caught.value)
