"""A warm Ray cluster for benchmarks: one `ray start --head`, started before any timed run.

Why: in production a Ray cluster is already running when an Airflow stage task or a Prefect
flow run starts a pond driver; that driver pays connecting and Ray's per-job worker start-up,
never the cluster's start. The `*-warm` variants measure exactly that: the cluster is started
once per script run, outside every timing, and each measured child is a new driver process
that connects by address.

How it is started and stopped (this machine is shared with other engineers' Ray clusters):
- `ray start --head --block` runs as a child in its own process group and session
  (`start_new_session=True`); the Ray processes it starts (GCS, raylet, agents, monitors) stay
  in that group, but the raylet puts each worker process in a group of its own. So it is
  stopped by signalling that group by its id (SIGTERM, then SIGKILL after a grace period:
  `ray start --block` does not always exit on SIGTERM), and then every process of its tree as
  recorded just before (workers included) by pid. Never `ray stop`: it ends every Ray on the
  machine.
- Its own `--temp-dir` (removed at the end) and free ports for the GCS, the Ray Client server
  and the dashboard agent, so it neither collides with nor redirects anyone else's cluster:
  `ray start` writes the address file that a bare `ray.init()` connects to into its temp dir,
  so with the default /tmp/ray a bare `ray.init()` (pond's own local Ray, the `pond-ray`
  variant, or someone's tests) would join this cluster instead of starting its own.
- Its environment is the children's (`_common.child_env()`): the cluster's workers import
  pond_core from the head's PYTHONPATH, not from the driver's, so a head started with another
  PYTHONPATH would run another checkout's pond_core in its tasks.
- Token authentication (Ray 2.60 turns it on for `ray start`): the head writes or reuses
  `~/.ray/auth_token`, but a driver given an explicit address reads that file only when
  `RAY_AUTH_MODE=token` is set (Ray auto-enables token mode only for a cluster it finds by
  itself); `driver_env()` sets it.
- The address is the head's interface IP (Ray never advertises loopback), read from its
  "Local node IP:" line, and the GCS port given on the command line.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import _common
from _common import BenchFailure

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STARTED = "Ray runtime started"


def ray_binary() -> str:
    beside = pathlib.Path(sys.executable).parent / "ray"
    found = str(beside) if beside.exists() else shutil.which("ray")
    if not found:
        raise SystemExit("the ray command is not installed next to this Python")
    return found


def free_port() -> int:
    """A TCP port nobody listens on right now (a small race with other processes is accepted)."""
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def driver_env() -> dict[str, str]:
    """The environment of a driver that connects to the head by address."""
    return {**_common.child_env(), "RAY_AUTH_MODE": "token"}


class RayHead:
    """One `ray start --head --block` cluster; use as a context manager (stopped on exit)."""

    def __init__(self, num_cpus: int = 2, start_timeout_s: float = 180.0) -> None:
        self.num_cpus = num_cpus
        self.start_timeout_s = start_timeout_s
        self.port = free_port()
        self.temp_dir = tempfile.mkdtemp(prefix="pond-bench-ray-")  # short: Ray's socket paths must fit 107 bytes
        self.log_path = pathlib.Path(self.temp_dir) / "ray-start.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.address = ""
        self.start_s = 0.0
        self.stop_s = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> str:
        """Start the head and wait for "Ray runtime started"; return its address."""
        cmd = [
            ray_binary(), "start", "--head", "--block", "--num-cpus", str(self.num_cpus),
            "--port", str(self.port), "--ray-client-server-port", str(free_port()),
            "--dashboard-agent-listen-port", str(free_port()), "--include-dashboard", "false",
            "--disable-usage-stats", "--temp-dir", self.temp_dir,
        ]
        t0 = time.perf_counter()
        with open(self.log_path, "wb") as log:  # a file, not a pipe: an unread pipe would block the head
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=driver_env(), start_new_session=True)
        deadline = t0 + self.start_timeout_s
        while True:
            text = ANSI.sub("", self.log_path.read_text(errors="replace"))
            if STARTED in text:
                break
            if self.proc.poll() is not None or time.perf_counter() > deadline:
                why = f"exited with {self.proc.returncode}" if self.proc.poll() is not None else f"not started after {self.start_timeout_s:.0f}s"
                raise BenchFailure(f"ray start --head {why}:\n" + "\n".join(text.splitlines()[-20:]))
            time.sleep(0.2)
        ip = re.search(r"Local node IP:\s*(\S+)", text)
        if not ip:
            raise BenchFailure(f"ray start printed no 'Local node IP:' line:\n{text}")
        self.address = f"{ip.group(1)}:{self.port}"
        self.start_s = time.perf_counter() - t0
        return self.address

    def stop(self, grace_s: float = 5.0) -> None:
        """End the head's process group (by its id) and any survivor of its tree; idempotent."""
        if self.proc is None:
            return
        import psutil

        t0 = time.perf_counter()
        pgid = self.proc.pid  # the group leader: start_new_session made its pid the group id
        try:
            tree = [psutil.Process(pgid), *psutil.Process(pgid).children(recursive=True)]
        except psutil.Error:
            tree = []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        self.proc.wait()
        for p in tree:  # psutil refuses to signal a pid reused by another process
            with contextlib.suppress(psutil.Error):
                p.kill()
        self.proc = None
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        self.stop_s = time.perf_counter() - t0

    def __enter__(self) -> RayHead:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def terminate_cleanly() -> Iterator[None]:
    """SIGTERM/SIGHUP become SystemExit, so `finally` blocks and context managers stop the
    cluster and the running child (Ctrl-C already raises KeyboardInterrupt)."""
    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
