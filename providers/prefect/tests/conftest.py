"""Session rigs for the Prefect integration tests: one Prefect API, one Ray, example data.

Prefect reads PREFECT_HOME when first imported, and the test harness isolates only the
database: cached results live under `$PREFECT_HOME/storage`, so a fresh home per session keeps
one session's cache out of the next.
"""

from __future__ import annotations

import os
import sys
import tempfile

if "prefect" in sys.modules:  # pragma: no cover - a guard for the rig itself
    raise RuntimeError("prefect was imported before providers/prefect/tests/conftest.py could isolate PREFECT_HOME")
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="pond-prefect-home-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_TO_API_BATCH_INTERVAL"] = "0.5"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from collections.abc import Iterator

import pytest

DAYS = ["2026-11-18", "2026-11-19", "2026-11-20"]


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A Prefect server (subprocess, temporary SQLite) that every test in the session talks to."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def ray_cluster(ray_instance: object) -> object:
    """The session's one Ray instance (tests/support/ray.py starts and stops it)."""
    return ray_instance


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The example shop dataset for three days (small)."""
    from pond_core.examples import generate_shop

    root = str(tmp_path_factory.mktemp("shop"))
    generate_shop(root, DAYS, orders_per_day=4_000, customers=500)
    return root


@pytest.fixture
def pond_root(tmp_path) -> str:
    """A fresh pond storage root (data, staging and the SQLite catalog) for one test."""
    return str(tmp_path / "pond")
