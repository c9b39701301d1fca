"""How does a client outside Ray get a small unit of work started on a running cluster, and
its answer back? Issue 27 asks to build the pond service "on Ray's own components" and to
measure the options and say why one was chosen; this script measures them on one Ray head.

    python bench/service_options.py [--rounds 7] [--requests 20] [--only serve,jobs,driver,client]

Options, each against the same head (`ray start --head --block`, dashboard and Ray Client
server on, started once before every timing, stopped by its process group and pids):

  serve   a Ray Serve application with a FastAPI ingress, deployed once (untimed); the client
          (this process, no Ray on its request path) sends HTTP requests on a new connection
          each: /noop (the handler answers), /task (the handler awaits one Ray task), /actor
          (the handler awaits one call to an actor it holds); request -> response latency.
          Also one fresh Python process per sample doing one /noop request with urllib
          (spawn -> exit), to compare with the options that need a fresh process.
  jobs    the Ray Jobs API (`JobSubmissionClient.submit_job`, the dashboard's REST API):
          a trivial entrypoint (`python -c pass`): submit -> RUNNING and submit -> SUCCEEDED;
          and an entrypoint that is a Ray driver running one task, submit -> SUCCEEDED.
  driver  a fresh Python process as a Ray driver: `ray.init(address=...)`, one task,
          `ray.shutdown()`: spawn -> exit, and inside it connect, task and shutdown.
  client  Ray Client (`ray.init("ray://HEAD:PORT")`, the head's client server): the same in a
          fresh process.
  python  reference: a fresh `python -c pass` (what any fresh-process option pays first).

Every option is sampled once untimed (warm-up: Serve's replica and workers, the job
supervisor's worker pool), then `--rounds` rounds each take one sample of every option in
turn (interleaved, so machine load hits all alike); the HTTP rows take `--requests` requests
per round. Printed: median and p90 of the samples in milliseconds and the ratio of each median
to Serve's /noop median. Nothing is asserted on time. The JSON with every sample goes to
bench/out/service_options-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import _cluster
import _common
from _common import BenchFailure

OPTIONS = ("serve", "jobs", "driver", "client", "python")

DRIVER_CODE = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    import ray
    t1 = time.perf_counter()
    ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
    t2 = time.perf_counter()
    @ray.remote(num_cpus=0)
    def one():
        return 1
    assert ray.get(one.remote()) == 1
    t3 = time.perf_counter()
    ray.shutdown()
    t4 = time.perf_counter()
    print("BENCH_RESULT " + json.dumps({"import_s": t1 - t0, "connect_s": t2 - t1, "task_s": t3 - t2, "shutdown_s": t4 - t3}))
""")

HTTP_CODE = textwrap.dedent("""
    import json, sys, time, urllib.request
    t0 = time.perf_counter()
    with urllib.request.urlopen(sys.argv[1], timeout=30) as r:
        body = json.loads(r.read())
    assert body == {"ok": 1}, body
    print("BENCH_RESULT " + json.dumps({"request_s": time.perf_counter() - t0}))
""")

PASS_CODE = 'print("BENCH_RESULT {}")'

# The job's shell runs them: the venv's Python by its path (the head's PATH may name another).
JOB_PASS_ENTRYPOINT = f"{sys.executable} -c pass"
JOB_TASK_ENTRYPOINT = (
    f"{sys.executable} -c \"import ray; ray.init(logging_level='ERROR'); "
    "assert ray.get(ray.remote(num_cpus=0)(lambda: 1).remote()) == 1\""
)


# ---------------------------------------------------------------- the cluster


class ServiceHead(_cluster.RayHead):
    """A head with what the options need beside `_cluster.RayHead`'s: the dashboard (the Jobs
    API is its REST API) on 127.0.0.1 and a free port, the Ray Client server on a free port, and
    `RAY_AUTH_MODE=disabled` (the service's own token guards it; Ray's token would have to
    reach every thin client otherwise)."""

    def __init__(self, num_cpus: int) -> None:
        super().__init__(num_cpus=num_cpus)
        self.dashboard_port = _cluster.free_port()
        self.client_port = _cluster.free_port()
        self.ip = ""

    def start(self) -> str:
        cmd = [
            _cluster.ray_binary(), "start", "--head", "--block", "--num-cpus", str(self.num_cpus),
            "--port", str(self.port), "--ray-client-server-port", str(self.client_port),
            "--dashboard-host", "127.0.0.1", "--dashboard-port", str(self.dashboard_port),
            "--dashboard-agent-listen-port", str(_cluster.free_port()), "--include-dashboard", "true",
            "--disable-usage-stats", "--temp-dir", self.temp_dir,
        ]
        t0 = time.perf_counter()
        with open(self.log_path, "wb") as log:  # a file: an unread pipe would block the head
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=bench_env(), start_new_session=True)
        text = self._wait_started(t0)
        ip = re.search(r"Local node IP:\s*(\S+)", text)
        if not ip:
            raise BenchFailure(f"ray start printed no 'Local node IP:' line:\n{text}")
        self.ip = ip.group(1)
        self.address = f"{self.ip}:{self.port}"
        self.start_s = time.perf_counter() - t0
        return self.address

    def _wait_started(self, t0: float) -> str:
        assert self.proc is not None
        while True:
            text = _cluster.ANSI.sub("", self.log_path.read_text(errors="replace"))
            if _cluster.STARTED in text:
                return text
            if self.proc.poll() is not None or time.perf_counter() - t0 > self.start_timeout_s:
                raise BenchFailure("ray start --head did not start:\n" + "\n".join(text.splitlines()[-20:]))
            time.sleep(0.2)

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def client_address(self) -> str:
        return f"ray://{self.ip}:{self.client_port}"


def bench_env() -> dict[str, str]:
    """Head, deployer and drivers: the checkout importable, Ray's token auth off."""
    return {**_common.child_env(), "RAY_AUTH_MODE": "disabled"}


# ---------------------------------------------------------------- the Serve application


def deploy_serve(address: str, http_port: int) -> None:
    """Child mode: deploy the bench's Serve app on the head and exit (Serve apps outlive the
    driver that deployed them)."""
    import ray
    from fastapi import FastAPI
    from ray import serve

    ray.init(address=address, logging_level=logging.ERROR)
    serve.start(http_options={"host": "127.0.0.1", "port": http_port})
    api = FastAPI()

    @ray.remote(num_cpus=0)
    def one() -> int:
        return 1

    @ray.remote(num_cpus=0)
    class Echo:
        def ping(self) -> int:
            return 1

    @serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0})
    @serve.ingress(api)
    class Bench:
        def __init__(self) -> None:
            self.echo = Echo.remote()  # type: ignore[attr-defined]

        @api.get("/noop")
        async def noop(self) -> dict[str, int]:
            return {"ok": 1}

        @api.get("/task")
        async def task(self) -> dict[str, int]:
            return {"ok": await one.remote()}

        @api.get("/actor")
        async def actor(self) -> dict[str, int]:
            return {"ok": await self.echo.ping.remote()}

    serve.run(Bench.bind(), name="bench", route_prefix="/", blocking=False)  # type: ignore[attr-defined]
    ray.shutdown()


def start_serve(head: ServiceHead) -> tuple[int, float]:
    port = _cluster.free_port()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--deploy", head.address, str(port)], env=bench_env(),
                          capture_output=True, text=True, timeout=600)
    if proc.returncode:
        raise BenchFailure(f"deploying the Serve app failed:\n{proc.stderr[-3000:]}")
    wait_http(port)
    return port, time.perf_counter() - t0


def wait_http(port: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError, BenchFailure):
            http_get(port, "/noop")
            return
        if time.monotonic() > deadline:
            raise BenchFailure(f"Serve's /noop on 127.0.0.1:{port} did not answer in {timeout_s:.0f}s")
        time.sleep(0.5)


def http_get(port: int, path: str) -> float:
    """One request on a new connection (as a fresh orchestrator task makes it); its seconds."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    elapsed = time.perf_counter() - t0
    if resp.status != 200 or json.loads(body) != {"ok": 1}:
        raise BenchFailure(f"GET {path}: {resp.status} {body[:200]!r}")
    return elapsed


# ---------------------------------------------------------------- samplers


@dataclasses.dataclass
class Row:
    option: str  # the letter and what was timed
    what: str
    samples: list[float] = dataclasses.field(default_factory=list)  # seconds
    parts: list[dict[str, float]] = dataclasses.field(default_factory=list)  # a fresh process's own timings


Sampler = Callable[[], list[tuple[str, float, dict[str, float]]]]


def serve_sampler(port: int, requests: int) -> Sampler:
    def sample() -> list[tuple[str, float, dict[str, float]]]:
        out: list[tuple[str, float, dict[str, float]]] = []
        for path in ("/noop", "/task", "/actor"):
            out += [(f"serve {path}", http_get(port, path), {}) for _ in range(requests)]
        run = fresh_process(["-c", HTTP_CODE, f"http://127.0.0.1:{port}/noop"])
        out.append(("serve /noop, fresh process", run.wall_s, run.report))
        return out
    return sample


def jobs_sampler(head: ServiceHead) -> Sampler:
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(head.dashboard_url)

    def one_job(entrypoint: str) -> tuple[float | None, float]:
        t0 = time.perf_counter()
        job = client.submit_job(entrypoint=entrypoint)
        running: float | None = None
        while True:
            status = client.get_job_status(job)
            now = time.perf_counter() - t0
            if status == JobStatus.RUNNING and running is None:
                running = now
            if status.is_terminal():
                if status != JobStatus.SUCCEEDED:
                    raise BenchFailure(f"job {job} ({entrypoint}) ended {status}:\n{client.get_job_logs(job)[-2000:]}")
                return running, now
            time.sleep(0.01)

    def sample() -> list[tuple[str, float, dict[str, float]]]:
        running, done = one_job(JOB_PASS_ENTRYPOINT)
        out: list[tuple[str, float, dict[str, float]]] = [("jobs submit -> done", done, {})]
        if running is not None:  # a job can finish between two polls
            out.append(("jobs submit -> running", running, {}))
        out.append(("jobs submit -> done, entrypoint runs 1 Ray task", one_job(JOB_TASK_ENTRYPOINT)[1], {}))
        return out
    return sample


def fresh_process(args: list[str]) -> _common.ChildRun:
    return _common.run_child(args, timeout_s=300, env=bench_env())


def driver_sampler(address: str, label: str) -> Sampler:
    def sample() -> list[tuple[str, float, dict[str, float]]]:
        run = fresh_process(["-c", DRIVER_CODE, address])
        inside = run.report["connect_s"] + run.report["task_s"] + run.report["shutdown_s"]
        return [(f"{label}, fresh process", run.wall_s, run.report), (f"{label}, connect + task + shutdown", inside, {})]
    return sample


def python_sampler() -> list[tuple[str, float, dict[str, float]]]:
    return [("python -c pass, fresh process", fresh_process(["-c", PASS_CODE]).wall_s, {})]


LETTERS = {"serve": "(a)", "jobs": "(b)", "driver": "(c)", "client": "(d)", "python": "ref"}


def measure(args: argparse.Namespace, head: ServiceHead, meta: dict[str, Any]) -> dict[str, Row]:
    samplers: dict[str, Sampler] = {}
    if "serve" in args.options:
        port, deploy_s = start_serve(head)
        meta.update(serve_port=port, serve_deploy_s=round(deploy_s, 2))
        print(f"  Serve app deployed in {deploy_s:.1f}s (untimed), http://127.0.0.1:{port}", flush=True)
        samplers["serve"] = serve_sampler(port, args.requests)
    if "jobs" in args.options:
        samplers["jobs"] = jobs_sampler(head)
    if "driver" in args.options:
        samplers["driver"] = driver_sampler(head.address, "ray.init(address)")
    if "client" in args.options:
        samplers["client"] = driver_sampler(head.client_address, "Ray Client ray://")
    if "python" in args.options:
        samplers["python"] = python_sampler
    for name, sample in samplers.items():
        t0 = time.perf_counter()
        sample()
        print(f"  warm-up {name}: {time.perf_counter() - t0:.1f}s (untimed)", flush=True)
    rows: dict[str, Row] = {}
    meta["loadavg_rounds"] = []
    for i in range(args.rounds):
        meta["loadavg_rounds"].append(round(os.getloadavg()[0], 2))
        for name, sample in samplers.items():
            for what, seconds, parts in sample():
                row = rows.setdefault(what, Row(LETTERS[name], what))
                row.samples.append(seconds)
                if parts:
                    row.parts.append(parts)
        print(f"  round {i + 1}/{args.rounds} done, load {os.getloadavg()[0]:.1f}", flush=True)
    return rows


# ---------------------------------------------------------------- report


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[8] if len(values) > 1 else values[0]


def render(rows: dict[str, Row]) -> str:
    base = rows.get("serve /noop")
    base_med = statistics.median(base.samples) if base else None
    headers = ["option", "what is timed", "n", "median ms", "p90 ms", "min ms", "ratio to (a) /noop"]
    body = []
    for r in rows.values():
        m = statistics.median(r.samples)
        ratio = f"{m / base_med:,.1f}x" if base_med else "-"
        body.append([r.option, r.what, str(len(r.samples)), f"{m * 1e3:,.1f}", f"{p90(r.samples) * 1e3:,.1f}",
                     f"{min(r.samples) * 1e3:,.1f}", ratio])
    parts = []
    for r in rows.values():
        if r.parts and "connect_s" in r.parts[0]:
            med = {k: statistics.median(p[k] for p in r.parts) * 1e3 for k in r.parts[0]}
            parts.append(f"  {r.what}: " + ", ".join(f"{k[:-2]} {v:,.0f} ms" for k, v in med.items()))
    text = _common.format_table(headers, body)
    if parts:
        text += "\n\ninside the fresh driver processes (medians):\n" + "\n".join(parts)
    return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7; >= 5 for the report)")
    p.add_argument("--requests", type=int, default=20, help="HTTP requests per Serve route per round (default 20)")
    p.add_argument("--only", default=",".join(OPTIONS), help=f"options, from {','.join(OPTIONS)}")
    p.add_argument("--deploy", nargs=2, metavar=("ADDRESS", "HTTP_PORT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.options = [o.strip() for o in args.only.split(",") if o.strip()]
    bad = [o for o in args.options if o not in OPTIONS]
    if bad or not args.options:
        p.error(f"unknown option(s) {bad}; choose from {','.join(OPTIONS)}")
    if args.rounds < 1 or args.requests < 1:
        p.error("--rounds and --requests must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.deploy:
        deploy_serve(args.deploy[0], int(args.deploy[1]))
        return 0
    started = time.perf_counter()
    machine = _common.machine_info()
    print(f"service options, {args.rounds} rounds, machine {machine}", flush=True)
    meta: dict[str, Any] = {}
    head = ServiceHead(num_cpus=os.cpu_count() or 1)
    with _cluster.terminate_cleanly(), head:
        meta.update(address=head.address, head_start_s=round(head.start_s, 1))
        print(f"  Ray head at {head.address} started in {head.start_s:.1f}s (untimed)", flush=True)
        rows = measure(args, head, meta)
    load_end = _common.machine_info()["loadavg"]
    print("\n" + render(rows))
    print(f"\nload average at start {machine['loadavg']}, per round {meta['loadavg_rounds']}, at end {load_end} "
          f"({machine['cpus']} cpus); total {time.perf_counter() - started:.0f}s")
    path = _common.write_json("service_options", {
        "rounds": args.rounds, "requests": args.requests, "machine": machine, "loadavg_end": load_end, **meta,
        "results": [dataclasses.asdict(r) | {"median_s": statistics.median(r.samples), "p90_s": p90(r.samples)}
                    for r in rows.values()],
    })
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
