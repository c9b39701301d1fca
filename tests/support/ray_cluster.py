"""A real multi-node Ray cluster on this machine: a head and worker nodes, each its own raylet.

`LocalRayCluster` wraps `ray.cluster_utils.Cluster`. The head gets no CPUs, so partition tasks
run only on worker nodes, as on a cluster whose head only schedules. Pond drivers connect to it
by address from their own processes (`pond run` with POND_RAY_ADDRESS), so a test can kill a
driver, a node or a worker like the faults of a real deployment.

A worker node can be given a memory cgroup (the kernel's OOM killer then kills a task that takes
more than the node has) to play a machine with little memory. The bench scripts use the same rig.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


class MemoryCgroup:
    """A memory cgroup (v1 or v2) holding one node's processes, removed on `close()`."""

    def __init__(self, limit_bytes: int) -> None:
        self.path = _cgroup_root() / f"pond-rig-{uuid.uuid4().hex[:8]}"
        self.path.mkdir()
        limit_file = "memory.max" if (self.path / "memory.max").exists() else "memory.limit_in_bytes"
        (self.path / limit_file).write_text(str(limit_bytes))
        self.limit_bytes = limit_bytes

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def oom_kills(self) -> int:
        for name in ("memory.events", "memory.oom_control"):
            f = self.path / name
            if f.exists():
                for line in f.read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        return 0

    def close(self) -> None:
        for _ in range(50):  # the kernel frees the cgroup once its last process has exited
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def memory_cgroups_available() -> str | None:
    """None when this process may create memory cgroups, else why not."""
    try:
        root = _cgroup_root()
    except OSError as exc:
        return str(exc)
    probe = root / f"pond-probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        return f"cannot create a memory cgroup under {root}: {exc}"
    return None


def _cgroup_root() -> pathlib.Path:
    v1 = pathlib.Path("/sys/fs/cgroup/memory")
    if (v1 / "memory.limit_in_bytes").exists():
        return v1
    v2 = pathlib.Path("/sys/fs/cgroup")
    if "memory" in (v2 / "cgroup.controllers").read_text() if (v2 / "cgroup.controllers").exists() else "":
        return v2
    raise OSError("no memory cgroup controller is mounted (neither /sys/fs/cgroup/memory nor cgroup v2 with memory)")


class LocalRayCluster:
    """A head (no CPUs) plus worker nodes on this machine; `address` is what drivers connect to."""

    def __init__(self, workers: int = 2, cpus_per_worker: int = 2, **worker_args: Any) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        # Worker processes import test pipelines by module name, as the drivers do.
        paths = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        from ray.cluster_utils import Cluster

        self._cluster = Cluster(
            initialize_head=True, connect=False, head_node_args={"num_cpus": 0, "include_dashboard": False}
        )
        self._cgroups: dict[str, MemoryCgroup] = {}
        self.workers: list[Any] = []
        for _ in range(workers):
            self.add_worker(num_cpus=cpus_per_worker, **worker_args)

    @property
    def address(self) -> str:
        return self._cluster.address

    def add_worker(self, num_cpus: int = 2, memory: int | None = None, cgroup_limit: int | None = None) -> Any:
        """Start a worker node (its own raylet); with `cgroup_limit`, inside a memory cgroup."""
        node = self._cluster.add_node(num_cpus=num_cpus, memory=memory, wait=True)
        if cgroup_limit is not None:
            group = MemoryCgroup(cgroup_limit)
            for pid in _node_pids(node):
                group.add(pid)  # workers the raylet starts later inherit its cgroup
            self._cgroups[node.unique_id] = group
        self.workers.append(node)
        self.wait_for_workers()
        return node

    def kill_worker(self, node: Any) -> None:
        """Kill a worker node's raylet and workers at once, as a machine that dies."""
        self.workers.remove(node)
        self._cluster.remove_node(node, allow_graceful=False)
        group = self._cgroups.pop(node.unique_id, None)
        if group is not None:
            group.close()

    def ensure_workers(self, count: int, **worker_args: Any) -> None:
        while len(self.workers) < count:
            self.add_worker(**worker_args)

    def cgroup(self, node: Any) -> MemoryCgroup | None:
        return self._cgroups.get(node.unique_id)

    def wait_for_workers(self, timeout: float = 60.0) -> None:
        self._cluster.wait_for_nodes(timeout=timeout)

    def shutdown(self) -> None:
        for node in list(self.workers):
            self.kill_worker(node)
        self._cluster.shutdown()
        for group in self._cgroups.values():
            group.close()


def _node_pids(node: Any) -> list[int]:
    import psutil

    pids = []
    for processes in node.all_processes.values():
        for info in processes:
            proc = psutil.Process(info.process.pid)
            pids.extend([proc.pid, *(child.pid for child in proc.children(recursive=True))])
    return pids


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[LocalRayCluster]:
    """A head and two worker nodes (2 CPUs each), shared by the scale-out tests."""
    cluster = LocalRayCluster(workers=2)
    yield cluster
    cluster.shutdown()


def pond_driver_env(cluster: LocalRayCluster, data_root: os.PathLike | str, catalog_url: str, **extra: str) -> dict[str, str]:
    """The environment of a `pond` driver process that runs on `cluster`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POND_", "SP_", "RAY_ADDRESS"))}
    env.update(
        POND_EXECUTOR="ray",
        POND_RAY_ADDRESS=cluster.address,
        POND_DATA_ROOT=str(data_root),
        POND_CATALOG_URL=catalog_url,
        PYTHONPATH=os.environ["PYTHONPATH"],
        RAY_USAGE_STATS_ENABLED="0",
    )
    env.update(extra)
    return env


def pond_command() -> list[str]:
    """The `pond` console script of this environment."""
    import sys

    script = pathlib.Path(sys.executable).with_name("pond")
    return [str(script)] if script.exists() else [shutil.which("pond") or "pond"]
