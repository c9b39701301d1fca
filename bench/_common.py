"""Helpers shared by the benchmark scripts: fresh-process runs, medians, the table and JSON.

A benchmark script runs itself again in a child mode for every measurement, so import and
start-up costs count as a user pays them. The child prints one line ``BENCH_RESULT {json}`` on
stdout; the parent times the whole process and reads that line. While the child runs, the
parent samples the peak RSS of its process tree (and of any other trees it is given, e.g. a
warm Ray cluster's) with `_rss.TreeSampler`, until the child prints ``BENCH_WORK_DONE`` (so its
own result check, which runs after, is not counted) or exits. Nothing here asserts on time.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import json
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import _rss

BENCH_DIR = pathlib.Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULT_MARK = "BENCH_RESULT "
WORK_DONE_MARK = "BENCH_WORK_DONE"


class BenchFailure(RuntimeError):
    """A child process failed or produced a wrong result."""


@dataclasses.dataclass
class ChildRun:
    """One whole-process measurement."""

    wall_s: float  # spawn to exit, minus the child's own result verification
    report: dict[str, Any]  # what the child printed (in-process timings etc.)
    rss_peak: dict[str, int] = dataclasses.field(default_factory=dict)  # bytes: "child", each extra tree, "total"
    rss_before: dict[str, int] = dataclasses.field(default_factory=dict)  # the extra trees just before the spawn
    dir_peak: dict[str, int] = dataclasses.field(default_factory=dict)  # bytes on disk under each sampled dir
    sampler: dict[str, float] = dataclasses.field(default_factory=dict)  # samples taken, the sampler's CPU seconds


@functools.cache
def precompile() -> None:
    """Write the bytecode of the checkout's packages, once per script run (as pip does at
    install), never inside a timing."""
    import compileall

    for package in ("pond_core", "providers/airflow/pond_airflow", "providers/prefect/pond_prefect"):
        compileall.compile_dir(str(REPO_ROOT / package), quiet=1)


def child_env() -> dict[str, str]:
    """The child's environment: the repo importable, Ray telemetry off, and no RAY_ADDRESS (a
    variant that should start its own Ray must not join a cluster named by the environment;
    a warm variant passes its address explicitly)."""
    env = dict(os.environ)
    # An installed pond has its bytecode; a checkout measured with PYTHONDONTWRITEBYTECODE
    # would compile pond's ~80 modules in every child (~50 ms, on pond's side only).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    precompile()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.pop("RAY_ADDRESS", None)
    return env


def run_child(
    args: list[str],
    timeout_s: float = 1200.0,
    env: dict[str, str] | None = None,
    trees: dict[str, int] | None = None,
    dirs: dict[str, str] | None = None,
) -> ChildRun:
    """Run ``python <args>`` in a fresh process; return its wall time, report and peak RSS.

    The child runs in its own process group, so a timeout, Ctrl-C or SIGTERM of this script
    ends it and everything it started (e.g. a local Ray), by that group's id. `trees` are
    other process trees to sample beside the child's (label -> root pid); `dirs` are
    directories whose disk use is sampled (spill)."""
    cmd = [sys.executable, *args]
    roots = dict(trees or {})
    env = env or child_env()  # (before the clock: it may precompile)
    before = _rss.trees_now(roots)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env=env, start_new_session=True)
    sampler = _rss.TreeSampler({"child": proc.pid, **roots}, dirs)
    sampler.start()
    out: list[str] = []
    err: list[str] = []

    def read_out() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            if line.startswith(WORK_DONE_MARK):
                sampler.stop()

    def read_err() -> None:
        assert proc.stderr is not None
        err.extend(proc.stderr)

    readers = [threading.Thread(target=f, daemon=True) for f in (read_out, read_err)]
    for r in readers:
        r.start()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise BenchFailure(f"no result after {timeout_s:.0f}s from {' '.join(cmd)}") from e
    finally:
        elapsed = time.perf_counter() - t0
        if proc.poll() is None:
            kill_group(proc)
        sampler.stop()
        sampler.join()
        for r in readers:
            r.join(timeout=10)
    stdout, stderr = "".join(out), "".join(err)
    report = _parse_report(stdout)
    if proc.returncode != 0 or report is None:
        tail = "\n".join((stderr or stdout).strip().splitlines()[-25:])
        raise BenchFailure(f"exit code {proc.returncode} from {' '.join(cmd)}\n{tail}")
    untimed = float(report.get("verify_s", 0.0)) + float(report.get("stats_s", 0.0))
    return ChildRun(
        wall_s=elapsed - untimed, report=report, rss_peak=dict(sampler.peaks), rss_before=before,
        dir_peak=dict(sampler.dir_peaks), sampler={"samples": sampler.samples, "cpu_s": round(sampler.cpu_s, 3)},
    )


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """End a child started with start_new_session=True: its process group by the group's id, and
    by pid any descendant that has a group of its own (Ray's raylet puts each worker process in
    a new group)."""
    import psutil

    try:
        tree = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        tree = []
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for p in tree:  # psutil refuses to signal a pid that a new process has reused
        try:
            p.kill()
        except psutil.Error:
            pass
    proc.wait()


def _parse_report(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK) :])
    return None


def emit_report(report: dict[str, Any]) -> None:
    """Called by the child: print its report line for the parent."""
    print(RESULT_MARK + json.dumps(report), flush=True)


def mark_work_done() -> None:
    """Called by the child when the measured work (and its shutdown) is over, before it checks
    its result: the parent stops sampling RSS here."""
    print(WORK_DONE_MARK, flush=True)


def summarize(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def write_json(name: str, payload: dict[str, Any]) -> pathlib.Path:
    """Write ``bench/out/<name>-<timestamp>.json`` (with the command that made it and when) and
    return its path."""
    out = BENCH_DIR / "out"
    out.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now()
    path = out / f"{name}-{now.strftime('%Y%m%dT%H%M%S')}.json"
    made = {"command": " ".join([os.path.relpath(sys.executable), *sys.argv]), "time": now.isoformat(timespec="seconds")}
    path.write_text(json.dumps({**made, **payload}, indent=2, default=str) + "\n")
    return path


def exit_status(failures: list[str], what: str) -> int:
    """The script's exit code: 1, after naming them on stderr, if any measurement failed."""
    if failures:
        print(f"\n{len(failures)} {what} FAILED: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


def machine_info() -> dict[str, Any]:
    mem_gib = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        mem_gib = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "cpus": os.cpu_count(),
        "mem_gib": mem_gib,
        "python": sys.version.split()[0],
        "loadavg": [round(x, 2) for x in os.getloadavg()],  # others' work on the machine
    }
