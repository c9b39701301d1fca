"""Connecting a driver to a Ray cluster by address (the multi-node rig of tests/support/ray_cluster.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pond_core.catalog import Catalog
from tests.support.ray_cluster import LocalRayCluster, pond_command, pond_driver_env

REPO = Path(__file__).resolve().parents[1]


def own_pid_namespace() -> list[str]:
    """A command prefix that runs a process in its own PID namespace: it sees no raylet of this
    machine, as on a machine that never joined the cluster, yet reaches the head over the network."""
    unshare = shutil.which("unshare")
    prefix = [unshare, "--pid", "--fork", "--mount-proc"] if unshare else []
    if not prefix or subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("needs unshare with PID namespaces (root or CAP_SYS_ADMIN)")
    return prefix


def test_a_driver_that_is_not_a_node_fails_at_once_saying_how_to_join(ray_cluster: LocalRayCluster, tmp_path: Path):
    # Without pond's check, ray.init waits 60 s and then blames "a previous Ray instance that has
    # since crashed"; the timeout below is well under that.
    env = pond_driver_env(ray_cluster, tmp_path / "data", f"sqlite:///{tmp_path}/catalog.db")
    argv = [*pond_command(), "run", "pond_core.examples:daily_revenue", "-pds=2026-11-01",
            f"-psource_root={tmp_path}/src", f"-poutput_root={tmp_path}/out"]
    done = subprocess.run([*own_pid_namespace(), *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=40)
    assert done.returncode == 2, done.stderr[-2000:]  # a configuration error: nothing ran
    assert f"this machine is not a node of the Ray cluster at {ray_cluster.address}" in done.stderr
    assert f"ray start --address={ray_cluster.address} --num-cpus=0" in done.stderr
    assert "ray://" in done.stderr
    assert not (tmp_path / "out").exists()
    catalog = Catalog(f"sqlite:///{tmp_path}/catalog.db")
    assert catalog.list_runs() == []  # the executor starts before the run is recorded
    catalog.close()
