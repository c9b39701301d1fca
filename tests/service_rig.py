"""The pond service for tests: a real Ray head started with `ray start`, and `pond serve` on it.

    def test_x(pond_service):
        client = ServiceClient(pond_service.url, pond_service.token)

`pond_service` is session-scoped (a head takes 10-15 s to start on a loaded machine): one head,
one service, shared by every test that asks for it. Both are started from this repository's
`.venv` (the interpreter running pytest), each in its own process group, on free ports of
127.0.0.1, with Ray's token authentication off (`RAY_AUTH_MODE=disabled`) and a temp dir of
their own; they are stopped by their process group ids at the end, never by `ray stop`.

`kill_replica()` SIGKILLs the Serve replica's process (found among the head's descendants, so
another person's cluster on this machine is never touched); Ray Serve starts a new one.
`restart()` stops `pond serve` (which deletes the app) and starts it again on the same port.

Registered as a plugin by the root conftest.py; the provider test suites import it the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
BIN = pathlib.Path(sys.executable).parent
HEAD_START_SECONDS = 120.0
SERVICE_START_SECONDS = 180.0
REPLICA_TITLE = "ServeReplica:pond:PondService"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)
    env.pop("POND_RAY_ADDRESS", None)
    return env


def _stop_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    """End a process we started in its own group: `sig`, then SIGKILL to the group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


class RayHead:
    """`ray start --head --block` in its own process group; `.address` is HOST:PORT."""

    def __init__(self, temp_dir: pathlib.Path, num_cpus: int = 2, name: str = "ray-head") -> None:
        self.temp_dir = temp_dir
        self.log = temp_dir / f"{name}.log"
        port = free_port()
        cmd = [
            str(BIN / "ray"), "start", "--head", "--block", f"--port={port}", f"--num-cpus={num_cpus}",
            "--node-ip-address=127.0.0.1", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir / 'ray'}",
            f"--ray-client-server-port={free_port()}", f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
            f"--dashboard-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
        ]
        self._out = open(self.log, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT, env=_base_env(), start_new_session=True)
        try:
            self.address = f"{self._wait_started()}:{port}"
        except BaseException:
            self.stop()
            raise

    def _wait_started(self) -> str:
        deadline = time.monotonic() + HEAD_START_SECONDS
        while time.monotonic() < deadline:
            text = re.sub(r"\x1b\[[0-9;]*m", "", self.log.read_text(errors="replace"))
            if "Ray runtime started" in text:
                match = re.search(r"Local node IP: (\S+)", text)
                return match.group(1) if match else "127.0.0.1"
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {self.proc.returncode}:\n{text[-3000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"ray start did not start within {HEAD_START_SECONDS:.0f} s:\n{self.log.read_text()[-3000:]}")

    def descendants(self) -> list[tuple[int, str]]:
        """(pid, command line) of every process under the head (its raylet's workers included)."""
        import psutil

        out = []
        for p in psutil.Process(self.proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                out.append((p.pid, " ".join(p.cmdline())))
        return out

    def stop(self) -> None:
        # Its processes get SIGTERM at once; `ray start --block` itself lingers, so not for long.
        _stop_group(self.proc, timeout=5)
        self._out.close()


@dataclasses.dataclass
class PondServiceRig:
    """A running pond service: where it is, its token, its storage, and ways to hurt it."""

    url: str
    token: str
    data_root: str
    catalog_url: str
    ray_address: str
    head: RayHead
    port: int
    log: pathlib.Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = _base_env()
        env["POND_SERVICE_TOKEN"] = self.token
        cmd = [
            str(BIN / "pond"), "serve", "--address", self.ray_address, "--host", "127.0.0.1", "--port", str(self.port),
            "--data-root", self.data_root, "--catalog-url", self.catalog_url,
        ]
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=REPO)
        out.close()
        self.wait_healthy(SERVICE_START_SECONDS)

    def wait_healthy(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"pond serve exited with {self.proc.returncode}:\n{self.log.read_text()[-4000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/v1/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"the pond service did not answer within {timeout:.0f} s:\n{self.log.read_text()[-4000:]}")

    def replica_pids(self) -> list[int]:
        return [pid for pid, cmd in self.head.descendants() if REPLICA_TITLE in cmd]

    def kill_replica(self) -> int:
        """SIGKILL the (first) Serve replica process; its pid."""
        pids = self.replica_pids()
        assert pids, f"no Serve replica among the head's processes: {self.head.descendants()}"
        os.kill(pids[0], signal.SIGKILL)
        return pids[0]

    def stop(self) -> int | None:
        """SIGTERM to `pond serve` (its group); its exit code."""
        if self.proc is None:
            return None
        _stop_group(self.proc, signal.SIGTERM, timeout=60)
        code, self.proc = self.proc.returncode, None
        return code

    def restart(self) -> None:
        self.stop()
        self.start()

    def logs(self) -> str:
        """`pond serve`'s output and every log file of the head (to look for a leaked secret)."""
        texts = [self.log.read_text(errors="replace")]
        for path in (self.head.temp_dir / "ray").rglob("*"):
            if path.is_file() and path.suffix in (".log", ".out", ".err"):
                texts.append(path.read_text(errors="replace"))
        return "\n".join(texts)


def _start_head(temp_dir: pathlib.Path, num_cpus: int, tries: int = 3) -> RayHead:
    """A head, trying again when Ray's own start-up times out (`ray start` gives its raylet a
    fixed 30 s to register, which a machine loaded far past its cores can exceed)."""
    for attempt in range(1, tries + 1):
        try:
            return RayHead(temp_dir, num_cpus, name=f"ray-head-{attempt}")
        except RuntimeError:
            if attempt == tries:
                raise
            time.sleep(5)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def running_service(num_cpus: int = 2) -> Iterator[PondServiceRig]:
    """A Ray head and the pond service on it, stopped on exit."""
    temp_dir = pathlib.Path(tempfile.mkdtemp(prefix="pondsvc-", dir="/tmp"))  # short: Ray's socket paths are bounded
    data_root = temp_dir / "data"
    data_root.mkdir()
    head = _start_head(temp_dir, num_cpus)
    port = free_port()
    rig = PondServiceRig(
        url=f"http://127.0.0.1:{port}", token=secrets.token_hex(24), data_root=str(data_root),
        catalog_url=f"sqlite:///{data_root / 'catalog.sqlite'}", ray_address=head.address, head=head, port=port,
        log=temp_dir / "pond-serve.log",
    )
    try:
        rig.start()
        yield rig
    finally:
        rig.stop()
        head.stop()


@pytest.fixture(scope="session")
def pond_service() -> Iterator[PondServiceRig]:
    """The session's pond service (see the module docstring)."""
    with running_service() as rig:
        yield rig
