"""One Ray instance for the whole test session, started on first use and stopped at the end."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def ray_instance():
    """A local Ray (2 CPUs, no dashboard) shared by every test that needs Ray."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    started_here = False
    if not ray.is_initialized():
        # address="local": a new instance of our own, even when another Ray runs on this machine
        # (a plain ray.init() would join a cluster that `ray start` left running).
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
        started_here = True
    yield ray
    if started_here and ray.is_initialized():
        ray.shutdown()
