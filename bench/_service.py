"""The pond service for benchmarks: `pond serve` on a warm Ray head, and a thin client's run.

Why: issue 27's `pond-service` variant measures what an orchestrator pays when it hands its
stages to a long-lived pond service instead of being a Ray driver itself. So the service is
started once per script run, on the same head the `*-warm` variants use, before and outside
every timing (as in production, where it runs on the cluster for days), and each measured
child is a thin client: pond_core's plan compiler and its `ServiceClient` over HTTP, no Ray on
its code path (the child reports whether `ray` was imported).

Parent side (`PondService`): `pond serve --address HEAD --host 127.0.0.1 --port <free>
--data-root <scratch> --catalog-url sqlite:///...` as a child in its own process group, with
`POND_SERVICE_TOKEN` (a fresh random token) in its environment only, never on a command line;
ready when `GET /v1/health` answers; stopped by its group id and by pid for its tree. What
`pond serve` deployed on the head (Ray Serve's controller, proxy and replicas) ends with the
head.

Child side (`run_stages`): submit every stage whose upstream stages are done (W3's two
exchanges go together, as an orchestrator's parallel tasks would), poll each live stage every
`POLL_S`, and return every stage's last status. `read_rows` reads the final stage's committed
files (its `_manifest.json`, in partition order) with DuckDB.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import secrets
import signal
import subprocess
import sys
import time
from typing import Any

import _common
from _common import BenchFailure

TOKEN_ENV = "POND_SERVICE_TOKEN"
POLL_S = 0.02  # the client's status poll: short, so the figure is the service's, not the poll's


def pond_binary() -> str:
    beside = pathlib.Path(sys.executable).parent / "pond"
    if not beside.exists():
        raise SystemExit(f"the pond command is not installed next to {sys.executable} (make install)")
    return str(beside)


class PondService:
    """`pond serve` on a running head; use as a context manager (stopped on exit)."""

    def __init__(self, ray_address: str, root: pathlib.Path, env: dict[str, str], port: int, start_timeout_s: float = 300.0) -> None:
        self.ray_address = ray_address
        self.root = root
        self.port = port
        self.token = secrets.token_urlsafe(24)
        self.env = {**env, TOKEN_ENV: self.token}
        self.start_timeout_s = start_timeout_s
        self.log_path = root / "pond-serve.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_s = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def client_env(self) -> dict[str, str]:
        """A client child's environment: the token, and no Ray address to find."""
        env = _common.child_env()
        env[TOKEN_ENV] = self.token
        return env

    def start(self) -> None:
        data_root = self.root / "data"
        data_root.mkdir(parents=True, exist_ok=True)
        cmd = [
            pond_binary(), "serve", "--address", self.ray_address, "--host", "127.0.0.1", "--port", str(self.port),
            "--data-root", str(data_root), "--catalog-url", f"sqlite:///{data_root / 'catalog.db'}",
        ]
        t0 = time.perf_counter()
        with open(self.log_path, "wb") as log:  # a file: an unread pipe would block the service
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=self.env, start_new_session=True)
        self._wait_healthy(t0)
        self.start_s = time.perf_counter() - t0

    def _wait_healthy(self, t0: float) -> None:
        import urllib.request

        assert self.proc is not None
        while True:
            with contextlib.suppress(OSError, ValueError):
                with urllib.request.urlopen(f"{self.url}/v1/health", timeout=5) as r:
                    if json.loads(r.read()).get("status") == "ok":
                        return
            exited = self.proc.poll()
            if (exited is not None and exited != 0) or time.perf_counter() - t0 > self.start_timeout_s:
                tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
                why = f"exited with {exited}" if exited is not None else f"not healthy after {self.start_timeout_s:.0f}s"
                raise BenchFailure(f"pond serve {why}:\n{tail}")
            time.sleep(0.5)  # (an exit 0 is `pond serve` having deployed and returned: keep waiting for health)

    def stop(self, grace_s: float = 10.0) -> None:
        if self.proc is None:
            return
        import psutil

        try:
            tree = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.Error:
            tree = []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for p in tree:  # psutil refuses to signal a pid reused by another process
            with contextlib.suppress(psutil.Error):
                p.kill()
        self.proc = None

    def __enter__(self) -> PondService:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------- the client child


@dataclasses.dataclass
class StageTiming:
    """One stage as the client saw it, and as the service stamped it."""

    stage: str
    submit_call_s: float  # the POST's round trip
    submitted_to_running_s: float | None  # the service's running_at - submitted_at
    submitted_to_finished_s: float | None
    seen_done_after_s: float  # the client's submit -> the poll that saw it finished
    stage_seconds: float | None  # the runner's own seconds for the stage
    attached: bool


def run_stages(client: Any, plan: Any, run_id: str) -> tuple[dict[str, Any], list[StageTiming]]:
    """Run every stage of `plan` on the service in dependency order; the stages' final statuses
    (by stage id) and timings. A failed or cancelled stage is a BenchFailure."""
    done: dict[str, Any] = {}
    live: dict[str, tuple[float, float]] = {}  # stage id -> (client time of submit, POST seconds)
    pending = {s.id: s for s in plan.stages}
    timings: list[StageTiming] = []
    while pending or live:
        for sid, stage in list(pending.items()):
            if all(d in done for d in stage.depends_on):
                t0 = time.perf_counter()
                client.submit(plan, run_id, sid, recompute_upstream=False)
                live[sid] = (t0, time.perf_counter() - t0)
                del pending[sid]
        time.sleep(POLL_S)
        for sid in list(live):
            status = client.status(run_id, sid)
            if not status.state.finished:
                continue
            if status.state.value != "succeeded":
                why = f"{status.error.type}: {status.error.message}" if status.error else status.state.value
                raise BenchFailure(f"stage {status.stage} of {run_id} ended {status.state.value}: {why}")
            t0, post_s = live.pop(sid)
            done[sid] = status
            timings.append(stage_timing(status, post_s, time.perf_counter() - t0))
    return done, timings


def stage_timing(status: Any, post_s: float, seen_s: float) -> StageTiming:
    sub = status.submitted_at
    return StageTiming(
        stage=status.stage, submit_call_s=round(post_s, 4),
        submitted_to_running_s=round(status.running_at - sub, 4) if status.running_at else None,
        submitted_to_finished_s=round(status.finished_at - sub, 4) if status.finished_at else None,
        seen_done_after_s=round(seen_s, 4), stage_seconds=status.result.seconds if status.result else None,
        attached=status.attached,
    )


def read_rows(status: Any) -> list[dict[str, Any]]:
    """The final stage's rows, from its committed manifest's files in partition order."""
    import duckdb

    from pond_core.execute.results import StageManifest
    from pond_core.sql_quote import path_list

    if status.result is None:
        raise BenchFailure(f"stage {status.stage} succeeded without a result")
    manifest_path = pathlib.Path(status.result.location) / "_manifest.json"
    manifest = StageManifest.from_dict(json.loads(manifest_path.read_text()))
    if manifest is None:
        raise BenchFailure(f"{manifest_path} is of another manifest version")
    files = [f.path for f in manifest.files]
    con = duckdb.connect(config={"preserve_insertion_order": True})
    try:
        # The paths inline, quoted by pond's one helper, as pond's own read-back does: a Python
        # list bound as a parameter makes DuckDB import numpy and pandas (~2 s under load).
        cursor = con.execute(f"select * from read_parquet({path_list(files)}, hive_partitioning=false)")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]
    finally:
        con.close()
