"""The PostgreSQL rig skips when the server does not answer, and fails instead under CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INNER = "def test_needs_postgres(postgres_url):\n    assert postgres_url\n"


def _inner_session(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_inner.py").write_text(INNER)
    environ = {k: v for k, v in os.environ.items() if k != "POND_REQUIRE_POSTGRES"}
    environ.update(PYTHONPATH=str(REPO), POND_TEST_POSTGRES_PORT="1", **env)
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "tests.support.postgres"]
    command += [
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(tmp_path),
        "-c",
        os.devnull,
        "test_inner.py",
    ]
    return subprocess.run(
        command, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=60
    )


def test_an_unreachable_postgresql_skips_with_the_reason(tmp_path):
    done = _inner_session(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped" in done.stdout
    assert "PostgreSQL on 127.0.0.1:1/test does not answer" in done.stdout


def test_an_unreachable_postgresql_fails_when_ci_requires_it(tmp_path):
    done = _inner_session(tmp_path, POND_REQUIRE_POSTGRES="1")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 error" in done.stdout
    assert "POND_REQUIRE_POSTGRES=1 makes this a failure" in done.stdout


@pytest.mark.postgres
def test_the_session_database_is_this_sessions_own(postgres_url):
    assert postgres_url.rsplit("/", 1)[1].split("?")[0] in (f"pond_test_{os.getpid()}", "test")
