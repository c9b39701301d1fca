"""Root test configuration: one environment for the whole session, shared fixtures by module.

Every module in tests/support/ is a pytest plugin (a session-scoped server or cluster, started
once and stopped by PID at the end), so a new rig is added by adding a file there.
"""

import os
import pathlib
import tempfile

# Set before anything imports Ray, Airflow or Prefect.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("POND_TEST_TMP", tempfile.mkdtemp(prefix="pond-tests-"))

_support = pathlib.Path(__file__).parent / "tests" / "support"
pytest_plugins = sorted(
    f"tests.support.{p.stem}" for p in _support.glob("*.py") if p.stem != "__init__"
) + ["tests.service_rig"]  # the pond service rig (pond_service), also used by the provider suites
